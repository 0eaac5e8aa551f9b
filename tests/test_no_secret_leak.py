"""Sentinel test: no Secret value reaches a log record, a metric, a warning, a status
message, an HTTP error or the output of a failed `configpin render`.

A Secret holds sentinel values (base64 in `data`, as the API server returns every Secret;
a manifest given to `render` also carries one plain in `stringData`) and the workloads
carry one inline. Every channel an operator or an attacker could read is captured and
searched for every form of every sentinel. The snapshot object itself legitimately holds
the data, so neither it nor a successful render's stdout is searched.
"""

import base64
import json
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.admission.pinner import Policy
from app.admission.service import Admission
from app.cli import main
from app.metrics import Metrics
from app.web.app import create_app
from tests.fakes import MemorySources, config_map

NS = "vault"
SENTINEL = "Zq7-sentinel-Kx4pW9"  # the decoded value of a `data` entry
SENTINEL_B64 = base64.b64encode(SENTINEL.encode()).decode()
STRING_SENTINEL = "Rt2-stringdata-Mv8qL3"  # written as stringData, read back base64 in data
INLINE_SENTINEL = "Hb5-inline-env-Yc1nD6"  # a literal env value in the workload itself
FORMS = (
    SENTINEL,
    SENTINEL_B64,
    STRING_SENTINEL,
    base64.b64encode(STRING_SENTINEL.encode()).decode(),
    INLINE_SENTINEL,
)


def assert_no_sentinel(text: str, where: str) -> None:
    for form in FORMS:
        assert form not in text, f"a secret value ({form!r}) leaked into {where}"


def the_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": NS, "uid": "9f0c", "resourceVersion": "42"},
        "type": "Opaque",
        # The API server merges a written `stringData` into `data` and returns only `data`.
        "data": {
            "password": SENTINEL_B64,
            "token": base64.b64encode(STRING_SENTINEL.encode()).decode(),
        },
    }


def pod_spec(ref: str = "db") -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "app",
                "image": "registry.example/app:1",
                "env": [
                    {"name": "INLINE", "value": INLINE_SENTINEL},
                    {
                        "name": "PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": ref, "key": "password"}},
                    },
                ],
                "envFrom": [{"configMapRef": {"name": "settings"}}],
            }
        ],
        "volumes": [{"name": "creds", "secret": {"secretName": ref}}],
    }


def workload(kind: str, ref: str = "db") -> dict[str, Any]:
    if kind == "Pod":
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": NS},
            "spec": pod_spec(ref),
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}}, "spec": pod_spec(ref)},
        },
    }


def review(obj: dict[str, Any]) -> dict[str, Any]:
    group = "apps" if obj["kind"] == "Deployment" else ""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "5e1d8a52-0000-4000-8000-000000000001",
            "kind": {"group": group, "version": "v1", "kind": obj["kind"]},
            "operation": "CREATE",
            "namespace": NS,
            "name": obj["metadata"]["name"],
            "object": obj,
        },
    }


@dataclass
class Channels:
    """Everything a review leaves outside the cluster's own objects."""

    client: TestClient
    sources: MemorySources
    caplog: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]
    bodies: list[str] = field(default_factory=list)

    def post(self, content: bytes) -> None:
        http = self.client.post(
            "/mutate", content=content, headers={"content-type": "application/json"}
        )
        assert http.status_code < 500, http.text
        self.bodies.append(http.text)
        answer = http.json().get("response", {})
        if "patch" in answer:
            self.bodies.append(base64.b64decode(answer["patch"]).decode())

    def review(self, obj: dict[str, Any]) -> None:
        self.post(json.dumps(review(obj)).encode())

    def assert_nothing_leaked(self) -> None:
        metrics_text = self.client.get("/metrics").text
        assert "configpin_" in metrics_text
        assert_no_sentinel(metrics_text, "/metrics")
        for body in self.bodies:
            assert_no_sentinel(body, "a response body")
        assert self.caplog.records, "nothing was logged: the capture is not working"
        for record in self.caplog.records:
            assert_no_sentinel(record.getMessage(), f"log record {record.name}")
        assert_no_sentinel(self.caplog.text, "the formatted log (with tracebacks)")
        captured = self.capsys.readouterr()
        assert_no_sentinel(captured.out + captured.err, "stdout/stderr")


@pytest.fixture
def channels(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Channels:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records too
    sources = MemorySources(
        namespaces={NS: {"configpin.io/inject": "enabled"}},
        objects=[the_secret(), config_map(NS, "settings", {"MODE": "prod"})],
    )
    metrics = Metrics()
    admission = Admission(sources, Policy(key=b"k" * 32), metrics)
    client = TestClient(create_app(admission, metrics, ready=lambda: True))
    return Channels(client, sources, caplog, capsys)


@pytest.mark.parametrize("kind", ["Deployment", "Pod"])
def test_a_normal_pin(channels: Channels, kind: str) -> None:
    channels.review(workload(kind))

    assert {s["metadata"]["name"].split("-")[0] for s in channels.sources.created} == {
        "db",
        "settings",
    }
    channels.assert_nothing_leaked()
    # The snapshot carries the data, by design; the test's searches exclude it.
    assert any(s.get("data") == the_secret()["data"] for s in channels.sources.created)


@pytest.mark.parametrize("kind", ["Deployment", "Pod"])
@pytest.mark.parametrize("action", ["read", "create"])
def test_an_api_failure_on_the_secret(channels: Channels, kind: str, action: str) -> None:
    channels.sources.fail_next("read" if action == "read" else "create", "secret", NS, "db")

    channels.review(workload(kind))

    assert "secret vault/db" in channels.bodies[0]  # the failure is reported, by name only
    channels.assert_nothing_leaked()


@pytest.mark.parametrize("kind", ["Deployment", "Pod"])
def test_a_missing_source_warning(channels: Channels, kind: str) -> None:
    channels.review(workload(kind, ref="db-gone"))

    assert "secret vault/db-gone" in channels.bodies[0]
    channels.assert_nothing_leaked()


def _review_text(**request_fields: Any) -> bytes:
    body = review(workload("Deployment"))
    body["request"].update(request_fields)
    return json.dumps(body).encode()


BAD_INPUTS: dict[str, bytes] = {
    "invalid JSON after the sentinel": f'{{"password": "{SENTINEL}", }}'.encode(),
    "control character inside the sentinel": (
        f'{{"password": "{SENTINEL[:5]}\x01{SENTINEL[5:]}"}}'.encode()
    ),
    "unterminated string": f'{{"password": "{SENTINEL}'.encode(),
    "sentinel as apiVersion": json.dumps(
        {"apiVersion": SENTINEL, "kind": "AdmissionReview", "request": {"uid": "u"}}
    ).encode(),
    "sentinel as the whole body": json.dumps(SENTINEL_B64).encode(),
    "sentinel in a wrongly typed field": _review_text(operation={"value": SENTINEL}),
    "sentinel as a wrongly typed kind": _review_text(kind=STRING_SENTINEL),
    "sentinel in the object of a bad review": _review_text(uid=""),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_carrying_a_sentinel(channels: Channels, case: str) -> None:
    channels.post(BAD_INPUTS[case])

    assert "error" in json.loads(channels.bodies[0])
    channels.assert_nothing_leaked()


def test_bad_input_with_the_sentinel_as_an_unknown_kind(channels: Channels) -> None:
    channels.post(_review_text(kind={"group": "apps", "version": "v1", "kind": SENTINEL}))

    assert "error" in json.loads(channels.bodies[0])
    channels.assert_nothing_leaked()


# --- configpin render --------------------------------------------------------------------


def run_render(args: list[str]) -> int:
    """`configpin render ...` as a user runs it: an uncaught exception prints its
    traceback on stderr and exits 1."""
    try:
        return main(["render", *args])
    except SystemExit as error:
        return error.code if isinstance(error.code, int) else 1
    except Exception:
        traceback.print_exc()
        return 1


SECRET_HEAD = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: vault
type: Opaque
data:
  password: {b64}
stringData:
""".replace("{b64}", SENTINEL_B64)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "hmac.key"
    path.write_bytes(b"render-key-0123456789abcdef")
    return path


def render_fails_quietly(
    tmp_path: Path, key_file: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> str:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text, encoding="utf-8")

    code = run_render(["-f", str(manifest), "--key-file", str(key_file)])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert_no_sentinel(captured.err, "render's stderr")
    return captured.err


BAD_YAML_LINES = {
    "unterminated quote": f'  token: "{STRING_SENTINEL}\n',
    "mapping in a plain scalar": f"  token: {STRING_SENTINEL}: x\n",
    "bad indentation": f"  token: {STRING_SENTINEL}\n   other: x\n",
    "unknown escape": f'  token: "{STRING_SENTINEL}\\q"\n',
    "unclosed flow sequence": f"  token: [{STRING_SENTINEL}\n",
}


@pytest.mark.parametrize("case", sorted(BAD_YAML_LINES))
def test_render_of_invalid_yaml_on_a_secret_line(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    err = render_fails_quietly(tmp_path, key_file, SECRET_HEAD + BAD_YAML_LINES[case], capsys)

    assert "invalid YAML at line" in err


# A password that starts with `!` or `*`, written unquoted, is a YAML tag or alias, which
# PyYAML quotes in its `problem`; a value under an explicit tag that does not convert makes
# PyYAML raise a bare ValueError quoting it.
LEAKING_YAML_LINES = {
    "value read as a tag": f"  token: !{STRING_SENTINEL}\n",
    "value read as an alias": f"  token: *{STRING_SENTINEL}\n",
    "value under an explicit int tag": f"  token: !!int {STRING_SENTINEL}\n",
}


@pytest.mark.parametrize("case", sorted(LEAKING_YAML_LINES))
def test_render_of_yaml_whose_value_is_read_as_a_tag_or_alias(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    err = render_fails_quietly(tmp_path, key_file, SECRET_HEAD + LEAKING_YAML_LINES[case], capsys)

    assert "invalid YAML" in err


def test_render_of_a_missing_required_source(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = json.dumps(workload("Deployment", ref="db-gone"))  # JSON is YAML
    text = SECRET_HEAD + f"  token: {STRING_SENTINEL}\n---\n" + deployment + "\n"

    err = render_fails_quietly(tmp_path, key_file, text, capsys)

    assert "secret vault/db-gone" in err


def test_render_success_says_nothing_secret_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "ok.yaml"
    settings = json.dumps(config_map(NS, "settings", {"MODE": "prod"}))
    deployment = json.dumps(workload("Deployment"))
    manifest.write_text(
        SECRET_HEAD + f"  token: {STRING_SENTINEL}\n---\n{settings}\n---\n{deployment}\n",
        encoding="utf-8",
    )

    code = run_render(["-f", str(manifest)])  # no key file: a notice on stderr

    captured = capsys.readouterr()
    assert code == 0
    assert "snapshot names will differ" in captured.err
    assert_no_sentinel(captured.err, "render's stderr")
    assert SENTINEL_B64 in captured.out  # the snapshot itself carries the data
