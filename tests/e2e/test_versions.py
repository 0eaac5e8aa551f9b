"""`configpin history | diff | unpin` against the real API server, as `configpin ...` and as the
kubectl plugin the real kubectl finds on PATH (`kubectl configpin ...`)."""

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.kube.api import RawApi
from devkit.kubectl import kubectl, kubectl_path
from devkit.kubeobjects import configmap, create, eventually, get, items, secret, update
from devkit.localwebhook import service_account_kubeconfig
from tests.e2e.conftest import Namespaces
from tests.e2e.test_pinning import TOKEN, references, web_deployment

BIN = Path(sys.executable).parent  # the venv's bin: configpin and kubectl-configpin
PASSWORD = "e2e-versions-sentinel-password-7730"
NEW_PASSWORD = "e2e-versions-sentinel-password-8841"
SENTINELS = [
    value
    for text in (PASSWORD, NEW_PASSWORD, TOKEN)
    for value in (text, base64.b64encode(text.encode()).decode())
]
PINS = "configpin.io/pins"
REVISIONS = {
    "Deployment": "ReplicaSet",
    "StatefulSet": "ControllerRevision",
    "DaemonSet": "ControllerRevision",
}


@pytest.fixture(autouse=True)
def plugin_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl finds `kubectl-configpin` on PATH, as after `pip install configpin`."""
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def configpin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "configpin"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def kubectl_configpin(*args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl configpin ARGS`: kubectl looks plugins up by the words before any flag."""
    return subprocess.run(
        [kubectl_path(), "configpin", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def workload(kind: str, namespace: str) -> dict[str, Any]:
    """The web workload of the pinning tests (every reference kind), as `kind`."""
    obj = web_deployment(namespace)
    obj["kind"] = kind
    if kind == "StatefulSet":
        obj["spec"]["serviceName"] = "web"
    if kind == "DaemonSet":
        del obj["spec"]["replicas"]
    return obj


def seed(admin: RawApi, namespace: str, config: dict[str, str]) -> None:
    create(admin, configmap(namespace, "app-config", config))
    create(admin, secret(namespace, "db", {"password": PASSWORD}))
    create(admin, secret(namespace, "api-token", {"token": TOKEN}))


def edit(admin: RawApi, namespace: str, kind: str, name: str, data: dict[str, str]) -> None:
    obj = get(admin, "v1", kind, namespace, name)
    assert obj is not None
    obj["data"] = (
        {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        if kind == "Secret"
        else data
    )
    update(admin, obj)


def revision_templates(
    admin: RawApi, namespace: str, kind: str, owner: str = "web"
) -> list[dict[str, Any]]:
    """The templates of the revisions the controller made for `owner`, oldest first."""
    revision_kind = REVISIONS[kind]
    found = [
        obj
        for obj in items(admin, "apps/v1", revision_kind, namespace, "app=web")
        if obj["metadata"]["ownerReferences"][0]["name"] == owner
    ]
    if revision_kind == "ReplicaSet":
        found.sort(
            key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        )
        return [rs["spec"]["template"] for rs in found]
    found.sort(key=lambda cr: int(cr["revision"]))
    return [cr["data"]["spec"]["template"] for cr in found]


def revision_pins(admin: RawApi, namespace: str, kind: str, count: int) -> list[dict[str, str]]:
    """The pins of each revision, oldest first, once there are `count`."""

    def settled() -> list[dict[str, Any]] | None:
        found = revision_templates(admin, namespace, kind)
        return found if len(found) == count else None

    templates = eventually(settled, what=f"{count} {REVISIONS[kind]}s")
    return [json.loads(t["metadata"]["annotations"]["configpin.io/pins"]) for t in templates]


def five_revisions(
    admin: RawApi, kubeconfig: str, namespace: str, kind: str
) -> list[dict[str, str]]:
    """1 created; 2 config edited (+motd ~color); 3 new image, same config; 4 config and
    Secret edited (-size, ~password +user); 5 config edited again (~color)."""
    seed(admin, namespace, {"color": "blue", "size": "m"})
    target = f"{kind.lower()}/web"
    run = ("-n", namespace)

    def restart() -> None:
        time.sleep(1)  # kubectl's restartedAt has one-second steps: it refuses two in one
        kubectl(kubeconfig, *run, "rollout", "restart", target)

    kubectl(
        kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(workload(kind, namespace))
    )
    revision_pins(admin, namespace, kind, 1)
    edit(
        admin,
        namespace,
        "ConfigMap",
        "app-config",
        {"color": "green", "size": "m", "motd": "hi\nthere\n"},
    )
    restart()
    revision_pins(admin, namespace, kind, 2)
    kubectl(kubeconfig, *run, "set", "image", target, "web=registry.example/web:2")
    revision_pins(admin, namespace, kind, 3)
    edit(admin, namespace, "ConfigMap", "app-config", {"color": "green", "motd": "hi\nthere\n"})
    edit(admin, namespace, "Secret", "db", {"password": NEW_PASSWORD, "user": "app"})
    restart()
    revision_pins(admin, namespace, kind, 4)
    edit(admin, namespace, "ConfigMap", "app-config", {"color": "red", "motd": "hi\nthere\n"})
    restart()
    return revision_pins(admin, namespace, kind, 5)


def check_history_and_diff(
    admin_kubeconfig: str, namespace: str, kind: str, pins: list[dict[str, str]]
) -> None:
    target = f"{kind.lower()}/web"
    where = ("-n", namespace, "--kubeconfig", admin_kubeconfig)

    # Oldest first, each revision's own snapshots, what changed against the one before.
    shown = configpin("history", target, *where, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert [r["revision"] for r in document["revisions"]] == [1, 2, 3, 4, 5]
    assert [r["live"] for r in document["revisions"]] == [False] * 4 + [True]
    for revision, expected in zip(document["revisions"], pins, strict=True):
        assert {s["source"]: s["snapshot"] for s in revision["sources"]} == expected
        assert all(s["snapshotCreated"] for s in revision["sources"])
    changes = [
        {s["source"]: (s["status"], s["added"], s["removed"], s["changed"]) for s in r["sources"]}
        for r in document["revisions"]
    ]
    new, unchanged = ("new", [], [], []), ("unchanged", [], [], [])
    token = {"secret/api-token": unchanged}  # never edited after revision 1
    assert changes == [
        {"configmap/app-config": new, "secret/db": new, "secret/api-token": new},
        {"configmap/app-config": ("changed", ["motd"], [], ["color"]), "secret/db": unchanged}
        | token,
        {"configmap/app-config": unchanged, "secret/db": unchanged} | token,
        {
            "configmap/app-config": ("changed", [], ["size"], []),
            "secret/db": ("changed", ["user"], [], ["password"]),
        }
        | token,
        {"configmap/app-config": ("changed", [], [], ["color"]), "secret/db": unchanged} | token,
    ]
    as_yaml = kubectl_configpin("history", target, *where, "-o", "yaml")
    assert as_yaml.returncode == 0 and yaml.safe_load(as_yaml.stdout) == document

    # The table through the real kubectl: a header and one line per revision, no colour.
    # (flags before the subcommand too, as kubectl takes them)
    table = kubectl_configpin("-n", namespace, "history", target, "--kubeconfig", admin_kubeconfig)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["REVISION", "AGE", "LIVE"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4", "5"]
    assert lines[5].split()[2] == "*" and "*" not in lines[4]
    assert pins[3]["secret/db"] in lines[4] and "~password" in lines[4]
    assert "\033" not in table.stdout

    # diff: ConfigMap values, Secret key names, never a Secret value.
    different = kubectl_configpin("diff", target, *where, "--revision", "1", "--to", "4")
    assert different.returncode == 1, different.stderr
    assert "-color: blue\n-size: m\n+color: green\n+motd: |\n+  hi\n+  there\n" in different.stdout
    assert (
        f"+++ secret/db revision 4 ({pins[3]['secret/db']})\n+user ~password\n" in different.stdout
    )
    to_live = configpin("diff", target, *where, "--revision", "4")
    assert to_live.returncode == 1
    assert "-color: green\n+color: red\n" in to_live.stdout and "secret/db" not in to_live.stdout
    for output in (shown, as_yaml, table, different, to_live):
        for value in SENTINELS:
            assert value not in output.stdout + output.stderr
    equal = configpin("diff", target, *where, "--revision", "2", "--to", "3")
    assert (equal.returncode, equal.stdout) == (0, "")


@pytest.mark.parametrize(
    "kind",
    ["Deployment", "StatefulSet", "DaemonSet"],
)
def test_history_and_diff_through_five_revisions(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces, kind: str
) -> None:
    ns = namespaces.make()
    pins = five_revisions(admin, admin_kubeconfig, ns, kind)
    assert len({p["configmap/app-config"] for p in pins}) == 4  # 2 and 3 share theirs
    check_history_and_diff(admin_kubeconfig, ns, kind, pins)


@pytest.fixture
def other_context(admin_kubeconfig: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A kubeconfig whose current context is not the admin one: (path, admin context name)."""
    config = yaml.safe_load(Path(admin_kubeconfig).read_text())
    admin_context = config["current-context"]
    config["contexts"].append(
        {"name": "elsewhere", "context": {"cluster": "nowhere", "user": "nobody"}}
    )
    config["current-context"] = "elsewhere"
    path = tmp_path / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield str(path), admin_context


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_unpin_restores_the_sources_and_nothing_pins_again_once_opted_out(
    admin: RawApi,
    admin_kubeconfig: str,
    namespaces: Namespaces,
    other_context: tuple[str, str],
    kind: str,
) -> None:
    ns = namespaces.make()
    seed(admin, ns, {"color": "blue"})
    manifest = workload(kind, ns)
    other = workload(kind, ns)
    other["metadata"]["name"] = "api"
    for obj in (manifest, other):
        kubectl(admin_kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(obj))
    pinned = get(admin, "apps/v1", kind, ns, "web")
    assert pinned is not None
    assert pinned["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] != "app-config"
    target, where = f"{kind.lower()}/web", ("-n", ns, "--kubeconfig", admin_kubeconfig)

    # Still opted in: the webhook would keep the pins, so unpin refuses and says why.
    refused = configpin("unpin", target, *where)
    assert refused.returncode == 2 and "still opted in" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    kubectl(admin_kubeconfig, "label", "namespace", ns, "configpin.io/inject-")

    # --dry-run shows the change and writes nothing; --context picks the kubeconfig's context.
    kubeconfig, admin_context = other_context
    dry = kubectl_configpin(
        "unpin",
        target,
        "-n",
        ns,
        "--kubeconfig",
        kubeconfig,
        "--context",
        admin_context,
        "--dry-run",
    )
    assert dry.returncode == 0, dry.stderr
    assert (
        "-        name: app-config-" in dry.stdout and "+        name: app-config\n" in dry.stdout
    )
    assert "-      configpin.io/pins:" in dry.stdout
    # `api` pins the same snapshots: unpinning `web` alone lets go of none of them.
    assert dry.stdout.endswith("would release (in-use finalizer): nothing\n")
    after_dry_run = get(admin, "apps/v1", kind, ns, "web")
    assert after_dry_run is not None
    assert after_dry_run["spec"] == pinned["spec"]

    snapshots = set(json.loads(pinned["spec"]["template"]["metadata"]["annotations"][PINS]).items())
    check_unpinned(admin, ns, kind, "web", kubectl_configpin("unpin", target, *where))
    assert in_use(admin, ns, snapshots) == snapshots

    # The next apply of the same manifest pins nothing: the namespace is not opted in.
    kubectl(admin_kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(manifest))
    reapplied = get(admin, "apps/v1", kind, ns, "web")
    assert reapplied is not None
    assert_live(reapplied["spec"]["template"])
    time.sleep(2)  # time for the controller to make a revision the apply must not cause
    newest = eventually(lambda: revision_templates(admin, ns, kind)[1:], what="a new revision")
    assert len(newest) == 1  # the unpin's, on the live sources; the apply made none
    assert_live(newest[0])

    # --all: every workload still pinned in the namespace, and only those.
    released = sorted(f"{source.partition('/')[0]}/{name}" for source, name in snapshots)
    check_unpinned(
        admin,
        ns,
        kind,
        "api",
        configpin("unpin", "--all", *where),
        "released (in-use finalizer): " + ", ".join(released),
    )
    assert in_use(admin, ns, snapshots) == set()
    again = configpin("unpin", target, *where)
    assert again.returncode == 2 and "not a pinned workload" in again.stderr


def in_use(admin: RawApi, namespace: str, pins: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of the (source, snapshot) pins whose snapshot still has the in-use finalizer."""
    kinds = {"configmap": "ConfigMap", "secret": "Secret"}
    held = set()
    for source, name in pins:
        snapshot = get(admin, "v1", kinds[source.partition("/")[0]], namespace, name)
        assert snapshot is not None  # released, not deleted: old revisions still own it
        if "configpin.io/in-use" in (snapshot["metadata"].get("finalizers") or []):
            held.add((source, name))
    return held


def check_unpinned(
    admin: RawApi,
    namespace: str,
    kind: str,
    name: str,
    result: subprocess.CompletedProcess[str],
    *more_lines: str,
) -> None:
    assert result.returncode == 0, result.stderr
    sources = "configmap/app-config, secret/api-token, secret/db"
    unpinned = f"{kind.lower()}.apps/{name} unpinned: {sources} live again"
    assert result.stdout.splitlines() == [unpinned, *more_lines]
    written = get(admin, "apps/v1", kind, namespace, name)
    assert written is not None
    assert_live(written["spec"]["template"])


def assert_live(template: dict[str, Any]) -> None:
    assert set(references(template).values()) == {"app-config", "db", "api-token"}
    assert "configpin.io/pins" not in (template["metadata"].get("annotations") or {})


def test_errors_are_one_line_with_status_2(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces, tmp_path: Path
) -> None:
    ns = namespaces.make(opted_in=False)
    seed(admin, ns, {"color": "blue"})
    kubectl(
        admin_kubeconfig,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=json.dumps(workload("Deployment", ns)),
    )
    create(
        admin,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "reader", "namespace": ns},
        },
    )
    nobody = service_account_kubeconfig(
        admin, admin_kubeconfig, ns, "reader", tmp_path / "reader.kubeconfig"
    )
    cases = {
        "not found": ("history", "deploy/absent", "-n", ns, "--kubeconfig", admin_kubeconfig),
        "forbidden": ("history", "deploy/web", "-n", ns, "--kubeconfig", nobody),
        "not a pinned workload": (
            "history",
            "deploy/web",
            "-n",
            ns,
            "--kubeconfig",
            admin_kubeconfig,
        ),
        "is not a workload kind": (
            "diff",
            "pod/web",
            "--revision",
            "1",
            "--kubeconfig",
            admin_kubeconfig,
        ),
    }
    for expected, args in cases.items():
        for result in (configpin(*args), kubectl_configpin(*args)):
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            assert result.stdout == ""
            [line] = result.stderr.splitlines()
            assert line.startswith("error: ") and expected in line, line
