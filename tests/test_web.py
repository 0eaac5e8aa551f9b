"""The webhook over HTTP: body limits, bad requests, the AdmissionReview v1 contract,
failure behaviour, health, readiness and metrics. Sources live in memory (tests/fakes.py)."""

import base64
import copy
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import jsonpatch
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import app.admission.service
import app.web.app
from app.admission.pinner import Policy
from app.admission.review import MAX_WARNING_LENGTH
from app.admission.service import Admission
from app.metrics import Metrics
from app.web.app import MAX_BODY_BYTES, create_app
from tests.fakes import MemorySources, config_map, secret

NS = "shop"
OPTED_IN = {"configpin.io/inject": "enabled"}
PINS_KEY = "configpin.io/pins"
JSON = {"content-type": "application/json"}


@dataclass
class Webhook:
    client: TestClient
    sources: MemorySources
    metrics: Metrics

    def post(self, body: Any) -> httpx.Response:
        http: httpx.Response = self.client.post(
            "/mutate", content=json.dumps(body).encode(), headers=JSON
        )
        return http

    def answer(self, body: Any) -> dict[str, Any]:
        """The `response` of a review that must be well-formed (HTTP 200, v1 envelope)."""
        http = self.post(body)
        assert http.status_code == 200, http.text
        envelope = http.json()
        assert envelope["apiVersion"] == "admission.k8s.io/v1"
        assert envelope["kind"] == "AdmissionReview"
        assert envelope["response"]["uid"] == body["request"]["uid"]
        answer: dict[str, Any] = envelope["response"]
        return answer

    def metrics_text(self) -> str:
        http = self.client.get("/metrics")
        assert http.status_code == 200
        text: str = http.text
        return text


def shop_sources() -> MemorySources:
    return MemorySources(
        namespaces={NS: OPTED_IN, "elsewhere": {}},
        objects=[
            config_map(NS, "app-config", {"LOG_LEVEL": "info"}, uid="u-1", resourceVersion="7"),
            secret(NS, "db", {"password": base64.b64encode(b"hunter2").decode()}),
        ],
    )


def make_webhook(
    sources: MemorySources | None = None, ready: Callable[[], bool] = lambda: True
) -> Webhook:
    sources = sources if sources is not None else shop_sources()
    metrics = Metrics()
    admission = Admission(sources, Policy(key=b"k" * 32), metrics)
    return Webhook(TestClient(create_app(admission, metrics, ready=ready)), sources, metrics)


@pytest.fixture
def webhook() -> Webhook:
    return make_webhook()


def pod_spec(*, configmap: str = "app-config", mounted: str = "db") -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "app",
                "image": "registry.example/app:1",
                "envFrom": [{"configMapRef": {"name": configmap}}],
            }
        ],
        "volumes": [{"name": "creds", "secret": {"secretName": mounted}}],
    }


def deployment(
    spec: dict[str, Any] | None = None,
    template_annotations: dict[str, str] | None = None,
    namespace: str = NS,
) -> dict[str, Any]:
    template_metadata: dict[str, Any] = {"labels": {"app": "web"}}
    if template_annotations is not None:
        template_metadata["annotations"] = template_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": template_metadata, "spec": spec or pod_spec()},
        },
    }


def pod(spec: dict[str, Any] | None = None, namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "debug", "namespace": namespace},
        "spec": spec or pod_spec(),
    }


def review(
    obj: dict[str, Any],
    *,
    uid: str = "0b7a5c1e-2f43-4c55-9a1d-3d2e1f000001",
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    group, version = ("apps", "v1") if obj["kind"] == "Deployment" else ("", "v1")
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "resource": {"group": group, "version": version, "resource": obj["kind"].lower() + "s"},
        "operation": operation,
        "namespace": obj["metadata"]["namespace"],
        "name": obj["metadata"]["name"],
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def decoded_patch(answer: dict[str, Any]) -> list[dict[str, Any]]:
    assert answer["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(answer["patch"], validate=True))
    return patch


def assert_no_patch(answer: dict[str, Any]) -> None:
    assert "patch" not in answer
    assert "patchType" not in answer


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted label items: value} of every sample called `name` in Prometheus text."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


# --- refused before review ------------------------------------------------------------


def test_body_over_the_limit_with_content_length_is_413(webhook: Webhook) -> None:
    http = webhook.client.post("/mutate", content=b" " * (MAX_BODY_BYTES + 1), headers=JSON)

    assert http.request.headers["content-length"] == str(MAX_BODY_BYTES + 1)
    assert http.status_code == 413
    assert str(MAX_BODY_BYTES) in http.json()["error"]


def test_streamed_body_over_the_limit_without_content_length_is_413(webhook: Webhook) -> None:
    def chunks() -> Iterator[bytes]:
        chunk = b" " * (1024 * 1024)
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            yield chunk

    http = webhook.client.post("/mutate", content=chunks(), headers=JSON)

    assert "content-length" not in http.request.headers  # only the streamed count can tell
    assert http.status_code == 413
    assert "larger than" in http.json()["error"]


def test_a_review_of_exactly_the_limit_is_answered(webhook: Webhook) -> None:
    body = json.dumps(review(pod())).encode()
    padded = body + b" " * (MAX_BODY_BYTES - len(body))  # JSON allows trailing whitespace

    http = webhook.client.post("/mutate", content=padded, headers=JSON)

    assert http.status_code == 200
    assert http.json()["response"]["allowed"] is True


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonl", "json"],
)
def test_a_body_that_is_not_declared_json_is_415(
    webhook: Webhook, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps(review(pod())).encode()

    http = webhook.client.post("/mutate", content=body, headers=headers)

    assert http.status_code == 415
    assert "Content-Type application/json" in http.json()["error"]
    assert "response" not in http.json()


def test_content_type_parameters_and_case_are_accepted(webhook: Webhook) -> None:
    body = json.dumps(review(pod())).encode()
    headers = {"content-type": "Application/JSON; charset=utf-8"}

    http = webhook.client.post("/mutate", content=body, headers=headers)

    assert http.status_code == 200


def _valid() -> dict[str, Any]:
    return review(deployment())


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    body = _valid()
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = _valid()
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


BAD_REVIEWS: dict[str, tuple[bytes, str]] = {
    "invalid JSON": (b'{"apiVersion": "admission.k8s.io/v1", ', "not valid JSON"),
    "not UTF-8": (b'{"a": "\xff\xfe"}', "not valid JSON"),
    "empty body": (b"", "not valid JSON"),
    "JSON array": (b"[]", "must be a JSON object"),
    "JSON string": (b'"AdmissionReview"', "must be a JSON object"),
    "JSON null": (b"null", "must be a JSON object"),
    "v1beta1": (
        json.dumps(_with(("apiVersion",), "admission.k8s.io/v1beta1")).encode(),
        "apiVersion admission.k8s.io/v1",
    ),
    "wrong kind": (
        json.dumps(_with(("kind",), "ConversionReview")).encode(),
        "kind AdmissionReview",
    ),
    "no request": (json.dumps(_without(("request",))).encode(), "request.uid"),
    "request not an object": (json.dumps(_with(("request",), [1])).encode(), "request.uid"),
    "no uid": (json.dumps(_without(("request", "uid"))).encode(), "request.uid"),
    "empty uid": (json.dumps(_with(("request", "uid"), "")).encode(), "request.uid"),
    "no request.kind": (json.dumps(_without(("request", "kind"))).encode(), "request.kind"),
    "operation not a string": (
        json.dumps(_with(("request", "operation"), 7)).encode(),
        "request.operation",
    ),
    "batch CronJob": (
        json.dumps(
            _with(("request", "kind"), {"group": "batch", "version": "v1", "kind": "CronJob"})
        ).encode(),
        "request.kind",
    ),
    "core ConfigMap": (
        json.dumps(
            _with(("request", "kind"), {"group": "", "version": "v1", "kind": "ConfigMap"})
        ).encode(),
        "request.kind",
    ),
    "Deployment of another group": (
        json.dumps(
            _with(
                ("request", "kind"),
                {"group": "extensions", "version": "v1beta1", "kind": "Deployment"},
            )
        ).encode(),
        "request.kind",
    ),
    "no request.object": (json.dumps(_without(("request", "object"))).encode(), "request.object"),
    "null request.object": (json.dumps(_with(("request", "object"), None)).encode(), "object"),
}


@pytest.mark.parametrize("case", sorted(BAD_REVIEWS))
def test_a_request_that_is_not_a_v1_review_is_400_saying_why(webhook: Webhook, case: str) -> None:
    body, expected = BAD_REVIEWS[case]

    http = webhook.client.post("/mutate", content=body, headers=JSON)

    assert http.status_code == 400
    answer = http.json()
    assert set(answer) == {"error"}  # an HTTP error, never an AdmissionReview denial
    assert expected in answer["error"]
    assert samples(webhook.metrics_text(), "configpin_bad_requests_total") == {
        (("status", "400"),): 1.0
    }


# --- the v1 contract -----------------------------------------------------------------


@pytest.mark.parametrize("uid", ["705ab4f5-6393-11e8-b7cc-42010a800002", "x"])
def test_uid_and_envelope_are_echoed_for_a_pinned_and_an_untouched_object(
    webhook: Webhook, uid: str
) -> None:
    pinned = webhook.answer(review(deployment(), uid=uid))
    untouched = webhook.answer(review(deployment(namespace="elsewhere"), uid=uid))

    assert pinned["uid"] == untouched["uid"] == uid
    assert pinned["allowed"] is untouched["allowed"] is True


def test_the_patch_is_base64_json_patch_that_applies_to_the_request_object(
    webhook: Webhook,
) -> None:
    obj = deployment(template_annotations={"team": "shop"})

    answer = webhook.answer(review(obj))

    patch = decoded_patch(answer)
    patched = jsonpatch.apply_patch(obj, patch)
    snapshots = {s["kind"]: s["metadata"]["name"] for s in webhook.sources.created}
    assert set(snapshots) == {"ConfigMap", "Secret"}
    spec = patched["spec"]["template"]["spec"]
    assert spec["containers"][0]["envFrom"][0]["configMapRef"]["name"] == snapshots["ConfigMap"]
    assert spec["volumes"][0]["secret"]["secretName"] == snapshots["Secret"]
    annotations = patched["spec"]["template"]["metadata"]["annotations"]
    assert annotations["team"] == "shop"
    assert json.loads(annotations[PINS_KEY]) == {
        "configmap/app-config": snapshots["ConfigMap"],
        "secret/db": snapshots["Secret"],
    }
    # An existing annotations map gets one key, its `/` escaped as RFC 6901 requires.
    assert {
        "op": "add",
        "path": "/spec/template/metadata/annotations/configpin.io~1pins",
        "value": annotations[PINS_KEY],
    } in patch


def test_an_object_without_annotations_gets_the_whole_annotations_map_added(
    webhook: Webhook,
) -> None:
    obj = pod()
    assert "annotations" not in obj["metadata"]

    patch = decoded_patch(webhook.answer(review(obj)))

    adds = [op for op in patch if op["op"] == "add"]
    assert len(adds) == 1
    assert adds[0]["path"] == "/metadata/annotations"
    assert set(adds[0]["value"]) == {PINS_KEY}
    patched = jsonpatch.apply_patch(obj, patch)
    assert patched["metadata"]["annotations"] == adds[0]["value"]


def test_the_patch_leaves_the_request_object_otherwise_intact(webhook: Webhook) -> None:
    obj = deployment()
    obj["metadata"]["x-unknown-field"] = {"kept": True}  # no typed round-trip drops it
    obj["spec"]["template"]["spec"]["containers"][0]["futureField"] = [1, 2]

    patched = jsonpatch.apply_patch(obj, decoded_patch(webhook.answer(review(obj))))

    assert patched["metadata"]["x-unknown-field"] == {"kept": True}
    assert patched["spec"]["template"]["spec"]["containers"][0]["futureField"] == [1, 2]


def test_a_namespace_not_opted_in_gets_no_patch_fields(webhook: Webhook) -> None:
    answer = webhook.answer(review(deployment(namespace="elsewhere")))

    assert answer["allowed"] is True
    assert_no_patch(answer)
    assert webhook.sources.created == []


def test_the_namespace_comes_from_the_object_when_the_request_has_none(webhook: Webhook) -> None:
    body = review(pod())
    del body["request"]["namespace"]

    answer = webhook.answer(body)

    assert json.loads(base64.b64decode(answer["patch"]))  # pinned in `shop`


def test_a_required_missing_secret_warns_naming_it_and_is_left_as_written(
    webhook: Webhook,
) -> None:
    obj = deployment(pod_spec(mounted="db-missing"))

    answer = webhook.answer(review(obj))

    assert answer["allowed"] is True
    patched = jsonpatch.apply_patch(obj, json.loads(base64.b64decode(answer["patch"])))
    volume = patched["spec"]["template"]["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == "db-missing"
    assert len(answer["warnings"]) == 1
    assert "secret shop/db-missing" in answer["warnings"][0]
    assert [s["metadata"]["name"] for s in webhook.sources.created] == [
        patched["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    ]
    assert 'configpin_unpinned_references_total{kind="Deployment"} 1.0' in webhook.metrics_text()


def test_every_warning_fits_the_length_kubernetes_keeps(webhook: Webhook) -> None:
    long_name = "a-very-long-secret-name-" * 9 + "end"
    obj = deployment(pod_spec(mounted=long_name))

    warnings_ = webhook.answer(review(obj))["warnings"]

    assert warnings_
    assert all(len(w) <= MAX_WARNING_LENGTH < 121 for w in warnings_)
    assert warnings_[0].startswith("configpin:")


@pytest.mark.parametrize("action", ["read", "create"])
def test_an_api_failure_on_a_deployment_denies_with_503_naming_the_source(
    webhook: Webhook, action: str
) -> None:
    webhook.sources.fail_next("read" if action == "read" else "create", "secret", NS, "db")

    answer = webhook.answer(review(deployment()))

    assert answer["allowed"] is False
    assert answer["status"]["code"] == 503
    assert "secret shop/db" in answer["status"]["message"]
    assert_no_patch(answer)
    text = webhook.metrics_text()
    assert samples(text, "configpin_api_errors_total") == {(("kind", "Deployment"),): 1.0}


def test_an_api_failure_on_a_pod_admits_it_unpinned_with_a_warning(webhook: Webhook) -> None:
    webhook.sources.fail_next("read", "configmap", NS, "app-config")

    answer = webhook.answer(review(pod()))

    assert answer["allowed"] is True
    assert "status" not in answer
    assert_no_patch(answer)
    assert len(answer["warnings"]) == 1
    assert "configmap shop/app-config" in answer["warnings"][0]
    assert samples(webhook.metrics_text(), "configpin_admission_reviews_total") == {
        (("kind", "Pod"), ("outcome", "failed-open")): 1.0
    }


def _raise(*args: object, **kwargs: object) -> Any:
    raise RuntimeError("bug inside the pinning sequence")


def test_an_internal_error_on_a_deployment_is_a_500_denial_not_an_http_error(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.admission.service, "pin_online", _raise)

    answer = webhook.answer(review(deployment()))

    assert answer["allowed"] is False
    assert answer["status"]["code"] == 500
    assert "internal error" in answer["status"]["message"]
    assert_no_patch(answer)


def test_an_internal_error_on_a_pod_admits_it_with_a_warning(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.admission.service, "pin_online", _raise)

    answer = webhook.answer(review(pod()))

    assert answer["allowed"] is True
    assert "status" not in answer
    assert_no_patch(answer)
    assert any("internal error" in w for w in answer["warnings"])


def test_a_dry_run_gets_the_same_patch_bytes_and_writes_nothing(webhook: Webhook) -> None:
    obj = deployment()

    dry = webhook.answer(review(copy.deepcopy(obj), dry_run=True))
    assert webhook.sources.created == []
    real = webhook.answer(review(copy.deepcopy(obj)))

    assert dry["patch"] == real["patch"]
    assert len(webhook.sources.created) == 2
    assert samples(webhook.metrics_text(), "configpin_snapshots_total") == {
        (("result", "created"),): 2.0
    }


def test_a_second_identical_review_reuses_the_snapshots(webhook: Webhook) -> None:
    first = webhook.answer(review(deployment()))
    second = webhook.answer(review(deployment()))

    assert first["patch"] == second["patch"]
    assert len(webhook.sources.created) == 2
    assert samples(webhook.metrics_text(), "configpin_snapshots_total") == {
        (("result", "created"),): 2.0,
        (("result", "reused"),): 2.0,
    }


def test_mutate_answers_post_only(webhook: Webhook) -> None:
    http = webhook.client.get("/mutate")

    assert http.status_code == 405
    assert http.headers["allow"] == "POST"


def test_an_unexpected_error_in_the_web_layer_is_a_500_that_quotes_nothing(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(body: bytes, kinds: object) -> None:
        raise ValueError("hunter2 from the body")

    monkeypatch.setattr(app.web.app, "parse_review", broken)

    http = webhook.post(review(deployment()))

    assert http.status_code == 500
    assert "hunter2" not in http.text
    assert "ValueError" in caplog.text
    assert "hunter2" not in caplog.text


def test_brackets_inside_strings_do_not_count_as_nesting(webhook: Webhook) -> None:
    obj = deployment(template_annotations={"note": "[" * 300 + "{" * 300})

    assert webhook.answer(review(obj))["allowed"] is True


# --- health, readiness, metrics --------------------------------------------------------


def test_healthz_is_200(webhook: Webhook) -> None:
    assert webhook.client.get("/healthz").status_code == 200


def test_readyz_follows_the_readiness_callable() -> None:
    state = {"ready": False}
    webhook = make_webhook(ready=lambda: state["ready"])

    assert webhook.client.get("/readyz").status_code == 503
    state["ready"] = True
    assert webhook.client.get("/readyz").status_code == 200


def test_metrics_count_reviews_by_kind_and_outcome_and_time_them(webhook: Webhook) -> None:
    webhook.answer(review(deployment()))
    webhook.answer(review(pod(namespace="elsewhere")))

    text = webhook.metrics_text()

    assert samples(text, "configpin_admission_reviews_total") == {
        (("kind", "Deployment"), ("outcome", "pinned")): 1.0,
        (("kind", "Pod"), ("outcome", "skipped")): 1.0,
    }
    assert 'configpin_admission_reviews_total{kind="Deployment",outcome="pinned"} 1.0' in text
    counts = samples(text, "configpin_admission_duration_seconds_count")
    assert counts == {(("kind", "Deployment"),): 1.0, (("kind", "Pod"),): 1.0}
    buckets = samples(text, "configpin_admission_duration_seconds_bucket")
    assert buckets[(("kind", "Pod"), ("le", "+Inf"))] == 1.0
    assert samples(text, "configpin_snapshots_total") == {(("result", "created"),): 2.0}


def test_pods_of_a_controller_outside_the_table_are_admitted_unchanged_and_counted(
    webhook: Webhook,
) -> None:
    owned = pod()
    owned["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "name": "w",
            "uid": "u",
            "controller": True,
        }
    ]
    answer = webhook.answer(review(owned))
    assert answer["allowed"] is True
    assert_no_patch(answer)
    assert samples(webhook.metrics_text(), "configpin_unpinned_pods_total") == {
        (("owner_kind", "Widget"),): 1.0
    }


def controlled_pod(pins: dict[str, str] | None, namespace: str = NS) -> dict[str, Any]:
    """A Pod as the ReplicaSet controller creates it, its template's pins carried over."""
    obj = pod(pod_spec(configmap="app-config-v1", mounted="db-v1"), namespace=namespace)
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-1"}
        | {"controller": True}
    ]
    if pins is not None:
        obj["metadata"]["annotations"] = {PINS_KEY: json.dumps(pins)}
    return obj


@pytest.mark.parametrize("namespace", [NS, "elsewhere", "not-there"])
def test_a_pod_of_a_pinned_replicaset_is_answered_on_the_event_loop_without_the_api(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch, namespace: str
) -> None:
    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a review decided by the object alone left the event loop")

    monkeypatch.setattr(app.web.app.anyio.to_thread, "run_sync", no_thread)
    pins = {"configmap/app-config": "app-config-v1", "secret/db": "db-v1"}

    answer = webhook.answer(review(controlled_pod(pins, namespace), uid="steady"))
    monkeypatch.undo()  # /metrics is a plain function, run in a thread

    assert answer == {"uid": "steady", "allowed": True}
    assert webhook.sources.reads == []
    assert samples(webhook.metrics_text(), "configpin_admission_reviews_total") == {
        (("kind", "Pod"), ("outcome", "unchanged")): 1.0
    }


def test_a_review_that_needs_the_api_still_goes_to_a_thread(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[object] = []
    run_sync = app.web.app.anyio.to_thread.run_sync

    async def counted(function: Callable[..., Any], *args: Any) -> Any:
        threads.append(function)
        return await run_sync(function, *args)

    monkeypatch.setattr(app.web.app.anyio.to_thread, "run_sync", counted)

    answer = webhook.answer(review(pod()))

    assert len(threads) == 1
    assert decoded_patch(answer)
    assert webhook.sources.reads


def test_reviews_that_change_nothing_log_at_debug_and_pinning_at_info(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="configpin.admission")
    pins = {"configmap/app-config": "app-config-v1", "secret/db": "db-v1"}

    webhook.answer(review(controlled_pod(pins)))
    webhook.answer(review(pod()))

    levels = [(r.levelno, r.getMessage().split(": ")[1].split(" in ")[0]) for r in caplog.records]
    assert levels == [
        (logging.DEBUG, "unchanged, 0 patch operations"),
        (logging.INFO, "pinned, 3 patch operations"),
    ]
    assert all(re.search(r" in \d+\.\d ms$", r.getMessage()) for r in caplog.records)
