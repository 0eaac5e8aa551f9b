"""How long a snapshot lives: who holds it, who owns it, when it may be swept or released.

A snapshot is held by every object that may run with it: a Pod, a ReplicaSet,
ControllerRevision or Job kept for rollback, or a workload template of any kind. What holds
a snapshot is found from the object itself, whatever its kind: every `configpin.io/pins`
annotation anywhere in it (pod templates, nested ones as in CronJobs, ControllerRevision data)
and every ConfigMap/Secret reference in every pod spec in it. So a new workload kind needs no
change here.

Pure decisions only; the controller (app/controller) lists and writes.
"""

import datetime
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from app.domain import labels
from app.domain.pinning import parse_pins, snapshot_sources
from app.domain.references import SourceKind, find_references
from app.domain.snapshots import SOURCE_KIND, is_snapshot
from app.domain.timestamps import parse_time

FINALIZER = labels.IN_USE_FINALIZER

# Kinds a snapshot is owned by (ownerReferences), so the garbage collector deletes it after
# the last one: what keeps a revision for rollback. A bare Pod (no controller) owns its own.
OWNER_KINDS = frozenset({"ReplicaSet", "ControllerRevision", "Job"})

# (namespace, kind, name): one snapshot, kind "configmap" or "secret".
SnapshotKey = tuple[str, SourceKind, str]


@dataclass(frozen=True)
class Holder:
    """An object that references a snapshot."""

    api_version: str
    kind: str
    name: str
    uid: str
    owns: bool  # an ownerReference from the snapshot to it is wanted

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"

    def owner_reference(self) -> dict[str, Any]:
        # Neither controller nor blockOwnerDeletion: a snapshot is shared by several
        # revisions and must never slow the deletion of one.
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
        }


def holder_of(obj: Mapping[str, Any], kind: str, api_version: str) -> Holder:
    meta = obj.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    bare_pod = kind == "Pod" and not any(o.get("controller") is True for o in owners)
    return Holder(
        api_version=api_version,
        kind=kind,
        name=meta["name"],  # a listed object: the API server gave it both
        uid=meta["uid"],
        owns=kind in OWNER_KINDS or bare_pod,
    )


def referenced_names(obj: Mapping[str, Any]) -> set[tuple[SourceKind, str]]:
    """Every (kind, name) of ConfigMap/Secret the object may run with: the values of each
    pins annotation in it, and each reference of each pod spec in it."""
    found: set[tuple[SourceKind, str]] = set()
    for node in _mappings(obj):
        found |= snapshot_sources(parse_pins(node)).keys()
        if isinstance(node.get("containers"), list):
            found |= {(ref.kind, ref.name) for ref in find_references(node, "")}
    return found


def _mappings(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _mappings(item)


def snapshot_key(obj: Mapping[str, Any]) -> SnapshotKey:
    meta = obj["metadata"]
    return (meta["namespace"], SOURCE_KIND[obj["kind"]], meta["name"])


def missing_owner_references(
    snapshot: Mapping[str, Any], holders: Iterable[Holder]
) -> list[dict[str, Any]]:
    """The ownerReferences to add: one per owning holder not yet an owner (by uid)."""
    present = {o.get("uid") for o in (snapshot.get("metadata") or {}).get("ownerReferences") or []}
    wanted: dict[str, dict[str, Any]] = {}
    for holder in holders:
        if holder.owns and holder.uid not in present:
            wanted.setdefault(holder.uid, holder.owner_reference())
    return [wanted[uid] for uid in sorted(wanted)]


def is_ours(obj: Mapping[str, Any]) -> bool:
    """A snapshot configpin made: its labels and its source annotation."""
    meta = obj.get("metadata") or {}
    return is_snapshot(obj) and labels.SOURCE_NAME in (meta.get("annotations") or {})


def may_sweep(
    snapshot: Mapping[str, Any],
    held: bool,
    now: datetime.datetime,
    grace: datetime.timedelta,
) -> bool:
    """An orphan: configpin's, not being deleted, owned by nothing, held by nothing, and
    older than the grace period (an admission may be storing its workload right now)."""
    meta = snapshot.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    return (
        is_ours(snapshot)
        and not held
        and not meta.get("deletionTimestamp")
        and not meta.get("ownerReferences")
        and created is not None
        and now - created >= grace
    )


def may_release(
    snapshot: Mapping[str, Any],
    holders: Iterable[Holder],
    namespace_terminating: bool,
    now: datetime.datetime,
    settle: datetime.timedelta,
) -> bool:
    """The finalizer may go: the snapshot is being deleted and nothing holds it (seen in
    lists made at least `settle` after the deletion was asked: an admission that read the
    snapshot before then has stored its object by then), or its namespace is going away
    (everything in it is, so no reference outlives it)."""
    meta = snapshot.get("metadata") or {}
    deleted = parse_time(meta.get("deletionTimestamp"))
    if deleted is None or FINALIZER not in (meta.get("finalizers") or []):
        return False
    if namespace_terminating:
        return True
    return not any(True for _ in holders) and now - deleted >= settle


def held_time(snapshot: Mapping[str, Any], now: datetime.datetime) -> float:
    """Seconds since the deletion of `snapshot` was asked for."""
    deleted = parse_time((snapshot.get("metadata") or {}).get("deletionTimestamp"))
    return 0.0 if deleted is None else max(0.0, (now - deleted).total_seconds())


def held_message(snapshot_name: str, holders: Iterable[Holder]) -> str:
    names = sorted(str(h) for h in holders)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"snapshot {snapshot_name} is being deleted but is still in use by {shown}"
