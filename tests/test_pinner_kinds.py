"""Every row of the table through the same pinning sequence, on configpin's in-memory
Sources: where each kind's template sits, when it is pinned, how its rollbacks are seen."""

import copy
import json
from typing import Any

import jsonpatch
import pytest

from app.admission.pinner import OnFailure, Outcome, PinRequest, Policy, pin
from app.domain import labels
from app.domain.pointer import resolve
from app.domain.rollonchange import ROLLED_FOR, Record, rollable
from app.domain.workloads import (
    DAEMON_SET,
    DEPLOYMENT,
    JOB,
    REPLICA_SET,
    ROLLOUT,
    STATEFUL_SET,
    Rollbacks,
    WorkloadKind,
    Workloads,
)
from tests.fakes import MemorySources
from tests.test_pinner import CONFIG, DB, KEY, NS, cm, pod_spec, snap, world

UID = "workload-uid"
# A custom kind whose template is not at spec.template, as a setting would list it.
WIDGET = WorkloadKind(
    "example.com",
    "v1",
    "Widget",
    "widgets",
    "/spec/runner/podTemplate",
    ("CREATE", "UPDATE"),
)
POLICY = Policy(key=KEY, kinds=Workloads([ROLLOUT, WIDGET]))
TEMPLATED = [DEPLOYMENT, STATEFUL_SET, DAEMON_SET, JOB, REPLICA_SET, ROLLOUT, WIDGET]
UPDATED = [k for k in TEMPLATED if not k.template_immutable]
WITH_REVISIONS = [k for k in TEMPLATED if k.rollbacks != Rollbacks.NONE]


def workload(kind: WorkloadKind, image: str = "web:1", **meta: Any) -> dict[str, Any]:
    """An object of `kind` with the web pod template where the table says it sits."""
    spec = pod_spec()
    spec["containers"][0]["image"] = image
    template = {"metadata": {"labels": {"app": "web"}}, "spec": spec}
    obj: dict[str, Any] = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": "web", "namespace": NS, "uid": UID, **meta},
        "spec": {"selector": {"matchLabels": {"app": "web"}}},
    }
    *parents, last = kind.template.strip("/").split("/")
    node = obj
    for segment in parents:
        node = node.setdefault(segment, {})
    node[last] = template
    return obj


def template_of(kind: WorkloadKind, obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = resolve(obj, kind.template)
    return found


def names(kind: WorkloadKind, obj: dict[str, Any]) -> tuple[str, str, str]:
    spec = template_of(kind, obj)["spec"]
    container = spec["containers"][0]
    return (
        container["envFrom"][0]["configMapRef"]["name"],
        container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        spec["volumes"][0]["configMap"]["name"],
    )


def run(
    kind: WorkloadKind,
    obj: dict[str, Any],
    sources: MemorySources,
    old: dict[str, Any] | None = None,
    policy: Policy = POLICY,
) -> tuple[Outcome, dict[str, Any]]:
    operation = "CREATE" if old is None else "UPDATE"
    outcome = pin(PinRequest(kind, operation, NS, obj, old), sources, policy)
    patched: dict[str, Any] = jsonpatch.apply_patch(obj, outcome.patch) if outcome.patch else obj
    return outcome, patched


@pytest.mark.parametrize("kind", TEMPLATED, ids=lambda k: k.kind)
def test_create_pins_the_template_where_the_table_says_it_sits(kind: WorkloadKind) -> None:
    sources = world()
    outcome, patched = run(kind, workload(kind), sources)
    assert outcome.result == "pinned"
    assert names(kind, patched) == (snap(CONFIG), snap(DB), snap(CONFIG))
    pins = json.loads(template_of(kind, patched)["metadata"]["annotations"][labels.PINS])
    assert pins == {"configmap/app-config": snap(CONFIG), "secret/db": snap(DB)}
    again, _ = run(kind, patched, sources)
    assert again.patch == [] and again.result == "unchanged"


@pytest.mark.parametrize("kind", UPDATED, ids=lambda k: k.kind)
def test_update_keeps_pins_for_the_same_template_and_pins_an_edit_on_a_change(
    kind: WorkloadKind,
) -> None:
    sources = world()
    _, stored = run(kind, workload(kind), sources)
    edited = cm("app-config", {"k": "v2"})
    sources.add(edited)
    _, reapplied = run(kind, workload(kind), sources, old=stored)  # the same manifest
    assert template_of(kind, reapplied) == template_of(kind, stored)
    _, changed = run(kind, workload(kind, image="web:2"), sources, old=stored)
    assert names(kind, changed) == (snap(edited), snap(DB), snap(edited))


def test_a_job_is_pinned_at_creation_only_and_a_reapply_gets_its_pins_back() -> None:
    sources = world()
    _, stored = run(JOB, workload(JOB), sources)
    sources.add(cm("app-config", {"k": "v2"}))
    # `kubectl apply` of the same manifest sends the sources' names: given the old pins
    # back, or the API server would refuse a change to the immutable template.
    _, reapplied = run(JOB, workload(JOB), sources, old=stored)
    assert template_of(JOB, reapplied) == template_of(JOB, stored)
    outcome, _ = run(JOB, workload(JOB, image="web:2"), sources, old=stored)
    assert outcome.result == "skipped" and outcome.patch == [] and outcome.created == 0


@pytest.mark.parametrize("kind", WITH_REVISIONS, ids=lambda k: k.kind)
def test_undo_to_a_revision_with_the_current_snapshots_ignores_a_pending_edit(
    kind: WorkloadKind,
) -> None:
    """v1 and v2 ran on the same config; the config is edited, not rolled out; undo to v1
    brings it back on its own snapshots, found among the workload's own revisions."""
    sources = world()
    _, first = run(kind, workload(kind), sources)
    _, second = run(kind, workload(kind, image="web:2"), sources, old=first)
    assert names(kind, second) == names(kind, first)
    revision = copy.deepcopy(template_of(kind, first))
    if kind.revision_hash_label:
        revision["metadata"]["labels"][kind.revision_hash_label] = "abc"
    # Revisions of the other source, or of another owner, must not count.
    other = (
        sources.controller_revisions
        if kind.rollbacks == Rollbacks.REPLICA_SETS
        else sources.replica_sets
    )
    other.append((NS, UID, copy.deepcopy(revision)))
    own = (
        sources.replica_sets
        if kind.rollbacks == Rollbacks.REPLICA_SETS
        else sources.controller_revisions
    )
    own.append((NS, "another-uid", copy.deepcopy(revision)))
    sources.add(cm("app-config", {"k": "v2"}))
    undo = workload(kind)
    undo_template = template_of(kind, undo)
    undo_template.clear()
    undo_template.update(copy.deepcopy(template_of(kind, first)))
    _, repinned = run(kind, undo, sources, old=second)
    assert names(kind, repinned)[0] == snap(cm("app-config", {"k": "v2"}))

    own.append((NS, UID, revision))
    outcome, patched = run(kind, undo, sources, old=second)
    assert outcome.patch == [] and template_of(kind, patched) == template_of(kind, first)


def test_a_replicaset_with_a_controlling_owner_is_left_alone() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}
    outcome, _ = run(REPLICA_SET, workload(REPLICA_SET, ownerReferences=[owner]), world())
    assert outcome.result == "skipped" and outcome.patch == []
    assert outcome.unpinned_owner is None


def test_a_job_of_a_cronjob_is_pinned_at_its_own_creation() -> None:
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "controller": True}
    outcome, patched = run(JOB, workload(JOB, ownerReferences=[owner]), world())
    assert outcome.result == "pinned"
    assert names(JOB, patched) == (snap(CONFIG), snap(DB), snap(CONFIG))


def test_a_rollout_with_a_workload_ref_is_left_alone_with_a_warning() -> None:
    rollout = workload(ROLLOUT)
    rollout["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"}
    sources = world()
    outcome, _ = run(ROLLOUT, rollout, sources)
    assert outcome.result == "skipped" and outcome.patch == [] and sources.reads == []
    assert len(outcome.warnings) == 1 and "spec.workloadRef" in outcome.warnings[0]


@pytest.mark.parametrize("kind", TEMPLATED, ids=lambda k: k.kind)
def test_every_workload_template_follows_the_workload_failure_setting(
    kind: WorkloadKind,
) -> None:
    sources = world()
    sources.fail_next("read", "configmap", NS, "app-config")
    outcome, _ = run(kind, workload(kind), sources)
    assert not outcome.allowed and outcome.status_code == 503
    sources.fail_next("read", "configmap", NS, "app-config")
    policy = Policy(key=KEY, kinds=POLICY.kinds, deployment_failure=OnFailure.ALLOW)
    outcome, _ = run(kind, workload(kind), sources, policy=policy)
    assert outcome.allowed and outcome.result == "failed-open"


@pytest.mark.parametrize("kind", rollable(TEMPLATED), ids=lambda k: k.kind)
def test_an_undo_keeps_the_newer_roll_on_change_record(kind: WorkloadKind) -> None:
    """`kubectl rollout undo deployment` writes the old ReplicaSet's annotations, an older
    record or none among them, over the Deployment's: the newer record is kept, the old
    template and pins come back as they were."""
    newer = Record(2, {"secret/db": "dddddddddd"}).encode()
    older = Record(1, {"secret/db": "bbbbbbbbbb"}).encode()
    sources = world()
    annotations = {ROLLED_FOR: older, "team": "shop"}
    _, first = run(kind, workload(kind, annotations=annotations), sources)
    changed = workload(kind, image="web:2", annotations={ROLLED_FOR: newer, "team": "shop"})
    _, second = run(kind, changed, sources, old=first)
    own = (
        sources.replica_sets
        if kind.rollbacks == Rollbacks.REPLICA_SETS
        else sources.controller_revisions
    )
    own.append((NS, UID, copy.deepcopy(template_of(kind, first))))

    _, undone = run(kind, copy.deepcopy(first), sources, old=second)
    # Only the record is set back: the rest of the metadata stays as the undo wrote it.
    assert undone["metadata"] == {
        **first["metadata"],
        "annotations": {**annotations, ROLLED_FOR: newer},
    }
    assert template_of(kind, undone) == template_of(kind, first)
    without = copy.deepcopy(first)
    del without["metadata"]["annotations"]
    _, undone = run(kind, without, sources, old=second)
    assert undone["metadata"]["annotations"] == {ROLLED_FOR: newer}

    # An update that leaves the template alone is let through as written.
    by_hand = copy.deepcopy(second)
    by_hand["metadata"]["annotations"][ROLLED_FOR] = older
    outcome, patched = run(kind, by_hand, sources, old=second)
    assert outcome.patch == [] and patched["metadata"]["annotations"][ROLLED_FOR] == older
