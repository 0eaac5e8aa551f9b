"""Random and mutated AdmissionReviews thrown at the web app: never a 500, never an
exception; every answer a valid AdmissionReview for the same uid, or a 4xx saying why."""

import base64
import copy
import json
from typing import Any

import jsonpatch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.admission.pinner import Policy
from app.admission.service import Admission
from app.domain import labels
from app.metrics import Metrics
from app.web.app import create_app
from tests.fakes import MemorySources, config_map, secret
from tests.test_pinner import pod_spec as pinner_pod_spec

NS = "shop"
KEY = b"fuzz-key-0123456789abcdef"
JSON = {"content-type": "application/json"}

names = st.sampled_from(["app-config", "db", "missing", "kube-root-ca.crt", "../x", "", "A"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    names,
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def pod_spec(config: str, db: str) -> dict[str, Any]:
    spec = pinner_pod_spec(config, db)
    spec["volumes"].append({"name": "p", "projected": {"sources": [{"secret": {"name": db}}]}})
    return spec


@st.composite
def reviews(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible review: a Pod or Deployment, CREATE or UPDATE, maybe with pins."""
    spec = pod_spec(draw(names), draw(names))
    annotations = draw(
        st.sampled_from(
            [
                {},
                {labels.PINS: '{"configmap/app-config":"app-config-bcdfghjklm"}'},
                {labels.PINS: "not json"},
                {labels.INJECT: "false"},
                {labels.LIVE: "secret/db,configmap/"},
            ]
        )
    )
    if draw(st.booleans()):
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": NS, "annotations": annotations},
            "spec": spec,
        }
        kind = {"group": "", "version": "v1", "kind": "Pod"}
    else:
        obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS, "uid": "d-1"},
            "spec": {
                "selector": draw(
                    st.sampled_from(
                        [
                            {"matchLabels": {"app": "web"}},
                            {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                            {"matchExpressions": [{"key": "a b", "operator": "In"}]},
                        ]
                    )
                ),
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": annotations},
                    "spec": spec,
                },
            },
        }
        kind = {"group": "apps", "version": "v1", "kind": "Deployment"}
    request: dict[str, Any] = {
        "uid": draw(st.text(min_size=1, max_size=8)),
        "kind": kind,
        "operation": draw(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"])),
        "namespace": draw(st.sampled_from([NS, "", "kube-system", "other"])),
        "object": obj,
        "dryRun": draw(st.booleans()),
    }
    if request["operation"] == "UPDATE":
        request["oldObject"] = copy.deepcopy(obj)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible review with a few values replaced, keys dropped or added anywhere."""
    body = draw(reviews())
    for _ in range(draw(st.integers(1, 4))):
        node: Any = body
        while True:
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            if not children:
                break
            key, child = draw(st.sampled_from(children))
            if isinstance(child, dict | list) and draw(st.booleans()):
                node = child
                continue
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                node[key] = draw(json_values)
            elif action == "delete":
                del node[key]
            elif isinstance(node, dict):
                node[draw(st.text(max_size=8))] = draw(json_values)
            else:
                node.append(draw(json_values))
            break
    return body


def sources() -> MemorySources:
    return MemorySources(
        namespaces={NS: {labels.INJECT: labels.INJECT_ENABLED}, "other": {}},
        objects=[
            config_map(NS, "app-config", {"k": "v"}),
            config_map(NS, "kube-root-ca.crt", {"ca.crt": "pem"}),
            secret(NS, "db", {"pw": "eA=="}),
        ],
    )


def check(body: bytes, request_uid: Any) -> None:
    metrics = Metrics()
    admission = Admission(sources(), Policy(key=KEY), metrics)
    # TestClient re-raises any exception the app lets escape: none may.
    client = TestClient(create_app(admission, metrics, ready=lambda: True))
    http = client.post("/mutate", content=body, headers=JSON)
    assert http.status_code < 500, http.text
    if http.status_code != 200:
        assert 400 <= http.status_code < 500
        assert isinstance(http.json()["error"], str) and http.json()["error"]
        return
    envelope = http.json()
    assert envelope["apiVersion"] == "admission.k8s.io/v1"
    assert envelope["kind"] == "AdmissionReview"
    response = envelope["response"]
    assert response["uid"] == request_uid
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert response["status"]["message"]
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
        patch = json.loads(base64.b64decode(response["patch"]))
        jsonpatch.apply_patch(json.loads(body)["request"]["object"], patch)
    errors = [
        sample
        for family in metrics.reviews.collect()
        for sample in family.samples
        if sample.labels.get("outcome") == "error" and sample.value
    ]
    assert errors == [], "the pinning sequence raised"


def uid_of(body: Any) -> Any:
    request = body.get("request") if isinstance(body, dict) else None
    return request.get("uid") if isinstance(request, dict) else None


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(reviews())
def test_plausible_reviews(body: dict[str, Any]) -> None:
    check(json.dumps(body).encode(), uid_of(body))


@FUZZ
@given(mutated())
def test_mutated_reviews(body: dict[str, Any]) -> None:
    check(json.dumps(body).encode(), uid_of(body))


@FUZZ
@given(json_values)
def test_random_json(value: Any) -> None:
    check(json.dumps(value).encode(), uid_of(value))


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(body: bytes) -> None:
    check(body, None)


def nested_review(
    kind: dict[str, str], obj: dict[str, Any], depth: int, old: dict[str, Any] | None = None
) -> bytes:
    """A review of `obj` whose "NEST" placeholder becomes `depth` nested lists: an UPDATE
    of a workload (from `old`), the CREATE of a Pod."""
    request: dict[str, Any] = {"uid": "u-1", "kind": kind, "namespace": NS, "object": obj}
    if kind["kind"] == "Pod":
        request["operation"] = "CREATE"
    else:
        request["operation"] = "UPDATE"
        request["oldObject"] = old or {"spec": {"template": {"spec": {}}}}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(review).replace('"NEST"', "[" * depth + "]" * depth).encode()


DEPLOYMENT = {"group": "apps", "version": "v1", "kind": "Deployment"}
POD = {"group": "", "version": "v1", "kind": "Pod"}


def webhook_client() -> TestClient:
    metrics = Metrics()
    return TestClient(
        create_app(Admission(sources(), Policy(key=KEY), metrics), metrics, lambda: True)
    )


def test_a_pod_template_nested_too_deep_is_a_400_not_a_recursion_error() -> None:
    client = webhook_client()
    deep_template = {"spec": {"template": {"spec": {"x": "NEST"}}}}
    # The template is level 1 and its spec level 2: 99 more make 101, over the limit of
    # 100; 900 parse but would break the recursive copies; the parser itself stops 100,000.
    for depth in (99, 900, 100_000):
        http = client.post(
            "/mutate", content=nested_review(DEPLOYMENT, deep_template, depth), headers=JSON
        )
        message = http.json()["error"]
        assert http.status_code == 400, depth
        assert "nests deeper" in message or "depth limit" in message, message
    at_the_limit = nested_review(DEPLOYMENT, deep_template, 98)
    assert client.post("/mutate", content=at_the_limit, headers=JSON).status_code == 200
    # The old object's template is compared too.
    shallow = {"spec": {"template": {"spec": {}}}}
    deep_old = nested_review(DEPLOYMENT, shallow, 99, old=deep_template)
    assert client.post("/mutate", content=deep_old, headers=JSON).status_code == 400


def test_depth_outside_a_pod_template_is_answered() -> None:
    """Only a workload's pod template is copied and compared; the rest of a review (a
    Deployment's managedFields, any field of a Pod) is read along fixed paths, at any depth
    the parser takes."""
    client = webhook_client()
    managed = {"metadata": {"managedFields": [{"fieldsV1": "NEST"}]}, "spec": {"template": {}}}
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "x": "NEST"}]}}
    for kind, obj in ((DEPLOYMENT, managed), (POD, pod)):
        http = client.post("/mutate", content=nested_review(kind, obj, 900), headers=JSON)
        assert http.status_code == 200, (kind, http.text)
        assert http.json()["response"]["allowed"] is True
