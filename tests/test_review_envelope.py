"""The AdmissionReview envelope on its own: the exact refusal for each malformed request,
the patch encoding, denial statuses and warnings cut to what Kubernetes keeps."""

import base64
import json
from typing import Any

import pytest

from app.admission.pinner import Outcome
from app.admission.review import (
    MAX_WARNING_LENGTH,
    BadReviewError,
    parse_review,
    response,
    short_warnings,
)
from app.domain.workloads import Workloads


def envelope(**request: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "object": {"metadata": {}},
            **request,
        },
    }


def body(**request: Any) -> bytes:
    return json.dumps(envelope(**request)).encode()


def invalid(where: str, what: str) -> str:
    return f"invalid AdmissionReview: {where}: must be {what}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[]", "the body must be a JSON object (an AdmissionReview)"),
        (
            json.dumps({**envelope(), "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
            "expected kind AdmissionReview, apiVersion admission.k8s.io/v1",
        ),
        (
            json.dumps({**envelope(), "kind": "Review"}).encode(),
            "expected kind AdmissionReview, apiVersion admission.k8s.io/v1",
        ),
        (body(uid=""), "the AdmissionReview has no request.uid"),
        (body(uid=2), invalid("request.uid", "a string")),
        (body(kind="Pod"), invalid("request.kind", "an object")),
        (body(kind={"group": ""}), invalid("request.kind.kind", "a string")),
        (body(kind={"group": 1, "kind": "Pod"}), invalid("request.kind.group", "a string")),
        (body(kind={"version": 1, "kind": "Pod"}), invalid("request.kind.version", "a string")),
        (
            body(kind={"group": "", "kind": "ConfigMap"}),
            "request.kind is not one of the kinds configpin pins",
        ),
        (body(object=None), "the Pod review has no request.object"),
        (body(oldObject=[]), invalid("request.oldObject", "an object")),
        (body(object={"metadata": True}), invalid("request.object.metadata", "an object")),
        (body(oldObject={"metadata": "x"}), invalid("request.oldObject.metadata", "an object")),
        (body(dryRun="yes"), invalid("request.dryRun", "a boolean")),
        (body(operation=["CREATE"]), invalid("request.operation", "a string")),
        (body(operation=None), invalid("request.operation", "a string")),
        (body(namespace=3), invalid("request.namespace", "a string")),
        (body(name=False), invalid("request.name", "a string")),
    ],
)
def test_each_malformed_review_is_refused_saying_exactly_why(raw: bytes, message: str) -> None:
    with pytest.raises(BadReviewError) as raised:
        parse_review(raw, Workloads())
    assert str(raised.value) == message


def test_a_body_that_is_not_json_is_refused_without_quoting_it() -> None:
    with pytest.raises(BadReviewError, match=r"^the body is not valid JSON: ") as raised:
        parse_review(b'{"password": "hunter2" ', Workloads())
    assert "hunter2" not in str(raised.value)


def test_optional_fields_default_to_empty() -> None:
    request = parse_review(body(), Workloads()).request
    assert (request.namespace, request.name, request.old_object, request.dry_run) == (
        "",
        "",
        None,
        False,
    )
    assert request.kind.version == "v1" and request.kind.group == ""


def test_the_patch_is_compact_json_in_base64() -> None:
    patch = [{"op": "replace", "path": "/spec/a", "value": "b"}]
    answer = response("u", Outcome("pinned", patch=patch))["response"]
    assert base64.b64decode(answer["patch"]) == b'[{"op":"replace","path":"/spec/a","value":"b"}]'
    assert answer["patchType"] == "JSONPatch"


def test_a_denial_without_a_message_still_says_denied() -> None:
    answer = response("u", Outcome("denied", allowed=False, status_code=503))["response"]
    assert answer["status"] == {"code": 503, "message": "denied"}


def test_warnings_are_cut_to_what_kubernetes_keeps() -> None:
    exact = "x" * MAX_WARNING_LENGTH
    longer = "y" * (MAX_WARNING_LENGTH + 1)
    assert short_warnings([exact, longer]) == [exact, "y" * (MAX_WARNING_LENGTH - 3) + "..."]
    assert all(len(w) == MAX_WARNING_LENGTH for w in short_warnings([exact, longer]))
