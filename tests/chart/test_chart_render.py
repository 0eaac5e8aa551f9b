"""Render tests for charts/configpin: `helm lint` and `helm template`, no cluster.

helm comes from scripts/helm (built from Go modules on first use). When it cannot be built
every test here is skipped with the build error as the reason.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.domain.workloads import DEFAULT_CUSTOM, WorkloadKind
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "configpin"
HELM = REPO / "scripts" / "helm"

RELEASE = "prod"
NAMESPACE = "pin-system"
FULLNAME = "prod-configpin"
TLS_SECRET = f"{FULLNAME}-tls"
HMAC_SECRET = f"{FULLNAME}-hmac-key"

Doc = dict[str, Any]

# One values set per chart option; each is rendered once per test session.
VALUES: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager": {"tls": {"mode": "cert-manager"}},
    "existing-hmac": {"hmacKey": {"existingSecret": "my-hmac", "secretKey": "hmac"}},
    "url-cabundle": {
        "webhook": {"url": "https://127.0.0.1:9443/", "caBundle": "Q0FCVU5ETEU="},
    },
    "cert-manager-cabundle": {
        "tls": {"mode": "cert-manager"},
        "webhook": {"caBundle": "Q0FCVU5ETEU="},
    },
    "network-policy": {"networkPolicy": {"enabled": True}},
    "network-policy-from": {
        "networkPolicy": {
            "enabled": True,
            "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
        },
    },
    "service-monitor": {
        "serviceMonitor": {
            "enabled": True,
            "insecureSkipVerify": False,
            "labels": {"release": "kube-prometheus"},
        },
    },
    "single-replica": {"replicas": 1},
    "custom-kinds": {
        "workloads": {
            "custom": [
                {
                    "group": "apps.kruise.io",
                    "version": "v1alpha1",
                    "kind": "CloneSet",
                    "resource": "clonesets",
                    "template": "/spec/template",
                    "rollbacks": "controllerrevisions",
                },
            ]
        }
    },
    "priority-class": {"priorityClassName": "system-cluster-critical"},
    "tuned": {
        "pinning": {
            "apiFailure": {"deployments": "allow", "pods": "deny"},
            "missingSource": "deny",
            "apiTimeoutSeconds": 5,
        },
        "logLevel": "debug",
        "webhook": {
            "timeoutSeconds": 30,
            "failurePolicy": {"deployments": "Ignore", "pods": "Fail"},
        },
        "podLabels": {"team": "platform", "app.kubernetes.io/name": "overridden"},
        "podAnnotations": {"example.com/note": "x"},
        "imagePullSecrets": [{"name": "regcred"}],
        "image": {"repository": "registry.local/configpin", "tag": "1.2.3"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "runAsUser": None,
    },
}


# --- helm plumbing -------------------------------------------------------------------


def run_helm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def helm() -> Callable[..., subprocess.CompletedProcess[str]]:
    """scripts/helm, built on first use; skips the tests when it cannot be built."""
    try:
        # The first call may build helm from source, which takes minutes.
        proc = run_helm("version", "--short", timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"helm could not be built or run via scripts/helm: {err}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        pytest.skip(f"helm could not be built via scripts/helm (exit {proc.returncode}):\n{tail}")
    return run_helm


@pytest.fixture(scope="session")
def values_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], Path]:
    directory = tmp_path_factory.mktemp("values")
    counter = iter(range(1_000_000))

    def write(values: dict[str, Any]) -> Path:
        path = directory / f"values-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    return write


def template(
    helm: Callable[..., subprocess.CompletedProcess[str]], values: Path
) -> subprocess.CompletedProcess[str]:
    return helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values))


@pytest.fixture(scope="session")
def render(
    helm: Callable[..., subprocess.CompletedProcess[str]],
    values_file: Callable[[dict[str, Any]], Path],
) -> Callable[[str], list[Doc]]:
    """render(case) -> the documents `helm template` produces for VALUES[case], cached."""
    cache: dict[str, list[Doc]] = {}

    def rendered(case: str) -> list[Doc]:
        if case not in cache:
            proc = template(helm, values_file(VALUES[case]))
            assert proc.returncode == 0, f"helm template ({case}) failed:\n{proc.stderr}"
            cache[case] = [d for d in yaml.safe_load_all(proc.stdout) if d]
        return cache[case]

    return rendered


# --- small helpers ---------------------------------------------------------------------


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def webhooks(docs: list[Doc]) -> dict[str, Doc]:
    config = one(docs, "MutatingWebhookConfiguration", FULLNAME)
    return {w["name"]: w for w in config["webhooks"]}


def container(docs: list[Doc]) -> Doc:
    containers = one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    main: Doc = containers[0]
    return main


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]
    return spec


def env(docs: list[Doc]) -> dict[str, Any]:
    """Container env as name -> value (or the valueFrom object)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


def rules(role: Doc) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """RBAC rules flattened to sorted (apiGroup, resource, verbs, resourceNames) tuples."""
    flat = []
    for rule in role["rules"]:
        verbs = tuple(sorted(rule["verbs"]))
        names = tuple(sorted(rule.get("resourceNames", [])))
        flat += [(g, r, verbs, names) for g in rule["apiGroups"] for r in rule["resources"]]
    return sorted(flat)


# --- lint and determinism --------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(VALUES))
def test_lint(
    case: str,
    helm: Callable[..., subprocess.CompletedProcess[str]],
    values_file: Callable[[dict[str, Any]], Path],
) -> None:
    values = values_file(VALUES[case])
    proc = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, "-f", str(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rendering_is_deterministic(
    helm: Callable[..., subprocess.CompletedProcess[str]],
    values_file: Callable[[dict[str, Any]], Path],
) -> None:
    first, second = (template(helm, values_file({})) for _ in range(2))
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout


def test_templates_generate_no_random_values_and_make_no_lookups() -> None:
    """Random or cluster-dependent values would change on every render (GitOps diffs)."""
    functions = [
        "genCA", "genSelfSignedCert", "genSignedCert", "genPrivateKey", "randAlpha",
        "randAlphaNum", "randAscii", "randNumeric", "randBytes", "uuidv4", "lookup", "now",
    ]  # fmt: skip
    forbidden = re.compile(r"\b(" + "|".join(functions) + r")\b")
    for path in (CHART / "templates").iterdir():
        hits = forbidden.findall(path.read_text())
        assert not hits, f"{path.name} uses {hits}"


@pytest.mark.parametrize("case", sorted(VALUES))
def test_every_object_is_namespaced_to_the_release_or_cluster_scoped(
    case: str, render: Callable[[str], list[Doc]]
) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
    for doc in render(case):
        meta = doc["metadata"]
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in meta, doc["kind"]
        else:
            assert meta.get("namespace") == NAMESPACE, (doc["kind"], meta["name"])
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE


# --- MutatingWebhookConfiguration ----------------------------------------------------------


def webhook_rule(kind: WorkloadKind) -> Doc:
    return {
        "apiGroups": [kind.group],
        "apiVersions": [kind.version],
        "resources": [kind.resource],
        "operations": list(kind.operations),
        "scope": "Namespaced",
    }


@pytest.mark.parametrize("case", ["default", "custom-kinds"])
def test_webhook_rules_are_the_servers_table_of_workload_kinds(
    case: str, render: Callable[[str], list[Doc]]
) -> None:
    """The chart hands its custom kinds to the server (CONFIGPIN_CUSTOM_KINDS); the table
    the server builds from them is exactly what the webhook's rules list."""
    docs = render(case)
    table = Settings.model_validate(
        {"custom_kinds": json.loads(env(docs)["CONFIGPIN_CUSTOM_KINDS"])}
    )
    kinds = list(table.workloads())
    hooks = webhooks(docs)
    assert sorted(hooks) == ["pods.configpin.io", "workloads.configpin.io"]
    assert hooks["workloads.configpin.io"]["rules"] == [
        webhook_rule(kind) for kind in kinds if not kind.is_pod
    ]
    assert hooks["pods.configpin.io"]["rules"] == [webhook_rule(k) for k in kinds if k.is_pod]
    custom = [kind.row() for kind in table.custom_kinds]
    given = VALUES[case].get("workloads", {}).get("custom")
    if given is None:  # the chart's default list is the server's
        assert custom == list(DEFAULT_CUSTOM)
    else:
        assert [(k.group, k.kind, k.template) for k in custom] == [
            (c["group"], c["kind"], c["template"]) for c in given
        ]


def test_webhook_failure_policies_by_default(render: Callable[[str], list[Doc]]) -> None:
    hooks = webhooks(render("default"))
    assert hooks["workloads.configpin.io"]["failurePolicy"] == "Fail"

    pods = hooks["pods.configpin.io"]
    assert pods["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "operations": ["CREATE"],
            "scope": "Namespaced",
        }
    ]
    assert pods["failurePolicy"] == "Ignore"


@pytest.mark.parametrize("case", sorted(VALUES))
def test_webhook_common_fields(case: str, render: Callable[[str], list[Doc]]) -> None:
    timeout = VALUES[case].get("webhook", {}).get("timeoutSeconds", 10)
    for hook in webhooks(render(case)).values():
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["matchPolicy"] == "Equivalent"
        assert hook["reinvocationPolicy"] == "IfNeeded"
        assert hook["timeoutSeconds"] == timeout
        assert hook["namespaceSelector"] == {
            "matchLabels": {"configpin.io/inject": "enabled"},
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": [NAMESPACE, "kube-system", "kube-public", "kube-node-lease"],
                }
            ],
        }
        assert hook["objectSelector"] == {
            "matchExpressions": [
                {"key": "configpin.io/component", "operator": "NotIn", "values": ["webhook"]}
            ]
        }


def test_failure_policies_follow_values(render: Callable[[str], list[Doc]]) -> None:
    hooks = webhooks(render("tuned"))
    assert hooks["workloads.configpin.io"]["failurePolicy"] == "Ignore"
    assert hooks["pods.configpin.io"]["failurePolicy"] == "Fail"


@pytest.mark.parametrize("case", sorted(VALUES))
def test_only_replicasets_without_a_controller_are_sent_and_revisions_only_listed(
    case: str, render: Callable[[str], list[Doc]]
) -> None:
    # A mutated ReplicaSet makes the deployment controller create ReplicaSets without end:
    # the API server sends only ReplicaSets that no controller owns (the
    # condition itself runs in the real API server in tests/e2e/test_workload_kinds.py).
    # configpin only lists revisions, to recognise a rollback.
    docs = render(case)
    hook = webhooks(docs)["workloads.configpin.io"]
    assert [r for r in hook["rules"] if r["resources"] == ["replicasets"]]
    [condition] = hook["matchConditions"]
    expression = " ".join(condition["expression"].split())
    assert "request.resource.resource == 'replicasets'" in expression
    assert "o.controller" in expression
    for doc in docs:
        for rule in doc.get("rules", []) if doc["kind"] in ("ClusterRole", "Role") else []:
            if {"replicasets", "controllerrevisions"} & set(rule.get("resources", [])):
                assert rule["verbs"] == ["list"], rule


def test_self_managed_tls_leaves_ca_bundle_to_the_server(
    render: Callable[[str], list[Doc]],
) -> None:
    docs = render("default")
    config = one(docs, "MutatingWebhookConfiguration", FULLNAME)
    assert "annotations" not in config["metadata"]
    for hook in config["webhooks"]:
        assert hook["clientConfig"] == {
            "service": {"name": FULLNAME, "namespace": NAMESPACE, "path": "/mutate", "port": 443}
        }


def test_cert_manager_injects_the_ca(render: Callable[[str], list[Doc]]) -> None:
    config = one(render("cert-manager"), "MutatingWebhookConfiguration", FULLNAME)
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/{TLS_SECRET}"
    }
    for hook in config["webhooks"]:
        assert "caBundle" not in hook["clientConfig"]


def test_url_and_ca_bundle_override(render: Callable[[str], list[Doc]]) -> None:
    for hook in webhooks(render("url-cabundle")).values():
        assert hook["clientConfig"] == {
            "url": "https://127.0.0.1:9443/mutate",
            "caBundle": "Q0FCVU5ETEU=",
        }


def test_ca_bundle_override_takes_precedence_over_cert_manager(
    render: Callable[[str], list[Doc]],
) -> None:
    config = one(render("cert-manager-cabundle"), "MutatingWebhookConfiguration", FULLNAME)
    assert "cert-manager.io/inject-ca-from" not in config["metadata"].get("annotations", {})
    for hook in config["webhooks"]:
        assert hook["clientConfig"]["caBundle"] == "Q0FCVU5ETEU="
        assert hook["clientConfig"]["service"]["name"] == FULLNAME


# --- RBAC ----------------------------------------------------------------------------------

CLUSTER_RULES = [
    ("", "configmaps", ("create", "get"), ()),
    ("", "events", ("create",), ()),
    ("", "namespaces", ("get",), ()),
    ("", "secrets", ("create", "get"), ()),
    ("apps", "controllerrevisions", ("list",), ()),
    ("apps", "replicasets", ("list",), ()),
]
WEBHOOK_CONFIG_RULE = (
    "admissionregistration.k8s.io",
    "mutatingwebhookconfigurations",
    ("get", "patch"),
    (FULLNAME,),
)


def test_cluster_role_self_managed(render: Callable[[str], list[Doc]]) -> None:
    role = one(render("default"), "ClusterRole", FULLNAME)
    assert rules(role) == sorted([*CLUSTER_RULES, WEBHOOK_CONFIG_RULE])


def test_cluster_role_cert_manager_cannot_touch_webhook_configurations(
    render: Callable[[str], list[Doc]],
) -> None:
    role = one(render("cert-manager"), "ClusterRole", FULLNAME)
    assert rules(role) == CLUSTER_RULES


def test_role_renews_only_the_tls_secret(render: Callable[[str], list[Doc]]) -> None:
    docs = render("default")
    assert rules(one(docs, "Role", FULLNAME)) == [("", "secrets", ("update",), (TLS_SECRET,))]
    for kind in ("Role", "RoleBinding"):
        assert [
            r for r in of_kind(render("cert-manager"), kind) if r["metadata"]["name"] == FULLNAME
        ] == []


@pytest.mark.parametrize("case", ["default", "cert-manager"])
def test_bindings_grant_the_roles_to_the_service_account(
    case: str, render: Callable[[str], list[Doc]]
) -> None:
    docs = render(case)
    subject = {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    account = one(docs, "ServiceAccount", FULLNAME)
    assert account["metadata"]["namespace"] == NAMESPACE
    for binding_kind, role_kind in [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")]:
        for binding in of_kind(docs, binding_kind):
            if binding["metadata"]["name"] != FULLNAME:
                continue  # the controller's and the uninstall hook's: test_chart_controller.py
            assert binding["subjects"] == [subject]
            assert binding["roleRef"]["kind"] == role_kind
            one(docs, role_kind, binding["roleRef"]["name"])
    assert pod_spec(docs)["serviceAccountName"] == FULLNAME


@pytest.mark.parametrize("case", sorted(VALUES))
def test_rbac_has_no_wildcards(case: str, render: Callable[[str], list[Doc]]) -> None:
    for role in of_kind(render(case), "ClusterRole") + of_kind(render(case), "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (role["kind"], rule)


# --- Deployment ------------------------------------------------------------------------------


def test_deployment_defaults(render: Callable[[str], list[Doc]]) -> None:
    docs = render("default")
    deployment = one(docs, "Deployment", FULLNAME)
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["configpin.io/component"] == "webhook"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert template["spec"]["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        }
    ]
    assert "priorityClassName" not in template["spec"]
    assert container(docs)["image"] == "configpin:0.1.0"
    assert container(docs)["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]


@pytest.mark.parametrize("case", sorted(VALUES))
def test_restricted_security_context(case: str, render: Callable[[str], list[Doc]]) -> None:
    docs = render(case)
    pod = pod_spec(docs)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container(docs)["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["runAsNonRoot"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    if case == "tuned":  # runAsUser: null leaves the UID to the platform
        assert "runAsUser" not in pod
        assert "runAsUser" not in ctx
    else:
        assert pod["runAsUser"] == ctx["runAsUser"] == 10001
    tmp = {"name": "tmp", "mountPath": "/tmp"}
    assert tmp in container(docs)["volumeMounts"]
    assert "emptyDir" in next(v for v in pod_spec(docs)["volumes"] if v["name"] == "tmp")


def test_probes(render: Callable[[str], list[Doc]]) -> None:
    main = container(render("default"))
    https = {"port": "https", "scheme": "HTTPS"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", **https}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", **https}


def test_resources_have_requests_and_memory_limit_but_no_cpu_limit(
    render: Callable[[str], list[Doc]],
) -> None:
    resources = container(render("default"))["resources"]
    assert resources["requests"] == {"cpu": "50m", "memory": "128Mi"}
    assert "memory" in resources["limits"]
    assert "cpu" not in resources["limits"]


def test_self_managed_tls_args_and_env(render: Callable[[str], list[Doc]]) -> None:
    docs = render("default")
    main = container(docs)
    assert main["args"] == ["serve", "--port", "8443"]
    variables = env(docs)
    assert variables["CONFIGPIN_TLS_MODE"] == "self-managed"
    assert variables["CONFIGPIN_TLS_SECRET"] == TLS_SECRET
    assert variables["CONFIGPIN_WEBHOOK_CONFIGURATION"] == FULLNAME
    assert variables["CONFIGPIN_SERVICE_NAME"] == FULLNAME
    assert variables["CONFIGPIN_CERT_DIR"] == "/tmp/tls"
    assert [m["name"] for m in main["volumeMounts"]] == ["tmp"]


def test_cert_manager_tls_args_and_mount(render: Callable[[str], list[Doc]]) -> None:
    docs = render("cert-manager")
    main = container(docs)
    assert main["args"] == [
        "serve", "--port", "8443",
        "--cert", "/etc/configpin/tls/tls.crt", "--key", "/etc/configpin/tls/tls.key",
    ]  # fmt: skip
    assert {"name": "tls", "mountPath": "/etc/configpin/tls", "readOnly": True} in main[
        "volumeMounts"
    ]
    volume = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == TLS_SECRET
    assert not {k for k in env(docs) if k.startswith("CONFIGPIN_TLS_")}
    assert "CONFIGPIN_WEBHOOK_CONFIGURATION" not in env(docs)


def test_default_env(render: Callable[[str], list[Doc]]) -> None:
    variables = env(render("default"))
    assert variables["CONFIGPIN_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert variables["CONFIGPIN_DEPLOYMENT_FAILURE"] == "deny"
    assert variables["CONFIGPIN_POD_FAILURE"] == "allow"
    assert variables["CONFIGPIN_MISSING_SOURCE"] == "warn"
    assert variables["CONFIGPIN_API_TIMEOUT_SECONDS"] == "3"
    assert variables["CONFIGPIN_LOG_LEVEL"] == "info"
    assert variables["CONFIGPIN_HMAC_KEY_SECRET"] == HMAC_SECRET
    assert "CONFIGPIN_HMAC_KEY_FILE" not in variables


def test_env_follows_values(render: Callable[[str], list[Doc]]) -> None:
    variables = env(render("tuned"))
    assert variables["CONFIGPIN_DEPLOYMENT_FAILURE"] == "allow"
    assert variables["CONFIGPIN_POD_FAILURE"] == "deny"
    assert variables["CONFIGPIN_MISSING_SOURCE"] == "deny"
    assert variables["CONFIGPIN_API_TIMEOUT_SECONDS"] == "5"
    assert variables["CONFIGPIN_LOG_LEVEL"] == "debug"


def test_existing_hmac_secret_is_mounted(render: Callable[[str], list[Doc]]) -> None:
    docs = render("existing-hmac")
    variables = env(docs)
    assert variables["CONFIGPIN_HMAC_KEY_FILE"] == "/etc/configpin/hmac/key"
    assert "CONFIGPIN_HMAC_KEY_SECRET" not in variables
    mount = {"name": "hmac-key", "mountPath": "/etc/configpin/hmac", "readOnly": True}
    assert mount in container(docs)["volumeMounts"]
    volume = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "hmac-key")
    assert volume["secret"]["secretName"] == "my-hmac"
    assert volume["secret"]["items"] == [{"key": "hmac", "path": "key"}]


def test_pod_options(render: Callable[[str], list[Doc]]) -> None:
    docs = render("tuned")
    spec = pod_spec(docs)
    labels = one(docs, "Deployment", FULLNAME)["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "platform"
    assert labels["app.kubernetes.io/name"] == "configpin"  # selector labels win
    assert labels["configpin.io/component"] == "webhook"
    annotations = one(docs, "Deployment", FULLNAME)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"example.com/note": "x"}
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert container(docs)["image"] == "registry.local/configpin:1.2.3"


def test_priority_class(render: Callable[[str], list[Doc]]) -> None:
    assert pod_spec(render("priority-class"))["priorityClassName"] == "system-cluster-critical"


# --- Service, PDB, NetworkPolicy, ServiceMonitor, certificates -------------------------------


def test_service(render: Callable[[str], list[Doc]]) -> None:
    docs = render("default")
    service = one(docs, "Service", FULLNAME)
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]
    selector = one(docs, "Deployment", FULLNAME)["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector


def test_pod_disruption_budget_only_with_several_replicas(
    render: Callable[[str], list[Doc]],
) -> None:
    pdb = one(render("default"), "PodDisruptionBudget", FULLNAME)
    assert pdb["spec"]["minAvailable"] == 1
    assert of_kind(render("single-replica"), "PodDisruptionBudget") == []


def test_optional_objects_are_off_by_default(render: Callable[[str], list[Doc]]) -> None:
    kinds = {d["kind"] for d in render("default")}
    assert kinds.isdisjoint({"NetworkPolicy", "ServiceMonitor", "Certificate", "Issuer"})


def test_network_policy_allows_the_webhook_port_from_anywhere(
    render: Callable[[str], list[Doc]],
) -> None:
    policy = one(render("network-policy"), "NetworkPolicy", FULLNAME)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8443, "protocol": "TCP"}]}]


def test_network_policy_from_is_configurable(render: Callable[[str], list[Doc]]) -> None:
    policy = one(render("network-policy-from"), "NetworkPolicy", FULLNAME)
    assert policy["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]


def test_service_monitor(render: Callable[[str], list[Doc]]) -> None:
    monitor = one(render("service-monitor"), "ServiceMonitor", FULLNAME)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "https"
    assert endpoint["scheme"] == "https"
    assert endpoint["path"] == "/metrics"
    assert endpoint["tlsConfig"]["insecureSkipVerify"] is False


def test_cert_manager_chain(render: Callable[[str], list[Doc]]) -> None:
    docs = render("cert-manager")
    selfsigned = one(docs, "Issuer", f"{FULLNAME}-selfsigned")
    assert selfsigned["spec"] == {"selfSigned": {}}
    ca = one(docs, "Certificate", f"{FULLNAME}-ca")
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"]["name"] == f"{FULLNAME}-selfsigned"
    ca_issuer = one(docs, "Issuer", f"{FULLNAME}-ca")
    assert ca_issuer["spec"] == {"ca": {"secretName": ca["spec"]["secretName"]}}
    serving = one(docs, "Certificate", TLS_SECRET)
    assert serving["spec"]["secretName"] == TLS_SECRET
    assert serving["spec"]["issuerRef"]["name"] == f"{FULLNAME}-ca"
    assert serving["spec"]["dnsNames"] == [
        FULLNAME,
        f"{FULLNAME}.{NAMESPACE}",
        f"{FULLNAME}.{NAMESPACE}.svc",
        f"{FULLNAME}.{NAMESPACE}.svc.cluster.local",
    ]


# --- schema ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"webhook": {"failurePolicy": {"deployments": "Sometimes"}}}, "failurePolicy"),
        ({"webhook": {"failurePolicy": {"pods": "fail"}}}, "failurePolicy"),
        ({"unknownKey": True}, "unknownKey"),
        ({"webhook": {"timeoutSeconds": 31}}, "timeoutSeconds"),
        ({"webhook": {"timeoutSeconds": 0}}, "timeoutSeconds"),
        ({"webhook": {"url": "http://127.0.0.1:9443"}}, "url"),
        ({"webhook": {"unknown": 1}}, "unknown"),
        ({"replicas": 0}, "replicas"),
        ({"tls": {"mode": "manual"}}, "mode"),
        ({"pinning": {"apiFailure": {"deployments": "Fail"}}}, "deployments"),
        ({"pinning": {"apiFailure": {"pods": "ignore"}}}, "pods"),
        ({"pinning": {"missingSource": "ignore"}}, "missingSource"),
        ({"logLevel": "loud"}, "logLevel"),
        ({"runAsUser": 0}, "runAsUser"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else None,
)
def test_schema_rejects_bad_values(
    values: dict[str, Any],
    message: str,
    helm: Callable[..., subprocess.CompletedProcess[str]],
    values_file: Callable[[dict[str, Any]], Path],
) -> None:
    proc = template(helm, values_file(values))
    assert proc.returncode != 0, f"accepted {values}"
    assert "schema" in proc.stderr
    assert message in proc.stderr
