"""Snapshot lifecycle writes and the paginated, metadata-only lists the controller reads.

Every write is conditional, so two controller replicas that both believe they lead (a
hand-over) can never delete or release wrongly: a delete carries the snapshot's uid and
resourceVersion as preconditions, a release tests the finalizer's position first.
"""

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from app.domain import labels
from app.domain.lifecycle import FINALIZER
from app.domain.references import SourceKind
from app.kube.api import ApiError, RawApi

RESOURCE: dict[SourceKind, str] = {"configmap": "configmaps", "secret": "secrets"}

# Lists return objects' metadata only (no data, no spec): what the controller needs of
# snapshots, namespaces, and the memory it needs for 20,000 of them.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
PAGE_SIZE = 500
SNAPSHOT_SELECTOR = labels.SNAPSHOT_SELECTOR  # snapshots only, not the key or TLS Secrets


def snapshot_path(namespace: str, kind: SourceKind, name: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/{RESOURCE[kind]}/{quote(name, safe='')}"


def list_pages(
    api: RawApi, collection: str, selector: str = "", metadata_only: bool = False
) -> Iterator[dict[str, Any]]:
    """Every item of `collection`, a page at a time (only one page is held in memory).
    A continue token that expired (410 Gone) starts the list again: items may then be seen
    twice, which every caller tolerates (its decisions are per object and idempotent)."""
    token = ""
    accept = METADATA_ONLY if metadata_only else "application/json"
    while True:
        query = {"limit": str(PAGE_SIZE)} | ({"labelSelector": selector} if selector else {})
        if token:
            query["continue"] = token
        try:
            page, _ = api.request_with_headers(
                "GET", f"{collection}?{urlencode(query)}", accept=accept
            )
        except ApiError as error:
            if error.status == 410 and token:
                token = ""
                continue
            raise
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


def release_snapshot(api: RawApi, namespace: str, kind: SourceKind, name: str) -> bool:
    """Remove configpin's in-use finalizer from one snapshot, whatever holds it: the call for
    `configpin unpin`, `configpin release` and the controller. True when it was removed;
    False when it was not there or the snapshot is gone."""
    path = snapshot_path(namespace, kind, name)
    for _ in range(5):  # the finalizer list changed between the read and the patch: again
        snapshot = api.get(path)
        finalizers = ((snapshot or {}).get("metadata") or {}).get("finalizers") or []
        if FINALIZER not in finalizers:
            return False
        index = finalizers.index(FINALIZER)
        operations = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            api.request("PATCH", path, operations, "application/json-patch+json")
            return True
        except ApiError as error:
            if error.status == 404:
                return False
            if error.status not in (409, 422):  # 422: the test operation failed
                raise
    raise ApiError(409, "Conflict (the finalizers kept changing)")


def add_owner_references(
    api: RawApi, snapshot: Mapping[str, Any], owners: list[dict[str, Any]]
) -> bool:
    """Add `owners` to a snapshot's ownerReferences, if it has not changed since it was
    listed (its resourceVersion). False when it changed or is gone: the next pass retries."""
    meta = snapshot["metadata"]
    path = snapshot_path(meta["namespace"], _kind_of(snapshot), meta["name"])
    operations: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}
    ]
    if meta.get("ownerReferences"):
        operations += [
            {"op": "add", "path": "/metadata/ownerReferences/-", "value": o} for o in owners
        ]
    else:
        operations.append({"op": "add", "path": "/metadata/ownerReferences", "value": owners})
    try:
        api.request("PATCH", path, operations, "application/json-patch+json")
        return True
    except ApiError as error:
        if error.status in (404, 409, 422):
            return False
        raise


def delete_snapshot(api: RawApi, snapshot: Mapping[str, Any]) -> bool:
    """Delete a snapshot exactly as it was listed (uid and resourceVersion preconditions):
    if anything changed it since, an owner added say, nothing happens. Its finalizer keeps
    it until nothing holds it."""
    meta = snapshot["metadata"]
    body = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
        "propagationPolicy": "Background",
    }
    path = snapshot_path(meta["namespace"], _kind_of(snapshot), meta["name"])
    try:
        api.request("DELETE", path, body)
        return True
    except ApiError as error:
        if error.status in (404, 409):
            return False
        raise


def _kind_of(snapshot: Mapping[str, Any]) -> SourceKind:
    return "secret" if snapshot["kind"] == "Secret" else "configmap"


def release_all(api: RawApi) -> int:
    """Release every snapshot configpin made, in every namespace: leaving must stay easy."""
    released = 0
    for kind, resource in (("configmap", "configmaps"), ("secret", "secrets")):
        collection = f"/api/v1/{resource}"
        for item in list_pages(api, collection, SNAPSHOT_SELECTOR, metadata_only=True):
            meta = item["metadata"]
            if FINALIZER in (meta.get("finalizers") or []):
                released += release_snapshot(api, meta["namespace"], kind, meta["name"])  # type: ignore[arg-type]
    return released
