"""The chaos test's observer against the real control plane: quiet on a pinned Deployment's
edits and rollouts, and it counts a referenced snapshot deleted by force (proof it can fail)."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.domain.pinning import parse_pins
from app.kube.api import RawApi
from chaos.invariants import INVARIANTS, NEVER_DELETED, REFERENCES
from chaos.observer import Observer
from devkit.kubectl import kubectl
from devkit.kubeobjects import configmap, create, eventually, items, mounting_deployment
from devkit.localwebhook import Webhook
from tests.e2e.conftest import Namespaces

GRACE, SWEEP = 600.0, 30.0


@pytest.fixture
def watched(
    admin: RawApi, namespaces: Namespaces, webhook: Webhook
) -> Iterator[tuple[Observer, str]]:
    ns = namespaces.make()
    observer = Observer(admin, [ns])
    observer.start()
    assert webhook.process is not None
    observer.track_process("webhook", webhook.process.pid)
    try:
        yield observer, ns
    finally:
        observer.stop()


def revisions(admin: RawApi, ns: str) -> list[dict[str, Any]]:
    return sorted(
        items(admin, "apps/v1", "ReplicaSet", ns),
        key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]),
    )


def edit(observer: Observer, kubeconfig: str, ns: str, value: str) -> None:
    """As the chaos driver does: the journal first, then the edit."""
    observer.record_edit(ns, "ConfigMap", "app-config", {"k": value})
    kubectl(
        kubeconfig, "-n", ns, "patch", "configmap", "app-config",
        "--type=merge", "-p", json.dumps({"data": {"k": value}}),
    )  # fmt: skip


def checked(observer: Observer, revisions: int) -> dict[str, Any]:
    """The report once the observer has seen and checked `revisions` ReplicaSets (its
    watches trail the API server by a moment)."""

    def done() -> dict[str, Any] | None:
        report = observer.report(grace_seconds=GRACE, sweep_interval_seconds=SWEEP)
        return report if report["checked"]["revisions"] >= revisions else None

    return eventually(done, timeout=30, what=f"{revisions} revisions checked")


def violations(report: dict[str, Any]) -> dict[str, int]:
    return {name: report["invariants"][name]["violations"] for name in INVARIANTS}


def test_the_observer_counts_a_referenced_snapshot_deleted_by_force(
    admin: RawApi, admin_kubeconfig: str, watched: tuple[Observer, str]
) -> None:
    observer, ns = watched
    observer.record_edit(ns, "ConfigMap", "app-config", {"k": "v1"})
    create(admin, configmap(ns, "app-config", {"k": "v1"}))
    deployment = mounting_deployment(ns, "web", "app-config", replicas=1)
    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=json.dumps(deployment))
    eventually(lambda: len(revisions(admin, ns)) == 1, what="the first ReplicaSet")
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "solo", "namespace": ns},
        "spec": deployment["spec"]["template"]["spec"],
    }
    create(admin, bare)  # pinned at its own creation, checked like a revision

    edit(observer, admin_kubeconfig, ns, "v2")
    kubectl(admin_kubeconfig, "-n", ns, "rollout", "restart", "deployment/web")
    eventually(lambda: len(revisions(admin, ns)) == 2, what="the restart's ReplicaSet")
    edit(observer, admin_kubeconfig, ns, "v3")
    kubectl(admin_kubeconfig, "-n", ns, "set", "image", "deployment/web", "app=app:2")
    eventually(lambda: len(revisions(admin, ns)) == 3, what="the new image's ReplicaSet")

    quiet = checked(observer, 4)
    assert violations(quiet) == dict.fromkeys(INVARIANTS, 0), quiet["invariants"]
    assert quiet["checked"]["revisions"] == 4, "each revision's content was checked"
    assert quiet["snapshots"] == {"created": 3, "deleted": 0}
    assert "webhook" in quiet["memory"]

    # Every watch cut, as an API server restart cuts them: the observer goes on watching.
    for stream in list(observer._streams.values()):
        stream.shutdown()
    edit(observer, admin_kubeconfig, ns, "v4")
    kubectl(admin_kubeconfig, "-n", ns, "set", "image", "deployment/web", "app=app:3")
    eventually(lambda: len(revisions(admin, ns)) == 4, what="the next ReplicaSet")
    after_cut = checked(observer, 5)
    assert violations(after_cut) == dict.fromkeys(INVARIANTS, 0), after_cut["invariants"]
    assert after_cut["checked"]["revisions"] == 5
    assert after_cut["observer_errors"] == []

    live = revisions(admin, ns)[-1]
    (snapshot,) = parse_pins(live["spec"]["template"]["metadata"]).values()
    kubectl(admin_kubeconfig, "-n", ns, "delete", "configmap", snapshot, "--wait=false")
    held = admin.get(f"/api/v1/namespaces/{ns}/configmaps/{snapshot}")
    assert held is not None and held["metadata"].get("deletionTimestamp"), "the finalizer holds"
    assert violations(observer.report(grace_seconds=GRACE, sweep_interval_seconds=SWEEP)) == (
        dict.fromkeys(INVARIANTS, 0)
    ), "a deletion asked for is not a deletion"

    kubectl(
        admin_kubeconfig, "-n", ns, "patch", "configmap", snapshot,
        "--type=json", "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]',
    )  # fmt: skip
    eventually(
        lambda: admin.get(f"/api/v1/namespaces/{ns}/configmaps/{snapshot}") is None,
        what="the snapshot to be gone",
    )

    def counted() -> dict[str, Any] | None:
        report = observer.report(grace_seconds=GRACE, sweep_interval_seconds=SWEEP)
        return report if violations(report)[NEVER_DELETED] else None

    caught = eventually(counted, timeout=30, what="the deletion to be counted")
    assert violations(caught)[NEVER_DELETED] == 1
    (example,) = caught["invariants"][NEVER_DELETED]["examples"]
    assert snapshot in example and "referenced it" in example
    # The ReplicaSet, its Pod and the Deployment still name it: invariant 1 too.
    assert violations(caught)[REFERENCES] >= 1
    assert all(snapshot in e for e in caught["invariants"][REFERENCES]["examples"])
    assert caught["snapshots"]["deleted"] == 1
    assert caught["snapshots"]["created"] == 4
