"""Snapshots live exactly as long as something may run with them: ownership (the garbage
collector), the sweeper, in-use protection (the finalizer), leader election, uninstall.

`configpin controller` runs as child processes under the chart's controller ServiceAccount
and RBAC, with fast timings (a pass a second, a 6 s sweep grace, a 4 s Lease)."""

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.domain.lifecycle import FINALIZER
from app.domain.pinning import parse_pins
from app.kube.api import ApiError, RawApi
from devkit.controllerproc import (
    ControllerGroup,
    HookRunner,
    controller_identity,
    lease_holder,
)
from devkit.kubectl import kubectl
from devkit.kubeobjects import (
    configmap,
    create,
    delete,
    eventually,
    get,
    items,
    mounting_deployment,
)
from devkit.localwebhook import Webhook
from tests.e2e.conftest import Namespaces

MANAGED = "app.kubernetes.io/managed-by=configpin"
GRACE_SECONDS = 6
POLICY_API = "/apis/admissionregistration.k8s.io/v1"


@pytest.fixture(scope="module")
def controllers(
    admin: RawApi, admin_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerGroup]:
    workdir = tmp_path_factory.mktemp("controller")
    with ControllerGroup(
        controller_identity(admin, admin_kubeconfig, workdir),
        workdir,
        {"CONFIGPIN_SWEEP_GRACE_SECONDS": str(GRACE_SECONDS)},
    ) as group:
        group.add("controller-a")
        yield group


@pytest.fixture
def ns(namespaces: Namespaces, controllers: ControllerGroup) -> str:
    return namespaces.make()


@pytest.fixture
def running_pods(admin: RawApi) -> None:
    """Rollouts complete (and prune history) only where Pods become Ready."""
    if not admin.request("GET", "/api/v1/nodes").get("items"):
        pytest.skip("no Node in the dev cluster: Pods never run, rollouts never complete")


def snapshots(admin: RawApi, namespace: str) -> dict[str, dict[str, Any]]:
    return {s["metadata"]["name"]: s for s in items(admin, "v1", "ConfigMap", namespace, MANAGED)}


def pinned(obj: dict[str, Any], source: str | None = None) -> set[str]:
    """The ConfigMap snapshots the object's pins annotation names (of `source` only)."""
    template = (obj.get("spec") or {}).get("template")
    pins = parse_pins(template["metadata"] if template else obj["metadata"])
    return {
        name
        for key, name in pins.items()
        if key.startswith("configmap/") and (source is None or key == f"configmap/{source}")
    }


def replica_sets(admin: RawApi, namespace: str) -> list[dict[str, Any]]:
    return items(admin, "apps/v1", "ReplicaSet", namespace)


def deployment_yaml(namespace: str, name: str, history: int, replicas: int = 1) -> str:
    deployment = mounting_deployment(namespace, name, "app-config", replicas)
    deployment["spec"]["revisionHistoryLimit"] = history
    return json.dumps(deployment)


def roll(kubeconfig: str, namespace: str, name: str, edit: int) -> None:
    """A source edit, then `kubectl rollout restart` and `kubectl rollout status`."""
    kubectl(
        kubeconfig, "-n", namespace, "patch", "configmap", "app-config",
        "--type=merge", "-p", json.dumps({"data": {"edit": str(edit)}}),
    )  # fmt: skip
    kubectl(kubeconfig, "-n", namespace, "rollout", "restart", f"deployment/{name}")
    wait_rolled_out(kubeconfig, namespace, name)


def wait_rolled_out(kubeconfig: str, namespace: str, name: str) -> None:
    kubectl(
        kubeconfig, "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=120s",
        timeout=150,
    )  # fmt: skip


class RefusalPolicy:
    """A ValidatingAdmissionPolicy that refuses Deployments labelled `refuse` in one
    namespace: it runs after configpin's mutation, so configpin has made the snapshots."""

    def __init__(self, admin: RawApi, namespace: str) -> None:
        self.admin = admin
        self.name = f"refuse-{namespace}"
        self.policy = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": self.name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "resources": ["deployments"],
                            "operations": ["CREATE"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!has(object.metadata.labels) || "
                        "!('refuse' in object.metadata.labels)",
                        "message": "refused by policy",
                    }
                ],
            },
        }
        self.binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": self.name},
            "spec": {
                "policyName": self.name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
        admin.create(f"{POLICY_API}/validatingadmissionpolicies", self.policy)
        admin.create(f"{POLICY_API}/validatingadmissionpolicybindings", self.binding)
        self.namespace = namespace
        probe = 0

        def in_force() -> bool:
            nonlocal probe
            probe += 1
            try:  # a missing source: nothing is pinned, no snapshot made
                self.refused_deployment(f"probe-{probe}", "absent")
            except ApiError:
                return True
            self.admin.request(
                "DELETE", f"/apis/apps/v1/namespaces/{namespace}/deployments/probe-{probe}"
            )
            return False

        eventually(in_force, timeout=30, what="the refusal policy to be in force")

    def refused_deployment(self, name: str, source: str) -> dict[str, Any]:
        deployment = mounting_deployment(self.namespace, name, source, replicas=0)
        deployment["metadata"]["labels"] = {"refuse": "yes"}
        return create(self.admin, deployment)

    def remove(self) -> None:
        for kind, obj in (
            ("validatingadmissionpolicybindings", self.binding),
            ("validatingadmissionpolicies", self.policy),
        ):
            try:
                self.admin.request("DELETE", f"{POLICY_API}/{kind}/{obj['metadata']['name']}")
            except ApiError as error:
                if error.status != 404:
                    raise


@pytest.fixture
def refusal(admin: RawApi, ns: str) -> Iterator[RefusalPolicy]:
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    policy = RefusalPolicy(admin, ns)
    yield policy
    policy.remove()


def orphan_of_refused(refusal: RefusalPolicy, admin: RawApi, source: str) -> str:
    """The snapshot left by a Deployment that configpin pinned and the policy refused."""
    before = set(snapshots(admin, refusal.namespace))
    with pytest.raises(ApiError):
        refusal.refused_deployment(f"refused-{source}", source)
    (made,) = set(snapshots(admin, refusal.namespace)) - before
    return made


# ------------------------------------------------------------------ ownership


@pytest.mark.usefixtures("running_pods")
def test_history_limit_decides_which_snapshots_remain_and_deleting_removes_them(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=deployment_yaml(ns, "web", history=2))
    wait_rolled_out(admin_kubeconfig, ns, "web")
    for edit in range(5):
        roll(admin_kubeconfig, ns, "web", edit)

    def settled() -> bool:
        kept = replica_sets(admin, ns)
        wanted = set().union(*(pinned(rs) for rs in kept))
        return len(kept) == 3 and set(snapshots(admin, ns)) == wanted

    eventually(settled, timeout=60, what="only the kept ReplicaSets' snapshots")
    for name, snapshot in snapshots(admin, ns).items():
        owners = {o["uid"] for o in snapshot["metadata"].get("ownerReferences", [])}
        users = {rs["metadata"]["uid"] for rs in replica_sets(admin, ns) if name in pinned(rs)}
        assert owners == users, name
        assert all(
            "controller" not in o and "blockOwnerDeletion" not in o
            for o in snapshot["metadata"]["ownerReferences"]
        )

    kubectl(admin_kubeconfig, "-n", ns, "delete", "deployment", "web", timeout=150)
    eventually(lambda: not snapshots(admin, ns), timeout=60, what="every snapshot to go")


def test_a_bare_pods_snapshots_go_with_the_pod(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    template = mounting_deployment(ns, "solo", "app-config")["spec"]["template"]
    pod = create(
        admin,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "solo", "namespace": ns},
            "spec": template["spec"],
        },
    )
    (name,) = pinned(pod, "app-config")

    def owned_by_pod() -> bool:
        owners = snapshots(admin, ns)[name]["metadata"].get("ownerReferences", [])
        return [o["uid"] for o in owners] == [pod["metadata"]["uid"]]

    eventually(owned_by_pod, timeout=30, what="the Pod to own its snapshot")
    kubectl(admin_kubeconfig, "-n", ns, "delete", "pod", "solo", timeout=90)
    eventually(lambda: name not in snapshots(admin, ns), timeout=60, what="the snapshot to go")


# ------------------------------------------------------------------ sweeper


def test_a_refused_admissions_snapshot_is_swept_after_the_grace_period(
    admin: RawApi, refusal: RefusalPolicy
) -> None:
    orphan = orphan_of_refused(refusal, admin, "app-config")
    made = snapshots(admin, refusal.namespace)[orphan]["metadata"]
    assert FINALIZER in made["finalizers"] and not made.get("ownerReferences")
    started = time.monotonic()
    eventually(
        lambda: orphan not in snapshots(admin, refusal.namespace),
        timeout=60,
        what="the orphan to be swept",
    )
    assert time.monotonic() - started >= GRACE_SECONDS - 2, "swept before the grace period"
    events = items(admin, "v1", "Event", refusal.namespace)
    assert any(e["reason"] == "SnapshotSwept" and orphan in e["message"] for e in events)


def test_referenced_snapshots_are_never_swept_under_concurrent_creates(
    admin: RawApi, refusal: RefusalPolicy
) -> None:
    """Orphans old enough to be swept are pinned again by Deployments created while the
    sweeper runs: whatever the interleaving, a stored Deployment's snapshots remain."""
    ns = refusal.namespace
    sources = [f"src-{i}" for i in range(4)]
    for source in [*sources, "unused"]:
        create(admin, configmap(ns, source, {"k": source}))
    orphans = {source: orphan_of_refused(refusal, admin, source) for source in sources}
    unused = orphan_of_refused(refusal, admin, "unused")
    time.sleep(GRACE_SECONDS)  # all of them are sweepable from now on

    stored: list[dict[str, Any]] = []
    refusals: list[str] = []
    lock = threading.Lock()

    def create_deployments(worker: int) -> None:
        deadline = time.monotonic() + 15
        serial = 0
        while time.monotonic() < deadline:
            serial += 1
            source = sources[serial % len(sources)]
            name = f"keep-{worker}-{serial}"
            try:
                made = create(admin, mounting_deployment(ns, name, source, replicas=0))
            except ApiError as error:  # the snapshot was being deleted: a retry makes it anew
                with lock:
                    refusals.append(str(error))
                continue
            with lock:
                stored.append(made)

    workers = [threading.Thread(target=create_deployments, args=(i,)) for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    time.sleep(5)  # several more passes

    assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/{unused}") is None, (
        "the sweeper ran during the creates"
    )
    assert stored
    for deployment in stored:
        for name in pinned(deployment):
            found = admin.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")
            assert found is not None, f"{name} of {deployment['metadata']['name']} was deleted"
    print(f"{len(stored)} stored, {len(refusals)} refused, orphans {sorted(orphans.values())}")


# ------------------------------------------------------------------ in-use protection


@pytest.mark.usefixtures("running_pods")
def test_a_deleted_snapshot_in_use_stays_until_its_replicaset_is_pruned(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    create(admin, configmap(ns, "app-config", {"k": "v1"}))
    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=deployment_yaml(ns, "web", history=0))
    wait_rolled_out(admin_kubeconfig, ns, "web")
    (old_rs,) = replica_sets(admin, ns)
    (name,) = pinned(old_rs)
    kubectl(admin_kubeconfig, "-n", ns, "delete", "configmap", name, "--wait=false")

    kept = admin.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")
    assert kept is not None and kept["metadata"].get("deletionTimestamp")
    assert kept["data"] == {"k": "v1"}, "a terminating snapshot still serves its data"

    def told() -> bool:
        events = [e for e in items(admin, "v1", "Event", ns) if e["reason"] == "SnapshotInUse"]
        targets = {(e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in events}
        return {("ConfigMap", name), ("ReplicaSet", old_rs["metadata"]["name"])} <= targets

    eventually(told, timeout=30, what="Warning Events on the snapshot and the ReplicaSet")
    assert "ReplicaSet/" in next(
        e["message"] for e in items(admin, "v1", "Event", ns) if e["reason"] == "SnapshotInUse"
    )

    (pod,) = items(admin, "v1", "Pod", ns)
    kubectl(admin_kubeconfig, "-n", ns, "delete", "pod", pod["metadata"]["name"], timeout=90)
    wait_rolled_out(admin_kubeconfig, ns, "web")
    (again,) = items(admin, "v1", "Pod", ns)
    assert again["metadata"]["uid"] != pod["metadata"]["uid"]
    assert name in pinned(again)
    assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/{name}") is not None

    roll(admin_kubeconfig, ns, "web", 1)
    eventually(
        lambda: admin.get(f"/api/v1/namespaces/{ns}/configmaps/{name}") is None,
        timeout=60,
        what="the snapshot to go once its ReplicaSet is pruned",
    )


def test_a_snapshot_being_deleted_is_not_pinned_again(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    """Its finalizer may go as soon as the objects seen holding it are gone: an admission
    that pinned to it now would store an object naming a snapshot about to vanish."""
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    first = create(admin, mounting_deployment(ns, "first", "app-config", replicas=0))
    (name,) = pinned(first)
    kubectl(admin_kubeconfig, "-n", ns, "delete", "configmap", name, "--wait=false")
    with pytest.raises(ApiError) as refused:
        create(admin, mounting_deployment(ns, "second", "app-config", replicas=0))
    assert refused.value.status == 503  # refused as an API failure: a retry may succeed
    held = admin.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")
    assert held is not None and held["metadata"].get("deletionTimestamp"), "held by `first`"


def test_a_namespace_with_pinned_workloads_is_deleted_within_a_minute(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=deployment_yaml(ns, "web", history=2))
    pod = mounting_deployment(ns, "solo", "app-config")["spec"]["template"]
    create(
        admin,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "solo", "namespace": ns},
            "spec": pod["spec"],
        },
    )
    eventually(
        lambda: (
            snapshots(admin, ns)
            and all(s["metadata"].get("ownerReferences") for s in snapshots(admin, ns).values())
        ),
        timeout=30,
        what="snapshots owned",
    )
    started = time.monotonic()
    kubectl(admin_kubeconfig, "delete", "namespace", ns, "--timeout=60s", timeout=90)
    assert get(admin, "v1", "Namespace", None, ns) is None
    print(f"namespace deleted in {time.monotonic() - started:.1f}s")


# ------------------------------------------------------------------ leader election


def test_a_follower_takes_over_when_the_leader_is_killed(
    admin: RawApi, controllers: ControllerGroup, refusal: RefusalPolicy
) -> None:
    ns = refusal.namespace
    controllers.add("controller-b")
    first = eventually(lambda: lease_holder(admin), timeout=30, what="a leader")
    (leader,) = [c for c in controllers.running if c.identity == first and c.process]
    (follower,) = [c for c in controllers.running if c is not leader and c.process]

    kept = create(admin, mounting_deployment(ns, "kept", "app-config", replicas=0))
    orphans = set()
    for source in ("one", "two"):
        create(admin, configmap(ns, source, {"k": source}))
        orphans.add(orphan_of_refused(refusal, admin, source))

    leader.kill()
    killed = time.monotonic()
    eventually(lambda: lease_holder(admin) == follower.identity, timeout=30, what="takeover")
    took = time.monotonic() - killed
    # The Lease (4 s) runs out, then the follower's next try (every 1 s) wins; API calls on
    # the shared 2-core machine have been seen to add up to 8 s more.
    assert took < 4 + 2 * 1 + 10, f"takeover took {took:.1f}s"
    eventually(lambda: not orphans & set(snapshots(admin, ns)), timeout=60, what="orphans swept")
    for name in pinned(kept):
        assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/{name}") is not None
    swept = re.findall(r"swept (\S+)", leader.output() + follower.output())
    for name in orphans:
        assert sum(s.endswith(f"/{name}") for s in swept) == 1, (name, swept)
    print(f"takeover in {took:.1f}s")


# ------------------------------------------------------------------ uninstall (last)


def test_helm_uninstall_releases_every_snapshot_and_the_namespace_can_go(
    admin: RawApi,
    admin_kubeconfig: str,
    webhook: Webhook,
    controllers: ControllerGroup,
    ns: str,
    tmp_path: Path,
) -> None:
    from tests.e2e.test_chart_cluster import CHART, helm

    release, release_ns = "pin-life", "pin-life-system"
    helm(
        "install", release, CHART, "--namespace", release_ns, "--create-namespace",
        "--set", f"webhook.url={webhook.url}", "--set", f"webhook.caBundle={webhook.ca_bundle}",
        # No node runs the hook's Pod: the stand-in below runs its command.
        "--set", "nodeSelector.configpin\\.io/none=none",
        "--wait=false", kubeconfig=admin_kubeconfig,
    )  # fmt: skip
    controllers.stop_all()  # uninstalled: nothing releases but the hook
    create(admin, configmap(ns, "app-config", {"k": "v"}))
    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=deployment_yaml(ns, "web", history=2))
    assert snapshots(admin, ns)

    hook = HookRunner(admin, admin_kubeconfig, release_ns, f"{release}-configpin-release")
    hook.start(tmp_path)
    helm(
        "uninstall",
        release,
        "--namespace",
        release_ns,
        "--timeout=150s",
        kubeconfig=admin_kubeconfig,
    )
    hook.join(timeout=30)
    assert hook.result is not None and hook.result.returncode == 0, hook.result
    assert "released" in hook.result.stdout

    held = [
        f"{s['metadata']['namespace']}/{s['metadata']['name']}"
        for resource in ("configmaps", "secrets")
        for s in admin.request("GET", f"/api/v1/{resource}?labelSelector={MANAGED}")["items"]
        if FINALIZER in s["metadata"].get("finalizers", [])
    ]
    assert held == []
    kubectl(admin_kubeconfig, "delete", "namespace", ns, "--timeout=60s", timeout=90)
    delete(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": release_ns}})
