"""Roll on change against the real control plane: `configpin controller` processes under
the chart's controller identity roll opted-in Deployments when a source's content changes,
once per change, never after an undo until a source changes again, not even once
`revisionHistoryLimit` prunes the revision the undo left (StatefulSets, DaemonSets and Argo
Rollouts too).

Timings are shortened for tests: a pass every 0.5 s, edits 2 s apart or closer are one."""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.domain.pinning import parse_pins
from app.domain.rollonchange import RESTARTED_AT, ROLLED_FOR, Record, parse_record
from app.kube.api import RawApi
from devkit.bluegreen import ROLLOUT_API, argo_rollouts
from devkit.controllerproc import ControllerGroup, roll_on_change_group
from devkit.kubectl import kubectl
from devkit.kubeobjects import b64, eventually, get, items
from devkit.localwebhook import Webhook
from tests.e2e.conftest import Namespaces

DEBOUNCE = 2.0
# Long enough for a pass to see an edit, wait out the debounce and roll.
SETTLE = DEBOUNCE + 4.0
OPT_IN = "configpin.io/rollout-on-change"
API_VERSION = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Rollout": ROLLOUT_API,
}


@pytest.fixture(scope="module")
def controllers(
    admin: RawApi,
    admin_kubeconfig: str,
    webhook: Webhook,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControllerGroup]:
    workdir = tmp_path_factory.mktemp("rollonchange")
    key = webhook.certs / "hmac.key"
    with roll_on_change_group(admin, admin_kubeconfig, key, workdir, DEBOUNCE) as group:
        group.add("roller-a")
        yield group


@pytest.fixture
def ns(namespaces: Namespaces, controllers: ControllerGroup) -> str:
    return namespaces.make()


def apply(kubeconfig: str, *objects: dict[str, Any]) -> None:
    """`kubectl apply -f -` of the given objects."""
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest)


def sources(namespace: str, db: str = "v1", config: str = "c1") -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": namespace},
            "data": {"password": b64(db)},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": namespace},
            "data": {"mode": config},
        },
    ]


def deployment(namespace: str, name: str, opted_in: bool = True) -> dict[str, Any]:
    """A Deployment on Secret `db` (env) and ConfigMap `app-config` (a volume)."""
    annotations = {OPT_IN: "true"} if opted_in else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.example/app:1",
                            "env": [
                                {
                                    "name": "DB_PASSWORD",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "db", "key": "password"}
                                    },
                                }
                            ],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
                },
            },
        },
    }


def workload(namespace: str, kind: str, history_limit: int) -> dict[str, Any]:
    """`deployment(namespace, "web")` as another kind of the table, keeping at most
    `history_limit` old revisions."""
    obj = deployment(namespace, "web")
    obj["apiVersion"], obj["kind"] = API_VERSION[kind], kind
    spec = obj["spec"]
    spec["revisionHistoryLimit"] = history_limit
    if kind == "StatefulSet":
        spec["serviceName"] = "web"
    if kind == "DaemonSet":
        del spec["replicas"]
    if kind == "Rollout":
        spec["strategy"] = {"canary": {}}  # no steps: straight to the new revision
    return obj


def revisions(admin: RawApi, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    """The ReplicaSets (Deployment, Rollout) or ControllerRevisions the workload controls."""
    uid = stored(admin, namespace, name, kind)["metadata"]["uid"]
    held = "ControllerRevision" if kind in ("StatefulSet", "DaemonSet") else "ReplicaSet"
    return [
        r
        for r in items(admin, "apps/v1", held, namespace)
        if any(o["uid"] == uid for o in r["metadata"].get("ownerReferences", []))
    ]


def undo(kubeconfig: str, namespace: str, kind: str, name: str) -> None:
    """`kubectl rollout undo`, or `kubectl argo rollouts undo` for a Rollout."""
    if kind == "Rollout":
        argo_rollouts(kubeconfig, namespace, "undo", name)
    else:
        kubectl(kubeconfig, "-n", namespace, "rollout", "undo", f"{kind.lower()}/{name}")


def prune_history(admin: RawApi, kubeconfig: str, namespace: str, kind: str, name: str) -> None:
    """`revisionHistoryLimit: 0`: the workload's controller deletes every old revision."""
    kubectl(
        kubeconfig, "-n", namespace, "patch", kind.lower(), name, "--type=merge",
        "-p", json.dumps({"spec": {"revisionHistoryLimit": 0}}),
    )  # fmt: skip
    eventually(
        lambda: len(revisions(admin, namespace, kind, name)) == 1,
        timeout=90,
        what=f"the old revisions of {kind} {name} pruned",
    )


def edit_secret(kubeconfig: str, namespace: str, value: str) -> None:
    kubectl(
        kubeconfig, "-n", namespace, "patch", "secret", "db", "--type=merge",
        "-p", json.dumps({"data": {"password": b64(value)}}),
    )  # fmt: skip


def stored(admin: RawApi, namespace: str, name: str, kind: str = "Deployment") -> dict[str, Any]:
    found = get(admin, API_VERSION[kind], kind, namespace, name)
    assert found is not None, f"{kind} {namespace}/{name}"
    return found


def template_pins(
    admin: RawApi, namespace: str, name: str, kind: str = "Deployment"
) -> dict[str, str]:
    return parse_pins(stored(admin, namespace, name, kind)["spec"]["template"]["metadata"])


def replica_sets(admin: RawApi, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        rs
        for rs in items(admin, "apps/v1", "ReplicaSet", namespace, f"app={name}")
        if rs["metadata"]["ownerReferences"][0]["name"] == name
    ]


def rollouts_started(admin: RawApi, namespace: str, name: str) -> list[str]:
    """The messages of the Events configpin recorded for rollouts of `name`."""
    return [
        e["message"]
        for e in items(admin, "v1", "Event", namespace)
        if e["reason"] == "RolloutOnChange" and e["involvedObject"]["name"] == name
    ]


def restarted_at(admin: RawApi, namespace: str, name: str) -> str | None:
    found = get(admin, "apps/v1", "Deployment", namespace, name)
    assert found is not None
    value = (found["spec"]["template"]["metadata"].get("annotations") or {}).get(RESTARTED_AT)
    return value if isinstance(value, str) else None


def adopted(admin: RawApi, namespace: str, name: str, kind: str = "Deployment") -> dict[str, Any]:
    """Wait until the controller has seen the workload (its first record)."""

    def recorded() -> dict[str, Any] | None:
        found = get(admin, API_VERSION[kind], kind, namespace, name)
        annotations = (found or {}).get("metadata", {}).get("annotations") or {}
        return found if ROLLED_FOR in annotations else None

    return eventually(recorded, timeout=30, what=f"{name} to be adopted")


def wait_rolled(admin: RawApi, namespace: str, name: str, count: int) -> None:
    eventually(
        lambda: len(rollouts_started(admin, namespace, name)) >= count,
        timeout=30,
        what=f"rollout {count} of {name}",
    )


def test_a_secret_edit_rolls_once_and_the_old_revision_keeps_the_old_snapshot(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    apply(admin_kubeconfig, *sources(ns), deployment(ns, "web"), deployment(ns, "plain", False))
    adopted(admin, ns, "web")
    before = template_pins(admin, ns, "web")
    plain_before = template_pins(admin, ns, "plain")

    edit_secret(admin_kubeconfig, ns, "s3cret-two")
    wait_rolled(admin, ns, "web", 1)
    after = eventually(
        lambda: (p := template_pins(admin, ns, "web"))["secret/db"] != before["secret/db"] and p,
        what="the new revision pinned to the new content",
    )
    assert after["configmap/app-config"] == before["configmap/app-config"]
    two = eventually(lambda: replica_sets(admin, ns, "web")[1:] and replica_sets(admin, ns, "web"))
    by_pins = {parse_pins(rs["spec"]["template"]["metadata"])["secret/db"] for rs in two}
    assert by_pins == {before["secret/db"], after["secret/db"]}
    (message,) = rollouts_started(admin, ns, "web")
    assert message.startswith("secret db changed: rolling out")
    assert "s3cret" not in message

    time.sleep(SETTLE)  # nothing more: one change, one rollout
    assert len(rollouts_started(admin, ns, "web")) == 1
    assert len(replica_sets(admin, ns, "web")) == 2
    # Without the annotation, never rolled (it is not even recorded).
    assert template_pins(admin, ns, "plain") == plain_before
    assert rollouts_started(admin, ns, "plain") == []
    plain = get(admin, "apps/v1", "Deployment", ns, "plain")
    assert plain is not None and ROLLED_FOR not in (plain["metadata"].get("annotations") or {})


def test_an_undo_is_not_rolled_forward_until_a_source_changes_again(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    apply(admin_kubeconfig, *sources(ns), deployment(ns, "web"))
    adopted(admin, ns, "web")
    first = template_pins(admin, ns, "web")
    edit_secret(admin_kubeconfig, ns, "two")
    wait_rolled(admin, ns, "web", 1)
    second = eventually(
        lambda: (p := template_pins(admin, ns, "web")) != first and p, what="the rollout"
    )

    kubectl(admin_kubeconfig, "-n", ns, "rollout", "undo", "deployment/web")
    assert template_pins(admin, ns, "web") == first
    time.sleep(SETTLE)
    assert template_pins(admin, ns, "web") == first, "the undo was rolled forward"
    assert len(rollouts_started(admin, ns, "web")) == 1

    edit_secret(admin_kubeconfig, ns, "three")
    wait_rolled(admin, ns, "web", 2)
    third = eventually(
        lambda: (p := template_pins(admin, ns, "web")) != first and p, what="the next rollout"
    )
    assert third["secret/db"] not in (first["secret/db"], second["secret/db"])


@pytest.mark.parametrize("kind", list(API_VERSION))
def test_an_undo_stays_when_history_pruning_deletes_the_revision_it_left(
    admin: RawApi, admin_kubeconfig: str, ns: str, kind: str
) -> None:
    """The revision the undo left held the newest record (a Deployment's undo writes the old
    ReplicaSet's annotations over the Deployment's): once it is pruned, the workload is
    still not rolled forward, and the next edit still rolls."""
    if kind == "Rollout" and admin.get(f"/apis/{ROLLOUT_API}") is None:
        pytest.skip("the dev cluster serves no Argo Rollouts API (scripts/dev-cluster)")
    apply(admin_kubeconfig, *sources(ns), workload(ns, kind, history_limit=1))
    adopted(admin, ns, "web", kind)
    first = template_pins(admin, ns, "web", kind)
    edit_secret(admin_kubeconfig, ns, "two")
    wait_rolled(admin, ns, "web", 1)
    second = eventually(
        lambda: (p := template_pins(admin, ns, "web", kind)) != first and p, what="the rollout"
    )
    eventually(lambda: len(revisions(admin, ns, kind, "web")) == 2, what="two revisions")

    undo(admin_kubeconfig, ns, kind, "web")
    assert template_pins(admin, ns, "web", kind) == first
    prune_history(admin, admin_kubeconfig, ns, kind, "web")
    time.sleep(SETTLE)
    assert template_pins(admin, ns, "web", kind) == first, "the undo was rolled forward"
    assert len(rollouts_started(admin, ns, "web")) == 1

    edit_secret(admin_kubeconfig, ns, "three")
    wait_rolled(admin, ns, "web", 2)
    third = eventually(
        lambda: (p := template_pins(admin, ns, "web", kind)) != first and p,
        what="the next rollout",
    )
    assert third["secret/db"] not in (first["secret/db"], second["secret/db"])


def test_a_record_left_only_on_a_replicaset_is_written_back_onto_the_deployment(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    """An undo the webhook did not see (made before it kept the record, or while it failed
    open) leaves the Deployment with the older record: the controller brings the newest
    one back from the ReplicaSet the undo left, before pruning deletes that."""
    apply(admin_kubeconfig, *sources(ns), workload(ns, "Deployment", history_limit=1))
    older = adopted(admin, ns, "web")["metadata"]["annotations"][ROLLED_FOR]
    first = template_pins(admin, ns, "web")
    edit_secret(admin_kubeconfig, ns, "two")
    wait_rolled(admin, ns, "web", 1)
    eventually(lambda: template_pins(admin, ns, "web") != first, what="the rollout")
    eventually(lambda: len(revisions(admin, ns, "Deployment", "web")) == 2, what="two revisions")
    undo(admin_kubeconfig, ns, "Deployment", "web")
    # What the undo left before the webhook kept the record: the old ReplicaSet's.
    kubectl(admin_kubeconfig, "-n", ns, "annotate", "--overwrite", "deployment", "web",
            f"{ROLLED_FOR}={older}")  # fmt: skip
    eventually(
        lambda: (parse_record(stored(admin, ns, "web")["metadata"]) or Record(0, {})).n == 2,
        timeout=30,
        what="the newest record back on the Deployment",
    )
    prune_history(admin, admin_kubeconfig, ns, "Deployment", "web")
    time.sleep(SETTLE)
    assert template_pins(admin, ns, "web") == first, "the undo was rolled forward"
    assert len(rollouts_started(admin, ns, "web")) == 1


def test_quick_edits_make_one_rollout_and_unchanged_content_none(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    apply(admin_kubeconfig, *sources(ns), deployment(ns, "web"))
    adopted(admin, ns, "web")
    for value in ("a", "b", "c"):
        edit_secret(admin_kubeconfig, ns, value)
    wait_rolled(admin, ns, "web", 1)
    time.sleep(SETTLE)
    assert len(rollouts_started(admin, ns, "web")) == 1
    stamp = restarted_at(admin, ns, "web")

    # A new resourceVersion, the same content: labels, annotations, the same data again.
    kubectl(admin_kubeconfig, "-n", ns, "label", "secret", "db", "touched=yes")
    kubectl(admin_kubeconfig, "-n", ns, "annotate", "configmap", "app-config", "note=same")
    edit_secret(admin_kubeconfig, ns, "c")
    time.sleep(SETTLE)
    assert len(rollouts_started(admin, ns, "web")) == 1
    assert restarted_at(admin, ns, "web") == stamp


def test_a_required_source_that_appears_starts_one_rollout(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    secret, config = sources(ns)
    apply(admin_kubeconfig, config, deployment(ns, "web"))  # Secret db missing: left live
    assert "secret/db" not in template_pins(admin, ns, "web")
    adopted(admin, ns, "web")
    apply(admin_kubeconfig, secret)
    eventually(
        lambda: any("secret db appeared" in m for m in rollouts_started(admin, ns, "web")),
        timeout=30,
        what="a rollout for the Secret that appeared",
    )
    eventually(lambda: "secret/db" in template_pins(admin, ns, "web"), what="db pinned")


def test_the_namespace_annotation_opts_in_and_the_workload_can_opt_out(
    admin: RawApi, admin_kubeconfig: str, ns: str
) -> None:
    kubectl(admin_kubeconfig, "annotate", "namespace", ns, f"{OPT_IN}=true")
    opted_out = deployment(ns, "kept", False)
    opted_out["metadata"]["annotations"] = {OPT_IN: "false"}
    apply(admin_kubeconfig, *sources(ns), deployment(ns, "web", False), opted_out)
    adopted(admin, ns, "web")
    edit_secret(admin_kubeconfig, ns, "two")
    wait_rolled(admin, ns, "web", 1)
    time.sleep(1)
    assert rollouts_started(admin, ns, "kept") == []


def test_a_controller_down_during_an_edit_rolls_it_once_after_and_never_again(
    admin: RawApi, admin_kubeconfig: str, ns: str, controllers: ControllerGroup
) -> None:
    apply(admin_kubeconfig, *sources(ns), deployment(ns, "web"))
    adopted(admin, ns, "web")
    controllers.stop_all()
    try:
        edit_secret(admin_kubeconfig, ns, "edited-while-down")
        time.sleep(1)
        assert rollouts_started(admin, ns, "web") == []
    finally:
        controllers.add("roller-b")  # takes the Lease once roller-a's expires
    wait_rolled(admin, ns, "web", 1)
    record = parse_record(get(admin, "apps/v1", "Deployment", ns, "web")["metadata"])  # type: ignore[index]
    assert record is not None and record.n == 2  # adopted, then rolled

    controllers.stop_all()
    controllers.add("roller-c")
    time.sleep(4 + SETTLE)  # the Lease expires, roller-c leads and passes
    assert len(rollouts_started(admin, ns, "web")) == 1


def test_two_controller_processes_start_exactly_one_rollout_per_change(
    admin: RawApi, admin_kubeconfig: str, ns: str, controllers: ControllerGroup
) -> None:
    while len(controllers.alive()) < 2:
        controllers.add(f"roller-{len(controllers.running)}")
    apply(admin_kubeconfig, *sources(ns), deployment(ns, "web"))
    adopted(admin, ns, "web")
    for change in (1, 2):
        edit_secret(admin_kubeconfig, ns, f"change-{change}")
        wait_rolled(admin, ns, "web", change)
        time.sleep(SETTLE)
        assert len(rollouts_started(admin, ns, "web")) == change
    assert len(replica_sets(admin, ns, "web")) == 3
