"""The AdmissionReview v1 envelope: the few request fields read, raw objects, the response.

Only the fields configpin reads are checked, by hand: validating the whole review with a
model costs more than the review itself on the hot path, and the objects stay raw dicts.
"""

import base64
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from app.admission.pinner import Outcome
from app.domain.workloads import WorkloadKind, Workloads, template_of

API_VERSION = "admission.k8s.io/v1"
# Kubernetes truncates longer warnings; keep each one readable on a terminal line.
MAX_WARNING_LENGTH = 120
# Real pod templates nest about 15 levels deep.
MAX_DEPTH = 100


class BadReviewError(ValueError):
    """The request is not a review configpin can answer: an HTTP 400, not a denial."""


# Named tuples rather than frozen dataclasses: made on every review, where a frozen
# dataclass's field-by-field `object.__setattr__` costs several times more.
class GroupVersionKind(NamedTuple):
    group: str
    version: str
    kind: str


class AdmissionRequest(NamedTuple):
    uid: str
    kind: GroupVersionKind
    workload: WorkloadKind  # the table's entry for `kind`
    operation: str
    namespace: str
    name: str
    object: dict[str, Any]
    old_object: dict[str, Any] | None
    dry_run: bool


class AdmissionReview(NamedTuple):
    request: AdmissionRequest


def parse_review(body: bytes, kinds: Workloads) -> AdmissionReview:
    """The review, refused unless its kind is one of the table's."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as error:  # the message gives a position, never the content
        raise BadReviewError(f"the body is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise BadReviewError("the body must be a JSON object (an AdmissionReview)")
    if raw.get("apiVersion") != API_VERSION or raw.get("kind") != "AdmissionReview":
        raise BadReviewError(f"expected kind AdmissionReview, apiVersion {API_VERSION}")
    request = raw.get("request")
    if not isinstance(request, dict) or not request.get("uid"):
        raise BadReviewError("the AdmissionReview has no request.uid")
    gvk = request.get("kind")
    if not isinstance(gvk, dict):
        raise BadReviewError("invalid AdmissionReview: request.kind: must be an object")
    kind = GroupVersionKind(
        _string(gvk, "group", "request.kind.group"),
        _string(gvk, "version", "request.kind.version"),
        _string(gvk, "kind", "request.kind.kind", required=True),
    )
    workload = kinds.find(kind.group, kind.kind)
    if workload is None:
        # The kind is not echoed: nothing from the body goes into errors or logs.
        raise BadReviewError("request.kind is not one of the kinds configpin pins")
    obj = request.get("object")
    if not isinstance(obj, dict):
        raise BadReviewError(f"the {kind.kind} review has no request.object")
    old = request.get("oldObject")
    if old is not None and not isinstance(old, dict):
        raise BadReviewError("invalid AdmissionReview: request.oldObject: must be an object")
    if _template_too_deep(body, workload, obj, old):
        raise BadReviewError(f"the pod template nests deeper than {MAX_DEPTH} levels")
    for where, checked in (("object", obj), ("oldObject", old)):
        # Read all along the sequence (name, annotations, owners) as an object or absent.
        metadata = (checked or {}).get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise BadReviewError(
                f"invalid AdmissionReview: request.{where}.metadata: must be an object"
            )
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise BadReviewError("invalid AdmissionReview: request.dryRun: must be a boolean")
    return AdmissionReview(
        AdmissionRequest(
            uid=_string(request, "uid", "request.uid"),  # present: checked first
            kind=kind,
            workload=workload,
            operation=_string(request, "operation", "request.operation", required=True),
            namespace=_string(request, "namespace", "request.namespace"),
            name=_string(request, "name", "request.name"),
            object=obj,
            old_object=old,
            dry_run=dry_run,
        )
    )


def _template_too_deep(
    body: bytes, workload: WorkloadKind, obj: dict[str, Any], old: dict[str, Any] | None
) -> bool:
    """Whether a pod template nests too deep for the copies and comparisons of it, which
    recurse: refused rather than failed half way. A Pod is only read along fixed paths,
    whatever its depth (its managedFields alone open more brackets than the limit)."""
    if workload.is_pod:
        return False
    # Nesting cannot be deeper than the brackets that open it: counting them (in C) spares
    # the walk for every small review.
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        return False
    return any(
        _deeper_than(template_of(workload, checked), MAX_DEPTH)
        for checked in (obj, old)
        if checked is not None
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` levels, found level by level without
    recursion, visiting containers only."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            below.extend(child for child in children if isinstance(child, dict | list))
        if not below:
            return False
        level = below
    return True


def _string(fields: Mapping[str, Any], key: str, where: str, required: bool = False) -> str:
    # Names the field only: the value is never echoed.
    value = fields.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadReviewError(f"invalid AdmissionReview: {where}: must be a string")
    return value


def response(uid: str, outcome: Outcome) -> dict[str, Any]:
    body: dict[str, Any] = {"uid": uid, "allowed": outcome.allowed}
    if outcome.patch:
        body["patchType"] = "JSONPatch"
        body["patch"] = base64.b64encode(orjson.dumps(outcome.patch)).decode()
    if not outcome.allowed:
        body["status"] = {"code": outcome.status_code, "message": outcome.denial or "denied"}
    if outcome.warnings:
        body["warnings"] = short_warnings(outcome.warnings)
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": body}


def short_warnings(warnings: Sequence[str]) -> list[str]:
    return [
        w if len(w) <= MAX_WARNING_LENGTH else w[: MAX_WARNING_LENGTH - 3] + "..." for w in warnings
    ]
