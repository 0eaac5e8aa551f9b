"""The chart's lifecycle controller and uninstall hook: their own identities, only the rights
they use, and the hook's ordering."""

from collections.abc import Callable

import pytest

from tests.chart import test_chart_render as chart
from tests.chart.test_chart_render import FULLNAME, VALUES, Doc, of_kind, one

helm, values_file, render = chart.helm, chart.values_file, chart.render  # its fixtures

CONTROLLER = f"{FULLNAME}-controller"
HOOK = f"{FULLNAME}-release"

VALUES["no-controller"] = {"controller": {"enabled": False, "releaseOnUninstall": False}}
VALUES["controller-tuned"] = {
    "controller": {"replicas": 3, "sweepGraceSeconds": 120, "resyncSeconds": 10}
}


def rules(docs: list[Doc], kind: str, name: str) -> set[tuple[str, str, str, str]]:
    return {
        (group, resource, verb, ",".join(rule.get("resourceNames", [])))
        for rule in one(docs, kind, name)["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def env(deployment: Doc) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_controller_deployment(render: Callable[[str], list[Doc]]) -> None:
    deployment = one(render("default"), "Deployment", CONTROLLER)
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["spec"]["serviceAccountName"] == CONTROLLER
    assert pod["spec"]["containers"][0]["args"] == ["controller"]
    assert pod["metadata"]["labels"]["configpin.io/component"] == "controller"
    # Not selected by the webhook's Service, PodDisruptionBudget or Deployment.
    webhook_selector = one(render("default"), "Deployment", FULLNAME)["spec"]["selector"]
    assert not all(
        pod["metadata"]["labels"].get(k) == v for k, v in webhook_selector["matchLabels"].items()
    )
    assert env(deployment)["CONFIGPIN_LEASE_NAME"] == CONTROLLER
    assert env(deployment)["CONFIGPIN_SWEEP_GRACE_SECONDS"] == "600"
    tuned = one(render("controller-tuned"), "Deployment", CONTROLLER)
    assert tuned["spec"]["replicas"] == 3
    assert env(tuned)["CONFIGPIN_SWEEP_GRACE_SECONDS"] == "120"
    assert env(tuned)["CONFIGPIN_CONTROLLER_RESYNC_SECONDS"] == "10"


def test_controller_rbac_is_what_it_uses(render: Callable[[str], list[Doc]]) -> None:
    docs = render("default")
    granted = rules(docs, "ClusterRole", CONTROLLER)
    for resource in ("configmaps", "secrets"):
        assert {v for g, r, v, _ in granted if r == resource} == {"list", "get", "patch", "delete"}
    reads = {r for g, r, v, _ in granted if v == "list"} - {"configmaps", "secrets"}
    assert reads == {
        "pods",
        "namespaces",
        "replicasets",
        "deployments",
        "statefulsets",
        "daemonsets",
        "controllerrevisions",
        "jobs",
        "cronjobs",
        "rollouts",
    }
    workloads = {"deployments", "statefulsets", "daemonsets", "rollouts"}
    assert {(r, v) for g, r, v, _ in granted if r not in reads | {"configmaps", "secrets"}} == {
        ("events", "create")
    }
    # Roll-on-change: patch the workload kinds it rolls, nothing else.
    assert {r for g, r, v, _ in granted if v == "patch"} == workloads | {"configmaps", "secrets"}
    assert not any(v in ("watch", "update", "create") and r != "events" for _, r, v, _ in granted)
    assert rules(docs, "Role", CONTROLLER) == {
        ("coordination.k8s.io", "leases", "create", ""),
        ("coordination.k8s.io", "leases", "get", CONTROLLER),
        ("coordination.k8s.io", "leases", "update", CONTROLLER),
        ("", "secrets", "get", f"{FULLNAME}-hmac-key"),  # the webhook's key, read only
    }
    assert env(one(docs, "Deployment", CONTROLLER))["CONFIGPIN_HMAC_KEY_SECRET"] == (
        f"{FULLNAME}-hmac-key"
    )


def test_uninstall_hook_releases_before_anything_is_deleted(
    render: Callable[[str], list[Doc]],
) -> None:
    docs = render("default")
    job = one(docs, "Job", HOOK)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["release", "--all", "--webhook-configuration", FULLNAME]
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        annotations = one(docs, kind, HOOK)["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-delete"
        assert int(annotations["helm.sh/hook-weight"]) < 0, "made before the Job"
    assert rules(docs, "ClusterRole", HOOK) == {
        ("", "configmaps", "list", ""),
        ("", "configmaps", "get", ""),
        ("", "configmaps", "patch", ""),
        ("", "secrets", "list", ""),
        ("", "secrets", "get", ""),
        ("", "secrets", "patch", ""),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "delete", FULLNAME),
    }


@pytest.mark.parametrize("case", ["no-controller"])
def test_both_can_be_left_out(case: str, render: Callable[[str], list[Doc]]) -> None:
    names = {d["metadata"]["name"] for d in render(case)}
    assert CONTROLLER not in names and HOOK not in names
    assert of_kind(render(case), "Job") == []


def test_controller_reads_an_existing_hmac_key_from_its_file(
    render: Callable[[str], list[Doc]],
) -> None:
    docs = render("existing-hmac")
    deployment = one(docs, "Deployment", CONTROLLER)
    assert env(deployment)["CONFIGPIN_HMAC_KEY_FILE"] == "/etc/configpin/hmac/key"
    assert "CONFIGPIN_HMAC_KEY_SECRET" not in env(deployment)
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    assert volume["secret"]["secretName"] == "my-hmac"
    assert volume["secret"]["items"] == [{"key": "hmac", "path": "key"}]
    assert not any(r == "secrets" for _, r, _, _ in rules(docs, "Role", CONTROLLER))
