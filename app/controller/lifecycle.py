"""The snapshot lifecycle controller: one level-triggered pass at a time.

Each pass reads the whole picture and acts on it:

1. snapshots (ConfigMaps and Secrets labelled `app.kubernetes.io/managed-by=configpin`) and
   namespaces, metadata only;
2. everything that may hold a snapshot, page by page, keeping only who holds which snapshot;
3. per snapshot: add the ownerReferences it lacks (so the garbage collector deletes it after
   its last ReplicaSet / ControllerRevision / Job / bare Pod), sweep an orphan older than the
   grace period, release the in-use finalizer of a snapshot being deleted that nothing holds.

Why passes over paginated lists and not watches with a cache (kopf, or the official client's
`watch` feeding informers): the decisions that delete (sweep, release) must be made against a
view of every holder kind that is at least as new as the snapshot's state, and a pass gives
that by construction, with no cache to keep consistent across eight kinds. Memory is one page
of one list plus an index of snapshot keys, whatever the cluster holds; kopf keeps whole
objects per watched resource and its peering is not a Lease. The official client's `watch`
neither re-lists on 410 Gone nor backs off, so a watch-based design would hand-write exactly
what the issue forbids; a pass has nothing to resume. The price is latency (ownerReferences
appear within one resync period) and one list of each kind per period.
"""

import datetime
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain import labels
from app.domain.lifecycle import (
    Holder,
    SnapshotKey,
    held_message,
    held_time,
    holder_of,
    is_ours,
    may_release,
    may_sweep,
    missing_owner_references,
    referenced_names,
    snapshot_key,
)
from app.domain.workloads import Workloads
from app.kube.api import ApiError, ApiUnreachableError, RawApi
from app.kube.events import ClusterEvents
from app.kube.snapshots import (
    SNAPSHOT_SELECTOR,
    add_owner_references,
    delete_snapshot,
    list_pages,
    release_snapshot,
)
from app.metrics import ControllerMetrics

log = logging.getLogger("configpin.controller")

SNAPSHOT_COLLECTIONS = (("ConfigMap", "/api/v1/configmaps"), ("Secret", "/api/v1/secrets"))

# Everything that may run with a snapshot: every kind of the workload table (custom kinds
# included) and the revisions kept for rollback. Kinds whose API is not served (Argo
# Rollouts without its CRDs) are skipped; any other failure to list ends the pass before it
# acts.
EXTRA_HOLDERS: tuple[tuple[str, str, str], ...] = (
    ("apps/v1", "ControllerRevision", "/apis/apps/v1/controllerrevisions"),
    ("batch/v1", "CronJob", "/apis/batch/v1/cronjobs"),
)


def holder_collections(workloads: Workloads) -> tuple[tuple[str, str, str], ...]:
    """(apiVersion, kind, cluster-wide collection path) of each kind that may hold one."""
    rows = tuple(
        (
            row.api_version,
            row.kind,
            f"{'/api' if not row.group else '/apis'}/{row.api_version}/{row.resource}",
        )
        for row in workloads
    )
    return rows + tuple(extra for extra in EXTRA_HOLDERS if extra[1] not in {r[1] for r in rows})


# A held snapshot's Warning Events are repeated this often, not on every pass.
HELD_EVENT_INTERVAL_SECONDS = 600.0


@dataclass(frozen=True)
class Timing:
    resync_seconds: float = 30.0
    sweep_grace: datetime.timedelta = datetime.timedelta(minutes=10)
    # A release waits this long after the deletion was asked for: an admission that read the
    # snapshot just before has stored its object by then (the webhook timeout is 10 s).
    release_settle: datetime.timedelta = datetime.timedelta(seconds=30)


@dataclass
class PassReport:
    snapshots: int = 0
    owned: int = 0
    swept: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    held: int = 0
    orphans: int = 0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LifecycleController:
    def __init__(
        self,
        api: RawApi,
        events: ClusterEvents,
        metrics: ControllerMetrics,
        timing: Timing,
        own_namespace: str | None = None,
        workloads: Workloads | None = None,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self._api = api
        self._events = events
        self._metrics = metrics
        self._timing = timing
        self._own_namespace = own_namespace
        self._clock = clock
        self._holder_collections = holder_collections(workloads or Workloads())
        self._warned: dict[str, float] = {}  # snapshot uid -> when its holders were told

    def run(self, stop: threading.Event) -> None:
        """Passes until `stop`; a failed pass is logged and retried after the period."""
        while not stop.is_set():
            try:
                report = self.run_once()
                self._metrics.passes.labels("ok").inc()
                # A pass that changed nothing is DEBUG: a year of quiet passes every 30 s
                # would otherwise be a million identical INFO lines.
                acted = report.owned or report.swept or report.released
                log.log(
                    logging.INFO if acted else logging.DEBUG,
                    "pass: %d snapshots, %d given owners, %d swept, %d released, %d held",
                    report.snapshots,
                    report.owned,
                    len(report.swept),
                    len(report.released),
                    report.held,
                )
            except (ApiError, ApiUnreachableError) as error:
                self._metrics.passes.labels("failed").inc()
                log.warning("pass failed, nothing more done in it: %s", error)
            stop.wait(self._timing.resync_seconds)

    def run_once(self) -> PassReport:
        snapshots = self._snapshots()
        terminating = self._terminating_namespaces()
        # Holders are listed after the snapshots: a snapshot's state is never newer than the
        # view of what holds it. `now` is taken before the holder lists start.
        now = self._clock()
        holders = self._holders({snapshot_key(s) for s in snapshots})
        return self._act(snapshots, holders, terminating, now)

    def _snapshots(self) -> list[dict[str, Any]]:
        found = []
        for kind, collection in SNAPSHOT_COLLECTIONS:
            for item in list_pages(self._api, collection, SNAPSHOT_SELECTOR, metadata_only=True):
                item["kind"] = kind  # metadata-only items say PartialObjectMetadata
                meta = item.get("metadata") or {}
                if is_ours(item) and meta.get("namespace") != self._own_namespace:
                    found.append(_compact(item))
        return found

    def _terminating_namespaces(self) -> set[str]:
        return {
            ns["metadata"]["name"]
            for ns in list_pages(self._api, "/api/v1/namespaces", metadata_only=True)
            if ns["metadata"].get("deletionTimestamp")
        }

    def _holders(self, keys: set[SnapshotKey]) -> dict[SnapshotKey, list[Holder]]:
        held: dict[SnapshotKey, list[Holder]] = defaultdict(list)
        for api_version, kind, collection in self._holder_collections:
            try:
                for obj in list_pages(self._api, collection):
                    namespace = (obj.get("metadata") or {}).get("namespace", "")
                    names = referenced_names(obj)
                    in_use = [k for k in ((namespace, s, n) for s, n in names) if k in keys]
                    if in_use:
                        holder = holder_of(obj, kind, api_version)
                        for key in in_use:
                            held[key].append(holder)
            except ApiError as error:
                if error.status != 404:
                    raise
        return held

    def _act(
        self,
        snapshots: list[dict[str, Any]],
        holders: Mapping[SnapshotKey, list[Holder]],
        terminating: set[str],
        now: datetime.datetime,
    ) -> PassReport:
        report = PassReport(snapshots=len(snapshots))
        for snapshot in snapshots:
            key = snapshot_key(snapshot)
            its_holders = holders.get(key, [])
            meta = snapshot["metadata"]
            if meta.get("deletionTimestamp"):
                self._being_deleted(snapshot, its_holders, key[0] in terminating, now, report)
                continue
            # Not deleted: give it the owners it lacks; sweep it if it has and needs none.
            owners = missing_owner_references(snapshot, its_holders)
            if owners and add_owner_references(self._api, snapshot, owners):
                report.owned += 1
                self._metrics.owned.inc()
            if its_holders or meta.get("ownerReferences"):
                continue
            report.orphans += 1
            if may_sweep(snapshot, False, now, self._timing.sweep_grace) and delete_snapshot(
                self._api, snapshot
            ):
                report.swept.append(_describe(key))
                log.info("swept %s", _describe(key))
                self._metrics.swept.inc()
                self._tell_swept(snapshot, snapshots, holders)
        seen = {s["metadata"]["uid"] for s in snapshots}
        self._warned = {uid: at for uid, at in self._warned.items() if uid in seen}
        self._metrics.orphans.set(report.orphans)
        self._metrics.held.set(report.held)
        return report

    def _being_deleted(
        self,
        snapshot: dict[str, Any],
        holders: list[Holder],
        namespace_terminating: bool,
        now: datetime.datetime,
        report: PassReport,
    ) -> None:
        namespace, kind, name = snapshot_key(snapshot)
        if may_release(snapshot, holders, namespace_terminating, now, self._timing.release_settle):
            if release_snapshot(self._api, namespace, kind, name):
                report.released.append(_describe((namespace, kind, name)))
                log.info("released %s", _describe((namespace, kind, name)))
                self._metrics.releases.inc()
                self._metrics.held_seconds.observe(held_time(snapshot, now))
            self._warned.pop(snapshot["metadata"]["uid"], None)
            return
        if not holders:
            return  # waiting out the settle time
        report.held += 1
        uid = snapshot["metadata"]["uid"]
        if time.monotonic() - self._warned.get(uid, -HELD_EVENT_INTERVAL_SECONDS) < (
            HELD_EVENT_INTERVAL_SECONDS
        ):
            return
        self._warned[uid] = time.monotonic()
        message = held_message(name, holders)
        self._events.warn(namespace, snapshot, "SnapshotInUse", message)
        for holder in _unique(holders):
            self._events.warn(namespace, _object_of(holder), "SnapshotInUse", message)

    def _tell_swept(
        self,
        swept: Mapping[str, Any],
        snapshots: list[dict[str, Any]],
        holders: Mapping[SnapshotKey, list[Holder]],
    ) -> None:
        """A Normal Event on each workload that uses another snapshot of the same source (the
        swept one was made for an admission of it that did not go through), else on the
        snapshot itself."""
        namespace, kind, name = snapshot_key(swept)
        source = _source_of(swept)
        message = f"swept snapshot {name} of {kind} {source}: nothing used it"
        users = [
            holder
            for other in snapshots
            if snapshot_key(other)[:2] == (namespace, kind) and _source_of(other) == source
            for holder in holders.get(snapshot_key(other), [])
            if holder.kind not in ("Pod", "ReplicaSet", "ControllerRevision")
        ]
        targets: list[Mapping[str, Any]] = [_object_of(h) for h in _unique(users)]
        for target in targets or [swept]:
            self._events.record(namespace, target, "SnapshotSwept", message, "Normal")


def _source_of(snapshot: Mapping[str, Any]) -> str | None:
    value = (snapshot["metadata"].get("annotations") or {}).get(labels.SOURCE_NAME)
    return value if isinstance(value, str) else None


def _compact(item: Mapping[str, Any]) -> dict[str, Any]:
    """What a pass needs of a snapshot: 20,000 of them must stay small."""
    meta = item["metadata"]
    keep = (
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "finalizers",
        "ownerReferences",
        "labels",
        "annotations",
    )
    return {
        "apiVersion": "v1",
        "kind": item["kind"],
        "metadata": {k: meta[k] for k in keep if k in meta},
    }


def _describe(key: SnapshotKey) -> str:
    namespace, kind, name = key
    return f"{namespace}/{kind}/{name}"


def _unique(holders: Iterable[Holder]) -> list[Holder]:
    return list({h.uid: h for h in holders}.values())


def _object_of(holder: Holder) -> dict[str, Any]:
    return {
        "apiVersion": holder.api_version,
        "kind": holder.kind,
        "metadata": {"name": holder.name, "uid": holder.uid},
    }
