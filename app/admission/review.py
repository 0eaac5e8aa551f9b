"""The AdmissionReview v1 envelope: typed request, raw objects, and the response."""

import base64
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.admission.pinner import Outcome
from app.domain.workloads import Workloads

API_VERSION = "admission.k8s.io/v1"
# Kubernetes truncates longer warnings; keep each one readable on a terminal line.
MAX_WARNING_LENGTH = 120


class BadReviewError(ValueError):
    """The request is not a review configpin can answer: an HTTP 400, not a denial."""


class GroupVersionKind(BaseModel):
    model_config = ConfigDict(extra="ignore")
    group: str = ""
    version: str = ""
    kind: str


class AdmissionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    operation: str
    namespace: str = ""
    name: str = ""
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = Field(default=None, alias="oldObject")
    dry_run: bool = Field(default=False, alias="dryRun")


class AdmissionReview(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    api_version: str = Field(alias="apiVersion")
    kind: str
    request: AdmissionRequest


def parse_review(body: bytes, kinds: Workloads) -> AdmissionReview:
    """The review, refused unless its kind is one of the table's."""
    try:
        raw = json.loads(body)
    except UnicodeDecodeError:
        raise BadReviewError("the body is not valid JSON: not UTF-8 text") from None
    except ValueError as error:  # the message gives a position, never the content
        raise BadReviewError(f"the body is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise BadReviewError("the body must be a JSON object (an AdmissionReview)")
    if raw.get("apiVersion") != API_VERSION or raw.get("kind") != "AdmissionReview":
        raise BadReviewError(f"expected kind AdmissionReview, apiVersion {API_VERSION}")
    request = raw.get("request")
    if not isinstance(request, dict) or not request.get("uid"):
        raise BadReviewError("the AdmissionReview has no request.uid")
    try:
        review = AdmissionReview.model_validate(raw)
    except ValidationError as error:
        raise BadReviewError(f"invalid AdmissionReview: {_fields(error)}") from None
    gvk = review.request.kind
    if kinds.find(gvk.group, gvk.kind) is None:
        # The kind is not echoed: nothing from the body goes into errors or logs.
        raise BadReviewError("request.kind is not one of the kinds configpin pins")
    if review.request.object is None:
        raise BadReviewError(f"the {gvk.kind} review has no request.object")
    return review


def _fields(error: ValidationError) -> str:
    # Name the fields only: pydantic's default message would echo the input values.
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in error.errors(include_input=False)
    )


def response(uid: str, outcome: Outcome) -> dict[str, Any]:
    body: dict[str, Any] = {"uid": uid, "allowed": outcome.allowed}
    if outcome.patch:
        body["patchType"] = "JSONPatch"
        patch_json = json.dumps(outcome.patch, separators=(",", ":"))
        body["patch"] = base64.b64encode(patch_json.encode()).decode()
    if not outcome.allowed:
        body["status"] = {"code": outcome.status_code, "message": outcome.denial or "denied"}
    if outcome.warnings:
        body["warnings"] = short_warnings(outcome.warnings)
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": body}


def short_warnings(warnings: Sequence[str]) -> list[str]:
    return [
        w if len(w) <= MAX_WARNING_LENGTH else w[: MAX_WARNING_LENGTH - 3] + "..." for w in warnings
    ]
