"""The table of workload kinds: lookups, and the rows' pointers as the pinner reads them."""

import pytest
from pydantic import ValidationError

from app.domain.pointer import resolve
from app.domain.workloads import (
    DEPLOYMENT,
    POD,
    ROLLOUT,
    DuplicateKindError,
    Rollbacks,
    WorkloadKind,
    Workloads,
    controller_of,
    template_of,
)
from app.settings import Settings

WIDGET = WorkloadKind(
    "example.com", "v1", "Widget", "widgets", "/spec/podTemplate", ("CREATE", "UPDATE")
)


def test_rows_are_found_by_group_and_kind_and_by_api_version() -> None:
    table = Workloads()
    assert table.find("apps", "Deployment") is DEPLOYMENT
    assert table.find("", "Pod") is POD
    assert table.find("", "Deployment") is None
    assert table.find_object({"apiVersion": "apps/v1", "kind": "Deployment"}) is DEPLOYMENT
    assert table.find_object({"apiVersion": "v1", "kind": "Pod"}) is POD
    # Any version of the group: the API server converts between them (matchPolicy Equivalent).
    assert table.find_object({"apiVersion": "apps/v1beta2", "kind": "Deployment"}) is DEPLOYMENT
    assert table.find_object({"apiVersion": "v1", "kind": "Deployment"}) is None
    assert table.find_object({"kind": "Pod"}) is None


def test_custom_kinds_follow_the_built_in_rows_and_cannot_repeat_one() -> None:
    table = Workloads([WIDGET])
    assert list(table)[-1] is WIDGET
    assert table.find_object({"apiVersion": "example.com/v1", "kind": "Widget"}) is WIDGET
    with pytest.raises(DuplicateKindError, match=r"^Deployment\.apps is listed twice$"):
        Workloads([DEPLOYMENT])
    with pytest.raises(DuplicateKindError, match=r"^Widget\.example\.com is listed twice$"):
        Workloads([WIDGET, WIDGET])
    with pytest.raises(DuplicateKindError, match=r"^Pod\.core is listed twice$"):
        Workloads([POD])


def test_pointers_of_a_templated_kind_and_of_a_pod() -> None:
    widget = {"spec": {"podTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}}}}
    assert resolve(widget, WIDGET.spec_pointer) == {"x": 1}
    assert resolve(widget, WIDGET.metadata_pointer) == {"labels": {"a": "b"}}
    pod = {"metadata": {"name": "p"}, "spec": {"containers": []}}
    assert POD.is_pod and not DEPLOYMENT.is_pod
    assert resolve(pod, POD.template) is pod
    assert resolve(pod, POD.spec_pointer) == {"containers": []}
    assert WIDGET.api_version == "example.com/v1" and POD.api_version == "v1"
    assert DEPLOYMENT.rollbacks == Rollbacks.REPLICA_SETS


def test_the_template_of_an_object_is_where_its_row_says() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}}
    assert template_of(WIDGET, {"spec": {"podTemplate": template}}) == template
    pod = {"metadata": {"name": "p"}, "spec": {"containers": []}}
    assert template_of(POD, pod) is pod
    # Webhooks run before validation: no template, or not an object, is an empty one.
    assert template_of(WIDGET, {"spec": {}}) == {}
    assert template_of(WIDGET, {"spec": {"podTemplate": ["x"]}}) == {}


def test_controller_of_finds_only_the_controlling_owner() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "controller": True}
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "name": "b"}
    assert controller_of({"metadata": {"ownerReferences": [plain, owner]}}) == owner
    assert controller_of({"metadata": {"ownerReferences": [plain]}}) is None
    assert controller_of({"metadata": {}}) is None


def test_the_settings_list_custom_kinds_rollout_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFIGPIN_CUSTOM_KINDS", raising=False)
    assert list(Settings().workloads())[-1] == ROLLOUT
    monkeypatch.setenv(
        "CONFIGPIN_CUSTOM_KINDS",
        '[{"group": "example.com", "version": "v1", "kind": "Widget", "resource": "widgets",'
        ' "template": "/spec/podTemplate", "rollbacks": "controllerrevisions"}]',
    )
    table = Settings().workloads()
    assert table.find("argoproj.io", "Rollout") is None  # the setting replaces the default
    widget = table.find("example.com", "Widget")
    assert widget is not None and widget.rollbacks == Rollbacks.CONTROLLER_REVISIONS
    assert widget.operations == ("CREATE", "UPDATE")


@pytest.mark.parametrize(
    "custom",
    [
        '[{"group": "apps", "version": "v1", "kind": "StatefulSet", "resource": "statefulsets",'
        ' "template": "/spec/template"}]',
        '[{"group": "x.io", "version": "v1", "kind": "W", "resource": "ws", "template": "spec"}]',
        '[{"group": "x.io", "version": "v1", "kind": "W", "resource": "ws",'
        ' "template": "/spec/template", "rollbacks": "deployments"}]',
    ],
)
def test_a_custom_kind_that_repeats_a_row_or_is_malformed_is_refused(
    custom: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGPIN_CUSTOM_KINDS", custom)
    with pytest.raises(ValidationError):
        Settings()
