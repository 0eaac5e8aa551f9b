"""Pinning rules whose breakage the rest of the unit suite let through: each test here
fails on one small change to the rule it names (see `make mutation`)."""

import copy
from typing import Any

import pytest

from app.admission.pinner import PinRequest, Policy, pin
from app.domain import labels
from app.domain.snapshots import is_snapshot
from app.domain.workloads import DEPLOYMENT
from tests.fakes import MemorySources, config_map
from tests.fakes import secret as secret_in
from tests.test_pinner import (
    CONFIG,
    DB,
    KEY,
    NS,
    bare_pod,
    cm,
    deployment,
    pins_of,
    pod_spec,
    run,
    secret,
    snap,
    template_names,
    world,
)

REGISTRY = secret("registry", {"auth": "eA=="})  # Opaque: only its field keeps it live


class TestLiveByDefaultFields:
    @pytest.mark.parametrize(
        "add_reference",
        [
            lambda spec: spec.update(imagePullSecrets=[{"name": "registry"}]),
            lambda spec: spec["volumes"].append(
                {
                    "name": "store",
                    "csi": {"driver": "x.example", "nodePublishSecretRef": {"name": "registry"}},
                }
            ),
        ],
        ids=["imagePullSecrets", "csi-nodePublishSecretRef"],
    )
    def test_a_platform_credential_is_neither_read_nor_pinned_whatever_its_type(
        self, add_reference: Any
    ) -> None:
        spec = pod_spec()
        add_reference(spec)
        sources = world(CONFIG, DB, REGISTRY)
        outcome, patched = run(deployment(spec), sources)
        assert outcome.result == "pinned"
        assert (NS, "secret", "registry") not in sources.reads
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG), "secret/db": snap(DB)}
        assert "registry" in str(patched["spec"]["template"]["spec"])
        assert snap(REGISTRY) not in str(patched)


class TestNamespacesNeverTouched:
    @pytest.mark.parametrize(
        "namespace", ["kube-system", "kube-public", "kube-node-lease", "configpin"]
    )
    def test_nothing_is_read_or_pinned_there_even_when_labelled_and_sources_exist(
        self, namespace: str
    ) -> None:
        sources = MemorySources(
            {namespace: {labels.INJECT: labels.INJECT_ENABLED}},
            [config_map(namespace, "app-config", {"k": "v"}), secret_in(namespace, "db", {})],
        )
        request = PinRequest(DEPLOYMENT, "CREATE", namespace, deployment())
        outcome = pin(request, sources, Policy(key=KEY, own_namespace="configpin"))
        assert outcome.result == "skipped" and outcome.patch == []
        assert sources.reads == [] and sources.created == []


class TestLiveAnnotationOnPinnedReferences:
    def test_listing_a_pinned_source_as_live_puts_the_source_name_back(self) -> None:
        sources = world()
        _, stored = run(deployment(), sources)
        changed = copy.deepcopy(stored)
        changed["spec"]["template"]["metadata"]["annotations"][labels.LIVE] = "configmap/app-config"
        outcome, patched = run(changed, sources, old=stored)
        assert template_names(patched) == ("app-config", snap(DB), "app-config")
        assert pins_of(patched) == {"secret/db": snap(DB)}
        assert outcome.result == "pinned"

    def test_a_pod_brought_pinned_and_marked_live_gets_its_source_back(self) -> None:
        sources = world()
        _, pinned = run(bare_pod(), sources)  # say exported, then created again
        pinned["metadata"]["annotations"][labels.LIVE] = "secret/db"
        _, patched = run(pinned, sources)
        assert template_names(patched) == (snap(CONFIG), "db", snap(CONFIG))
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG)}


class TestOwners:
    @pytest.mark.parametrize("flags", [{"controller": False}, {}], ids=["false", "absent"])
    def test_an_owner_that_is_not_a_controller_leaves_a_bare_pod(
        self, flags: dict[str, Any]
    ) -> None:
        # An ownerReference for garbage collection only: nothing will pin the Pod later.
        owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "bundle", "uid": "u", **flags}
        outcome, patched = run(bare_pod(ownerReferences=[owner]), world())
        assert outcome.result == "pinned"
        assert template_names(patched) == (snap(CONFIG), snap(DB), snap(CONFIG))


class TestSnapshotIdentity:
    @pytest.mark.parametrize(
        ("meta_labels", "expected"),
        [
            ({labels.MANAGED_BY: labels.MANAGER, labels.DIGEST: "abc"}, True),
            ({labels.DIGEST: "abc"}, False),
            ({labels.MANAGED_BY: "helm", labels.DIGEST: "abc"}, False),
            ({labels.MANAGED_BY: labels.MANAGER}, False),
        ],
    )
    def test_a_snapshot_carries_both_the_manager_and_the_digest_labels(
        self, meta_labels: dict[str, str], expected: bool
    ) -> None:
        assert is_snapshot({"metadata": {"labels": meta_labels}}) is expected

    def test_a_source_with_a_copied_digest_label_is_snapshotted_not_trusted(self) -> None:
        # Labels copied from a snapshot by hand: still the user's own, changing config.
        copied = cm(
            "app-config",
            {"k": "v"},
            labels={labels.DIGEST: "bcdfghjklm"},
            annotations={labels.SOURCE_NAME: "elsewhere"},
        )
        outcome, patched = run(deployment(), world(copied, DB))
        assert template_names(patched)[0] == snap(copied)
        assert pins_of(patched)["configmap/app-config"] == snap(copied)
        assert outcome.created == 2


class TestDeletedSource:
    def test_a_carried_pin_keeps_serving_its_snapshot_after_the_source_is_deleted(
        self,
    ) -> None:
        sources = world()
        _, stored = run(deployment(), sources)
        del sources.objects[(NS, "configmap", "app-config")]
        restarted = copy.deepcopy(stored)
        restarted["spec"]["template"]["metadata"]["annotations"]["restartedAt"] = "now"
        outcome, patched = run(restarted, sources, old=stored)
        assert outcome.warnings == () and outcome.allowed
        assert template_names(patched) == (snap(CONFIG), snap(DB), snap(CONFIG))
        assert pins_of(patched) == pins_of(stored)
