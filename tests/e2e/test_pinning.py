"""configpin behind a real kube-apiserver and controller manager, driven as operators do."""

import json
import time
from typing import Any

import pytest

from app.domain.labels import SNAPSHOT_SELECTOR as SNAPSHOTS
from app.domain.naming import check_key, content_digest, snapshot_name
from app.kube.api import ApiError, RawApi
from devkit.kubectl import kubectl
from devkit.kubeobjects import (
    b64,
    configmap,
    create,
    create_with_warnings,
    eventually,
    get,
    items,
    secret,
    update,
)
from devkit.localwebhook import Webhook
from tests.e2e.conftest import Namespaces

PINS = "configpin.io/pins"
DB_PASSWORD = "e2e-sentinel-db-password-4417"
TOKEN = "e2e-sentinel-api-token-9921"


def web_deployment(
    namespace: str, image: str = "registry.example/web:1", **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, **meta},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "env": [
                                {
                                    "name": "DB_PASSWORD",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "db", "key": "password"}
                                    },
                                }
                            ],
                            "envFrom": [{"secretRef": {"name": "db"}}],
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/web"},
                                {"name": "bundle", "mountPath": "/etc/bundle"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "app-config"}},
                        {
                            "name": "bundle",
                            "projected": {
                                "sources": [
                                    {"configMap": {"name": "app-config"}},
                                    {"secret": {"name": "api-token"}},
                                ]
                            },
                        },
                    ],
                },
            },
        },
    }


def seed(admin: RawApi, namespace: str, color: str = "blue") -> None:
    create(admin, configmap(namespace, "app-config", {"color": color}))
    create(admin, secret(namespace, "db", {"password": DB_PASSWORD}))
    create(admin, secret(namespace, "api-token", {"token": TOKEN}))


def references(template: dict[str, Any]) -> dict[str, str]:
    """The names each reference of the web template points at."""
    spec = template["spec"]
    container = spec["containers"][0]
    projected = spec["volumes"][1]["projected"]["sources"]
    return {
        "env": container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "envFrom": container["envFrom"][0]["secretRef"]["name"],
        "volume": spec["volumes"][0]["configMap"]["name"],
        "projected-configmap": projected[0]["configMap"]["name"],
        "projected-secret": projected[1]["secret"]["name"],
    }


def replica_sets(admin: RawApi, namespace: str) -> list[dict[str, Any]]:
    found = items(admin, "apps/v1", "ReplicaSet", namespace, "app=web")
    return sorted(
        found,
        key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]),
    )


def wait_for_replica_sets(admin: RawApi, namespace: str, count: int) -> list[dict[str, Any]]:
    def settled() -> list[dict[str, Any]] | None:
        found = replica_sets(admin, namespace)
        return found if len(found) == count else None

    return eventually(settled, what=f"{count} ReplicaSets in {namespace}")


def kubectl_json(kubeconfig: str, *args: str, manifest: Any = None) -> dict[str, Any]:
    """`kubectl ARGS -o json`, the manifest (if any) given on stdin as `-f -`."""
    stdin = None if manifest is None else json.dumps(manifest)
    extra = ("-f", "-") if manifest is not None else ()
    result: dict[str, Any] = json.loads(
        kubectl(kubeconfig, *args, *extra, "-o", "json", stdin=stdin).stdout
    )
    return result


def edit_config(admin: RawApi, namespace: str, color: str) -> None:
    edited = get(admin, "v1", "ConfigMap", namespace, "app-config")
    assert edited is not None
    edited["data"] = {"color": color}
    update(admin, edited)


def snapshot_data(admin: RawApi, namespace: str, kind: str, name: str) -> dict[str, str]:
    obj = get(admin, "v1", kind, namespace, name)
    assert obj is not None, f"{kind} {namespace}/{name} does not exist"
    assert obj["immutable"] is True
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "configpin"
    data: dict[str, str] = obj["data"]
    return data


def test_deployment_replicasets_and_pods_are_pinned_to_identical_immutable_copies(
    admin: RawApi, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    created = create(admin, web_deployment(ns))
    refs = references(created["spec"]["template"])
    assert refs["volume"].startswith("app-config-") and refs["env"].startswith("db-")
    assert refs["volume"] == refs["projected-configmap"] and refs["env"] == refs["envFrom"]
    assert refs["projected-secret"].startswith("api-token-")
    pins = json.loads(created["spec"]["template"]["metadata"]["annotations"][PINS])
    assert pins == {
        "configmap/app-config": refs["volume"],
        "secret/db": refs["env"],
        "secret/api-token": refs["projected-secret"],
    }

    assert snapshot_data(admin, ns, "ConfigMap", refs["volume"]) == {"color": "blue"}
    assert snapshot_data(admin, ns, "Secret", refs["env"]) == {"password": b64(DB_PASSWORD)}
    assert snapshot_data(admin, ns, "Secret", refs["projected-secret"]) == {"token": b64(TOKEN)}

    [rs] = wait_for_replica_sets(admin, ns, 1)
    assert references(rs["spec"]["template"]) == refs
    pod = eventually(lambda: items(admin, "v1", "Pod", ns, "app=web"), what="a Pod")[0]
    assert references(pod) == refs


def test_edit_then_restart_pins_the_new_replicaset_and_rollback_restores_the_old(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    create(admin, web_deployment(ns))
    [first] = wait_for_replica_sets(admin, ns, 1)
    old_refs = references(first["spec"]["template"])

    # Edit the ConfigMap, then restart at once: the read must not be stale.
    edit_config(admin, ns, "green")
    kubectl(admin_kubeconfig, "-n", ns, "rollout", "restart", "deployment/web")
    first, second = wait_for_replica_sets(admin, ns, 2)
    new_refs = references(second["spec"]["template"])
    assert new_refs["volume"] != old_refs["volume"]
    assert snapshot_data(admin, ns, "ConfigMap", new_refs["volume"]) == {"color": "green"}
    assert references(first["spec"]["template"]) == old_refs
    assert snapshot_data(admin, ns, "ConfigMap", old_refs["volume"]) == {"color": "blue"}
    assert new_refs["env"] == old_refs["env"]  # unchanged Secret: the same snapshot

    # `kubectl rollout undo`: the old ReplicaSet's template written back.
    kubectl(admin_kubeconfig, "-n", ns, "rollout", "undo", "deployment/web")
    rolled_back = get(admin, "apps/v1", "Deployment", ns, "web")
    assert rolled_back is not None
    assert references(rolled_back["spec"]["template"]) == old_refs
    time.sleep(2)
    sets = wait_for_replica_sets(admin, ns, 2)  # the old ReplicaSet is reused, none is made
    newest = sets[-1]
    assert newest["metadata"]["name"] == first["metadata"]["name"]
    assert snapshot_data(admin, ns, "ConfigMap", old_refs["volume"]) == {"color": "blue"}


def test_reapplying_an_unchanged_manifest_makes_no_new_replicaset(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    manifest = web_deployment(ns)
    apply = ("apply", "--server-side", "--field-manager=e2e")
    stored = kubectl_json(admin_kubeconfig, *apply, manifest=manifest)
    [rs] = wait_for_replica_sets(admin, ns, 1)

    # Edited but not rolled out: a re-apply must not roll it out either.
    edit_config(admin, ns, "red")

    # `kubectl diff` (a server-side dry-run) shows nothing to change.
    diff = kubectl(
        admin_kubeconfig,
        "diff",
        "--server-side",
        "--field-manager=e2e",
        "-f",
        "-",
        stdin=json.dumps(manifest),
        check=False,
    )
    assert (diff.returncode, diff.stdout) == (0, ""), diff.stderr
    applied = kubectl_json(admin_kubeconfig, *apply, manifest=manifest)
    assert applied["spec"]["template"] == stored["spec"]["template"]
    replaced = kubectl_json(admin_kubeconfig, "replace", manifest=manifest)
    assert replaced["spec"]["template"] == stored["spec"]["template"]
    assert replaced["spec"] == stored["spec"]  # its generation moves: the controller's
    # revision annotation is not in the manifest, and Deployments count annotation changes
    kubectl(admin_kubeconfig, "-n", ns, "scale", "deployment/web", "--replicas=2")
    scaled = get(admin, "apps/v1", "Deployment", ns, "web")
    assert scaled is not None and scaled["spec"]["replicas"] == 2
    assert scaled["spec"]["template"] == stored["spec"]["template"]
    time.sleep(2)
    assert [r["metadata"]["name"] for r in replica_sets(admin, ns)] == [rs["metadata"]["name"]]


def test_server_side_dry_run_shows_the_real_names_and_writes_nothing(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    dry = kubectl_json(admin_kubeconfig, "create", "--dry-run=server", manifest=web_deployment(ns))
    assert get(admin, "apps/v1", "Deployment", ns, "web") is None
    assert items(admin, "v1", "ConfigMap", ns, SNAPSHOTS) == []
    assert items(admin, "v1", "Secret", ns, SNAPSHOTS) == []
    real = kubectl_json(admin_kubeconfig, "create", manifest=web_deployment(ns))
    assert references(dry["spec"]["template"]) == references(real["spec"]["template"])

    # A changed template after an edit: the dry-run names equal the real update's.
    edit_config(admin, ns, "purple")
    changed = web_deployment(ns, image="registry.example/web:2")
    dry_update = kubectl_json(admin_kubeconfig, "replace", "--dry-run=server", manifest=changed)
    assert len(items(admin, "v1", "ConfigMap", ns, SNAPSHOTS)) == 1
    real_update = kubectl_json(admin_kubeconfig, "replace", manifest=changed)
    assert references(dry_update["spec"]["template"]) == references(real_update["spec"]["template"])
    assert (
        references(real_update["spec"]["template"])["volume"]
        != references(real["spec"]["template"])["volume"]
    )


def test_out_of_scope_objects_and_references_stay_untouched(
    admin: RawApi, namespaces: Namespaces
) -> None:
    plain = references(web_deployment("x")["spec"]["template"])

    outside = namespaces.make(opted_in=False)
    seed(admin, outside)
    assert references(create(admin, web_deployment(outside))["spec"]["template"]) == plain

    ns = namespaces.make()
    seed(admin, ns)
    opted_out = web_deployment(ns, annotations={"configpin.io/inject": "false"})
    assert references(create(admin, opted_out)["spec"]["template"]) == plain

    source_out = namespaces.make()
    create(
        admin,
        configmap(
            source_out,
            "app-config",
            {"color": "blue"},
            annotations={"configpin.io/inject": "false"},
        ),
    )
    create(admin, secret(source_out, "db", {"password": DB_PASSWORD}))
    create(admin, secret(source_out, "api-token", {"token": TOKEN}))
    refs = references(create(admin, web_deployment(source_out))["spec"]["template"])
    assert refs["volume"] == refs["projected-configmap"] == "app-config"
    assert refs["env"] != "db"

    live = namespaces.make()
    seed(admin, live)
    refs = references(
        create(admin, web_deployment(live, annotations={"configpin.io/live": "secret/db"}))["spec"][
            "template"
        ]
    )
    assert refs["env"] == refs["envFrom"] == "db"
    assert refs["volume"] != "app-config"


def pod(namespace: str, volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "debug", "namespace": namespace},
        "spec": {
            "containers": [{"name": "shell", "image": "registry.example/shell:1"}],
            "volumes": volumes,
        },
    }


def test_bare_pods_missing_sources_and_warnings(admin: RawApi, namespaces: Namespaces) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    pinned = create(
        admin,
        pod(
            ns,
            [
                {"name": "c", "configMap": {"name": "app-config"}},
                {"name": "o", "configMap": {"name": "absent", "optional": True}},
            ],
        ),
    )
    volumes = pinned["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"].startswith("app-config-")
    assert volumes[1]["configMap"]["name"] == "absent"

    required = pod(
        ns,
        [
            {"name": "c", "configMap": {"name": "app-config"}},
            {"name": "s", "secret": {"secretName": "nowhere"}},
        ],
    )
    required["metadata"]["name"] = "debug-2"
    admitted, warnings = create_with_warnings(admin, required)
    # The missing one is left as written, the rest pinned.
    assert admitted["spec"]["volumes"][0]["configMap"]["name"].startswith("app-config-")
    assert admitted["spec"]["volumes"][1]["secret"]["secretName"] == "nowhere"
    assert any(f"secret {ns}/nowhere" in warning for warning in warnings), warnings


def test_webhook_down_follows_each_failure_setting(
    admin: RawApi, namespaces: Namespaces, webhook: Webhook
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    webhook.stop()
    try:
        # Deployments: failurePolicy Fail, an apply can be retried.
        with pytest.raises(ApiError) as refused:
            create(admin, web_deployment(ns))
        assert refused.value.status >= 400
        assert get(admin, "apps/v1", "Deployment", ns, "web") is None
        # Pods: failurePolicy Ignore, admitted as written.
        admitted = create(admin, pod(ns, [{"name": "c", "configMap": {"name": "app-config"}}]))
        assert admitted["spec"]["volumes"][0]["configMap"]["name"] == "app-config"
    finally:
        webhook.start()
    created = create(admin, web_deployment(ns))
    assert references(created["spec"]["template"])["volume"].startswith("app-config-")


def test_no_secret_value_in_the_webhook_log(webhook: Webhook) -> None:
    # Runs last in this module: by now every scenario above has gone through the server.
    log = webhook.log.read_text()
    assert "admission" in log or "Deployment" in log, "the log should show the reviews"
    for value in (DB_PASSWORD, TOKEN, b64(DB_PASSWORD), b64(TOKEN)):
        assert value not in log


def test_rollback_ignores_an_edit_made_after_both_revisions(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces
) -> None:
    """v1 and v2 ran on the same config; the config is edited but not rolled out; undo to v1
    brings v1 back on the config it ran with, on its own ReplicaSet."""
    ns = namespaces.make()
    seed(admin, ns)
    create(admin, web_deployment(ns))
    [first] = wait_for_replica_sets(admin, ns, 1)
    kubectl(
        admin_kubeconfig, "-n", ns, "set", "image", "deployment/web", "web=registry.example/web:2"
    )
    first, second = wait_for_replica_sets(admin, ns, 2)
    assert references(first["spec"]["template"]) == references(second["spec"]["template"])

    edit_config(admin, ns, "orange")
    kubectl(admin_kubeconfig, "-n", ns, "rollout", "undo", "deployment/web")
    time.sleep(2)
    sets = wait_for_replica_sets(admin, ns, 2)
    assert sets[-1]["metadata"]["name"] == first["metadata"]["name"]
    volume = references(sets[-1]["spec"]["template"])["volume"]
    assert snapshot_data(admin, ns, "ConfigMap", volume) == {"color": "blue"}


def test_a_snapshot_name_taken_by_another_object_fails_per_kind_with_an_event(
    admin: RawApi, namespaces: Namespaces, webhook: Webhook
) -> None:
    ns = namespaces.make()
    seed(admin, ns)
    source = get(admin, "v1", "ConfigMap", ns, "app-config")
    assert source is not None
    key = check_key((webhook.certs / "hmac.key").read_bytes().strip())
    taken = snapshot_name("app-config", content_digest(key, "configmap", source))
    create(admin, configmap(ns, taken, {"not": "a snapshot"}))

    with pytest.raises(ApiError) as refused:  # Deployments fail closed
        create(admin, web_deployment(ns))
    assert refused.value.status >= 400
    assert get(admin, "apps/v1", "Deployment", ns, "web") is None

    admitted, warnings = create_with_warnings(
        admin, pod(ns, [{"name": "c", "configMap": {"name": "app-config"}}])
    )
    assert admitted["spec"]["volumes"][0]["configMap"]["name"] == "app-config"
    assert any(f"configmap {ns}/{taken}" in warning for warning in warnings), warnings

    def warning_event() -> dict[str, Any] | None:
        for event in items(admin, "v1", "Event", ns):
            if event["reason"] == "PinningFailed" and event["type"] == "Warning":
                return event
        return None

    event = eventually(warning_event, what="a PinningFailed event")
    assert event["involvedObject"]["kind"] == "Pod" and taken in event["message"]


def test_a_crafted_reference_cannot_copy_another_namespaces_secret(
    admin: RawApi, namespaces: Namespaces
) -> None:
    victim = namespaces.make(opted_in=False)
    create(admin, secret(victim, "db", {"password": "victim-only-value"}))
    attacker = namespaces.make()
    seed(admin, attacker)
    crafted = web_deployment(attacker)
    env = crafted["spec"]["template"]["spec"]["containers"][0]["env"][0]
    env["valueFrom"]["secretKeyRef"]["name"] = f"../../{victim}/secrets/db"
    with pytest.raises(ApiError) as refused:  # the API server's validation refuses the name
        create(admin, crafted)
    assert refused.value.status == 422
    stolen = b64("victim-only-value")
    assert all(
        stolen not in (s.get("data") or {}).values() for s in items(admin, "v1", "Secret", attacker)
    )
