"""`configpin render`: the pinning sequence offline, over manifest files (app.cli.main)."""

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shop.yaml"
DIGEST = r"[bcdfghjklmnpqrstvwxz2456789]{10}"
PINS_KEY = "configpin.io/pins"

Doc = dict[str, Any]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "hmac.key"
    path.write_bytes(b"render-key-0123456789abcdef\n")
    return path


def render(
    capsys: pytest.CaptureFixture[str], *files: Path, key_file: Path | None
) -> tuple[int, str, str]:
    args = ["render"]
    for path in files:
        args += ["-f", str(path)]
    if key_file is not None:
        args += ["--key-file", str(key_file)]
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rendered(capsys: pytest.CaptureFixture[str], *files: Path, key_file: Path) -> list[Doc]:
    code, out, err = render(capsys, *files, key_file=key_file)
    assert (code, err) == (0, "")
    return list(yaml.safe_load_all(out))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def snapshot_of(docs: list[Doc], kind: str, source: str) -> str:
    """The name of the one snapshot of `source` among the rendered documents."""
    pattern = re.compile(f"{re.escape(source)}-{DIGEST}")
    [name] = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == kind and pattern.fullmatch(d["metadata"]["name"])
    ]
    return str(name)


@pytest.fixture
def shop(capsys: pytest.CaptureFixture[str], key_file: Path) -> list[Doc]:
    return rendered(capsys, EXAMPLE, key_file=key_file)


def test_every_deployment_reference_kind_is_pinned(shop: list[Doc]) -> None:
    app_config = snapshot_of(shop, "ConfigMap", "app-config")
    db = snapshot_of(shop, "Secret", "db")
    api_token = snapshot_of(shop, "Secret", "api-token")
    template = find(shop, "Deployment", "web")["spec"]["template"]
    spec = template["spec"]
    web = spec["containers"][0]

    assert spec["initContainers"][0]["envFrom"][0]["secretRef"]["name"] == db
    env = {e["name"]: e["valueFrom"] for e in web["env"]}
    assert env["LOG_LEVEL"]["configMapKeyRef"]["name"] == app_config
    assert env["DB_PASSWORD"]["secretKeyRef"]["name"] == db
    assert web["envFrom"][0]["configMapRef"]["name"] == app_config
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["config"]["configMap"]["name"] == app_config
    projected = volumes["bundle"]["projected"]["sources"]
    assert projected == [{"configMap": {"name": app_config}}, {"secret": {"name": api_token}}]
    assert yaml.safe_load(template["metadata"]["annotations"][PINS_KEY]) == {
        "configmap/app-config": app_config,
        "secret/api-token": api_token,
        "secret/db": db,
    }


def test_live_references_are_left_alone(shop: list[Doc]) -> None:
    spec = find(shop, "Deployment", "web")["spec"]["template"]["spec"]
    env = {e["name"]: e["valueFrom"] for e in spec["containers"][0]["env"]}
    volumes = {v["name"]: v for v in spec["volumes"]}

    assert spec["imagePullSecrets"] == [{"name": "registry"}]  # live by default
    assert volumes["ca"]["configMap"] == {"name": "tls-bundle"}  # the source opted out
    assert env["FEATURES"]["configMapKeyRef"]["name"] == "features"  # in configpin.io/live
    assert env["OPTIONAL_TUNING"]["configMapKeyRef"] == {
        "name": "tuning",
        "key": "level",
        "optional": True,
    }  # optional and missing
    made = {d["metadata"]["name"] for d in shop if d["metadata"]["name"].startswith("features-")}
    assert made == set()


def test_a_bare_pod_is_pinned_to_the_same_snapshots(shop: list[Doc]) -> None:
    pod = find(shop, "Pod", "debug")
    api_token = snapshot_of(shop, "Secret", "api-token")

    assert pod["spec"]["volumes"][0]["secret"]["secretName"] == api_token
    assert yaml.safe_load(pod["metadata"]["annotations"][PINS_KEY]) == {
        "secret/api-token": api_token
    }


def test_input_order_is_kept_and_snapshots_follow_sorted_by_name_once(shop: list[Doc]) -> None:
    source_docs = list(yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")))
    names = [(d["kind"], d["metadata"]["name"]) for d in shop]

    assert names[: len(source_docs)] == [(d["kind"], d["metadata"]["name"]) for d in source_docs]
    snapshots = names[len(source_docs) :]
    assert [name for _, name in snapshots] == sorted(name for _, name in snapshots)
    assert sorted(snapshots) == sorted(
        [
            ("ConfigMap", snapshot_of(shop, "ConfigMap", "app-config")),
            ("Secret", snapshot_of(shop, "Secret", "db")),
            ("Secret", snapshot_of(shop, "Secret", "api-token")),
        ]
    )


def test_snapshots_are_immutable_copies_of_the_stored_content(shop: list[Doc]) -> None:
    db = find(shop, "Secret", snapshot_of(shop, "Secret", "db"))
    app_config = find(shop, "ConfigMap", snapshot_of(shop, "ConfigMap", "app-config"))

    assert db["immutable"] is True
    assert app_config["immutable"] is True
    assert db["type"] == "Opaque"
    assert "stringData" not in db  # folded into data, as the API server stores it
    assert {k: base64.b64decode(v).decode() for k, v in db["data"].items()} == {
        "username": "shop",
        "password": "example-only-not-a-real-password",
    }
    assert app_config["data"] == find(shop, "ConfigMap", "app-config")["data"]
    assert db["metadata"]["namespace"] == "shop"
    assert db["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "configpin"


def test_rendering_the_output_again_is_byte_identical(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, first, _ = render(capsys, EXAMPLE, key_file=key_file)
    assert code == 0

    code, second, err = render(capsys, write(tmp_path, "out.yaml", first), key_file=key_file)

    assert (code, err) == (0, "")
    assert second == first


def test_the_same_key_gives_the_same_names_and_another_key_other_names(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_key = write(tmp_path, "other.key", "another-key-0123456789abcdef")

    once = rendered(capsys, EXAMPLE, key_file=key_file)
    twice = rendered(capsys, EXAMPLE, key_file=key_file)
    other = rendered(capsys, EXAMPLE, key_file=other_key)

    assert snapshot_of(once, "Secret", "db") == snapshot_of(twice, "Secret", "db")
    assert snapshot_of(once, "Secret", "db") != snapshot_of(other, "Secret", "db")


CONSUMER = """\
---
apiVersion: v1
kind: Pod
metadata: {name: consumer, namespace: ns}
spec:
  containers:
    - name: c
      image: busybox
      envFrom: [{secretRef: {name: creds}}]
"""


def test_string_data_and_the_same_content_as_base64_data_get_the_same_snapshot(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_string = write(
        tmp_path,
        "string.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: ns}\ntype: Opaque\n"
        "stringData: {user: admin, password: s3cr3t}\n" + CONSUMER,
    )
    as_data = write(
        tmp_path,
        "data.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: ns}\ntype: Opaque\n"
        f"data: {{user: {base64.b64encode(b'admin').decode()}, "
        f"password: {base64.b64encode(b's3cr3t').decode()}}}\n" + CONSUMER,
    )

    from_string = snapshot_of(rendered(capsys, as_string, key_file=key_file), "Secret", "creds")
    from_data = snapshot_of(rendered(capsys, as_data, key_file=key_file), "Secret", "creds")

    assert from_string == from_data


def test_string_data_overrides_data_as_the_api_server_does(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = write(
        tmp_path,
        "both.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: ns}\ntype: Opaque\n"
        f"data: {{user: {base64.b64encode(b'old').decode()}}}\n"
        "stringData: {user: new}\n" + CONSUMER,
    )

    docs = rendered(capsys, both, key_file=key_file)

    snapshot = find(docs, "Secret", snapshot_of(docs, "Secret", "creds"))
    assert snapshot["data"] == {"user": base64.b64encode(b"new").decode()}


def test_a_secret_without_type_is_named_as_the_cluster_stores_it_opaque(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: ns}\n"
    untyped = write(tmp_path, "untyped.yaml", head + "data: {user: YWRtaW4=}\n" + CONSUMER)
    opaque = write(
        tmp_path, "opaque.yaml", head + "type: Opaque\ndata: {user: YWRtaW4=}\n" + CONSUMER
    )

    from_untyped = snapshot_of(rendered(capsys, untyped, key_file=key_file), "Secret", "creds")
    from_opaque = snapshot_of(rendered(capsys, opaque, key_file=key_file), "Secret", "creds")

    assert from_untyped == from_opaque


def test_invalid_yaml_fails_with_a_message_and_prints_nothing(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.yaml", "apiVersion: v1\nkind: ConfigMap\ndata: [unclosed\n")

    code, out, err = render(capsys, EXAMPLE, bad, key_file=key_file)

    assert code == 1
    assert out == ""  # not even the valid first file's documents
    assert "bad.yaml" in err
    assert "invalid YAML at line" in err


def test_a_required_reference_to_a_missing_source_fails_naming_it(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n"
        "  containers: [{name: c, image: busybox, envFrom: [{configMapRef: {name: nope}}]}]\n",
    )

    code, out, err = render(capsys, EXAMPLE, manifest, key_file=key_file)

    assert code == 1
    assert out == ""
    assert "configmap shop/nope" in err


def test_without_a_key_file_it_warns_that_names_will_differ(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = render(capsys, EXAMPLE, key_file=None)

    assert code == 0
    assert "snapshot names will differ" in err
    docs = list(yaml.safe_load_all(out))
    assert re.fullmatch(f"db-{DIGEST}", snapshot_of(docs, "Secret", "db"))


def test_a_key_file_that_is_too_short_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = write(tmp_path, "short.key", "tiny")

    with pytest.raises(SystemExit, match="at least 16 bytes"):
        render(capsys, EXAMPLE, key_file=short)
    assert capsys.readouterr().out == ""


def test_kinds_that_are_not_pinned_pass_through_unchanged(shop: list[Doc]) -> None:
    source_docs = list(yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")))

    assert find(shop, "Service", "web") == find(source_docs, "Service", "web")
    for kind, name in [("ConfigMap", "app-config"), ("Secret", "db"), ("Secret", "registry")]:
        assert find(shop, kind, name) == find(source_docs, kind, name)


def test_a_document_without_namespace_is_in_default(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path,
        "default.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: b}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: explicit, namespace: default}\n"
        "data: {c: d}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
        "  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n"
        "    spec:\n      containers:\n        - name: c\n          image: busybox\n"
        "          envFrom: [{configMapRef: {name: plain}}, {configMapRef: {name: explicit}}]\n",
    )

    docs = rendered(capsys, manifest, key_file=key_file)

    env_from = find(docs, "Deployment", "d")["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert [e["configMapRef"]["name"] for e in env_from] == [
        snapshot_of(docs, "ConfigMap", "plain"),
        snapshot_of(docs, "ConfigMap", "explicit"),
    ]


def test_a_source_in_another_namespace_is_not_found(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path,
        "elsewhere.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: other}\ndata: {a: b}\n"
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  containers: [{name: c, image: busybox, envFrom: [{configMapRef: {name: cfg}}]}]\n",
    )

    code, out, err = render(capsys, manifest, key_file=key_file)

    assert (code, out) == (1, "")
    assert "configmap default/cfg" in err


def test_a_document_of_the_wrong_shape_fails_with_a_message(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(
        tmp_path, "shape.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: web\nspec: []\n"
    )

    code, out, err = render(capsys, manifest, key_file=key_file)

    assert (code, out) == (1, "")
    assert err.startswith("configpin:")


WORKLOADS_OF_EVERY_KIND = """
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, namespace: shop}
data: {color: blue}
"""
TEMPLATE = (
    "{metadata: {labels: {app: w}}, spec: {containers: [{name: c, image: i,"
    " envFrom: [{configMapRef: {name: app-config}}]}]}}"
)
EVERY_KIND = [
    ("apps/v1", "Deployment", "spec: {template: TEMPLATE}"),
    ("apps/v1", "StatefulSet", "spec: {serviceName: w, template: TEMPLATE}"),
    ("apps/v1", "DaemonSet", "spec: {template: TEMPLATE}"),
    ("batch/v1", "Job", "spec: {template: TEMPLATE}"),
    ("apps/v1", "ReplicaSet", "spec: {template: TEMPLATE}"),
    ("argoproj.io/v1alpha1", "Rollout", "spec: {template: TEMPLATE}"),
]


def test_every_kind_of_the_table_is_pinned_and_a_cronjob_left_as_written(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = WORKLOADS_OF_EVERY_KIND
    for api_version, kind, spec in EVERY_KIND:
        text += f"---\napiVersion: {api_version}\nkind: {kind}\n"
        text += f"metadata: {{name: w, namespace: shop}}\n{spec.replace('TEMPLATE', TEMPLATE)}\n"
    cronjob = "spec: {schedule: '@daily', jobTemplate: {spec: {template: TEMPLATE}}}"
    text += "---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: w, namespace: shop}\n"
    text += cronjob.replace("TEMPLATE", TEMPLATE) + "\n"
    docs = rendered(capsys, write(tmp_path, "all.yaml", text), key_file=key_file)

    snapshot = snapshot_of(docs, "ConfigMap", "app-config")
    for _, kind, _ in EVERY_KIND:
        template = find(docs, kind, "w")["spec"]["template"]
        assert template["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"] == snapshot
        assert PINS_KEY in template["metadata"]["annotations"], kind
    job_template = find(docs, "CronJob", "w")["spec"]["jobTemplate"]["spec"]["template"]
    assert job_template["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"] == (
        "app-config"
    )


def test_custom_kinds_come_from_the_setting(
    tmp_path: Path,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.settings import get_settings

    custom = [
        {
            "group": "example.com",
            "version": "v1",
            "kind": "Widget",
            "resource": "widgets",
            "template": "/spec/runner/podTemplate",
        }
    ]
    monkeypatch.setenv("CONFIGPIN_CUSTOM_KINDS", json.dumps(custom))
    get_settings.cache_clear()
    try:
        text = WORKLOADS_OF_EVERY_KIND + (
            "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\n"
            f"spec: {{runner: {{podTemplate: {TEMPLATE}}}}}\n"
            "---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\n"
            f"metadata: {{name: w, namespace: shop}}\nspec: {{template: {TEMPLATE}}}\n"
        )
        docs = rendered(capsys, write(tmp_path, "custom.yaml", text), key_file=key_file)
    finally:
        get_settings.cache_clear()
    snapshot = snapshot_of(docs, "ConfigMap", "app-config")
    widget = find(docs, "Widget", "w")["spec"]["runner"]["podTemplate"]["spec"]
    assert widget["containers"][0]["envFrom"][0]["configMapRef"]["name"] == snapshot
    # The setting replaces the default list: the Rollout is not in the table any more.
    rollout = find(docs, "Rollout", "w")["spec"]["template"]["spec"]
    assert rollout["containers"][0]["envFrom"][0]["configMapRef"]["name"] == "app-config"
