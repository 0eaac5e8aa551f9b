"""Roll on change: short level-triggered passes that roll opted-in workloads whose sources
have content they were not rolled for (decisions in app/domain/rollonchange.py).

Each pass:

1. namespaces (metadata only): which are opted in to pinning and to roll-on-change;
2. every kind of the workload table whose template a rollout changes (Deployments,
   StatefulSets, DaemonSets, Argo Rollouts...), metadata only, then whole objects only in the
   namespaces where one opted in, page by page, keeping only the opted-in ones' name, uid,
   resourceVersion, record and the digests their templates pin;
3. per namespace holding such a workload: its ReplicaSets (metadata only, for the records a
   `kubectl rollout undo` the webhook did not see left there) and its ConfigMaps and Secrets,
   keeping only the digest (HMAC under the cluster key, as the webhook names snapshots) of
   those referenced;
4. per workload: roll (debounced, rate-limited per namespace), adopt, bring its record up
   from a ReplicaSet, or leave it.

Why passes and not a watch of ConfigMaps and Secrets: what was acted on lives in the cluster
(the workload's `configpin.io/rolled-for`), so a pass needs no memory of earlier passes to be
right; a newly elected leader, or one that was down during an edit, sees the edit in its first
pass and never repeats one. The official client's watch neither re-lists on 410 Gone nor backs
off, and a watch of Secrets must hold their data (the digest needs it) or re-read each one.
A pass holds one page of one list plus digests, and only reads sources in namespaces where a
workload opted in. The price: a change is seen within one period (`rollout_resync_seconds`,
3 s by default, shorter than the debounce), and each period lists the workload kinds'
metadata everywhere.
"""

import datetime
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from app.domain import labels, scope
from app.domain.naming import content_digest
from app.domain.references import SourceKind
from app.domain.rollonchange import (
    MISSING,
    RESTARTED_AT,
    Debouncer,
    Digests,
    RateLimit,
    Record,
    baseline,
    changed_sources,
    describe_change,
    newest_record,
    next_record,
    opted_in,
    parse_record,
    record_behind,
    roll_patch,
    rollable,
    tracked_sources,
)
from app.domain.workloads import Rollbacks, WorkloadKind, template_of
from app.kube.api import ApiError, ApiUnreachableError, RawApi
from app.kube.events import ClusterEvents
from app.kube.snapshots import list_pages
from app.metrics import ControllerMetrics

log = logging.getLogger("configpin.rollonchange")


RESOURCE: dict[SourceKind, str] = {"configmap": "configmaps", "secret": "secrets"}
NOT_SNAPSHOTS = f"{labels.MANAGED_BY}!={labels.MANAGER}"


@dataclass(frozen=True)
class Timing:
    resync_seconds: float = 3.0
    debounce_seconds: float = 5.0
    longest_wait_seconds: float = 60.0
    namespace_limit: int = 10
    namespace_window_seconds: float = 60.0


@dataclass(frozen=True)
class Workload:
    """What a pass keeps of an opted-in workload."""

    kind: WorkloadKind
    namespace: str
    name: str
    uid: str
    resource_version: str
    record: Record | None
    tracked: Digests
    restarted_at: str | None

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.kind.api_version,
            "kind": self.kind.kind,
            "metadata": {"name": self.name, "uid": self.uid},
        }


@dataclass
class PassReport:
    workloads: int = 0
    rolled: list[str] = field(default_factory=list)
    adopted: int = 0
    waiting: int = 0  # changed, inside the debounce window or the rate limit


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class RollOnChangeController:
    def __init__(
        self,
        api: RawApi,
        events: ClusterEvents,
        metrics: ControllerMetrics,
        key_source: Callable[[], bytes | None],
        kinds: Iterable[WorkloadKind],
        timing: Timing,
        own_namespace: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self._api = api
        self._events = events
        self._metrics = metrics
        self._key_source = key_source
        self._key: bytes | None = None
        self._kinds = rollable(kinds)
        self._timing = timing
        self._own_namespace = own_namespace
        self._clock = clock
        self._wall_clock = wall_clock
        self._debounce = Debouncer(timing.debounce_seconds, timing.longest_wait_seconds)
        self._rate = RateLimit(timing.namespace_limit, timing.namespace_window_seconds)

    def run(self, stop: threading.Event) -> None:
        """Passes until `stop`; a failed pass is logged and retried after the period."""
        while not stop.is_set():
            try:
                report = self.run_once()
                if report.rolled:
                    log.info("rolled %s", ", ".join(report.rolled))
            except (ApiError, ApiUnreachableError) as error:
                self._metrics.passes.labels("failed").inc()
                log.warning("roll-on-change pass failed, nothing more done in it: %s", error)
            stop.wait(self._timing.resync_seconds)

    def run_once(self) -> PassReport:
        if self._key is None:
            self._key = self._key_source()
            if self._key is None:
                log.info("roll-on-change waits for the HMAC key Secret")
                return PassReport()
        namespaces = self._namespaces()
        workloads = list(self._workloads(namespaces))
        self._debounce.keep_only(w.uid for w in workloads)
        by_namespace: dict[str, list[Workload]] = defaultdict(list)
        for workload in workloads:
            by_namespace[workload.namespace].append(workload)
        report = PassReport(workloads=len(workloads))
        for namespace, its_workloads in by_namespace.items():
            records = self._replica_set_records(namespace, its_workloads)
            current = self._digests(namespace, its_workloads)
            for workload in its_workloads:
                self._decide(
                    workload,
                    newest_record([workload.record, records.get(workload.uid)]),
                    current,
                    report,
                )
        return report

    def _namespaces(self) -> dict[str, Mapping[str, Any]]:
        """Namespaces whose workloads may be rolled: opted in to pinning, not configpin's own."""
        found = {}
        for ns in list_pages(self._api, "/api/v1/namespaces", metadata_only=True):
            meta = ns.get("metadata") or {}
            name = meta.get("name", "")
            if scope.namespace_never_touched(name, self._own_namespace):
                continue
            if scope.namespace_opted_in(meta.get("labels") or {}):
                found[name] = meta
        return found

    def _workloads(self, namespaces: Mapping[str, Mapping[str, Any]]) -> Iterator[Workload]:
        """The opted-in workloads. Whole objects (their templates) are listed only in the
        namespaces where a metadata-only list found one: elsewhere a pass reads metadata."""
        for kind in self._kinds:
            try:
                wanted = {
                    meta.get("namespace", "")
                    for item in list_pages(self._api, _collection(kind), metadata_only=True)
                    if _may_roll(meta := item.get("metadata") or {}, namespaces)
                }
                for namespace in sorted(wanted):
                    for obj in list_pages(self._api, _collection(kind, namespace)):
                        workload = _opted_in_workload(kind, obj, namespaces)
                        if workload is not None:
                            yield workload
            except ApiError as error:
                if error.status != 404:  # Argo Rollouts' API not served: nothing to roll
                    raise

    def _replica_set_records(self, namespace: str, workloads: list[Workload]) -> dict[str, Record]:
        """Per owner uid, the newest record among the ReplicaSets it controls."""
        if not any(w.kind.rollbacks == Rollbacks.REPLICA_SETS for w in workloads):
            return {}
        records: dict[str, Record] = {}
        path = f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/replicasets"
        for rs in list_pages(self._api, path, metadata_only=True):
            meta = rs.get("metadata") or {}
            record = parse_record(meta)
            if record is None:
                continue
            for owner in meta.get("ownerReferences") or []:
                if owner.get("controller") is True:
                    newest = newest_record([records.get(owner.get("uid", "")), record])
                    if newest is not None:
                        records[owner.get("uid", "")] = newest
        return records

    def _digests(self, namespace: str, workloads: list[Workload]) -> Digests:
        """The current digest of every source these workloads track, MISSING for one that
        does not exist; none for one that stays live by its own opt-out."""
        wanted: dict[SourceKind, set[str]] = defaultdict(set)
        for workload in workloads:
            for key in workload.tracked:
                kind, _, name = key.partition("/")
                wanted[kind].add(name)  # type: ignore[index]
        hmac_key = self._key
        assert hmac_key is not None  # run_once has it
        current: Digests = {}
        for kind, names in wanted.items():
            path = f"/api/v1/namespaces/{quote(namespace, safe='')}/{RESOURCE[kind]}"
            seen = set()
            for source in list_pages(self._api, path, NOT_SNAPSHOTS):
                name = (source.get("metadata") or {}).get("name", "")
                if name not in names:
                    continue
                seen.add(name)
                if not scope.source_stays_live(source, kind):
                    current[f"{kind}/{name}"] = content_digest(hmac_key, kind, source)
            for name in names - seen:
                current[f"{kind}/{name}"] = MISSING
        return current

    def _decide(
        self, workload: Workload, record: Record | None, current: Digests, report: PassReport
    ) -> None:
        changed = changed_sources(workload.tracked, record, current)
        if not changed:
            self._debounce.forget(workload.uid)
            if record_behind(workload.tracked, record, current):
                self._adopt(workload, record, current, report)
            elif record is not None and record != workload.record:
                # Only a ReplicaSet holds it (an undo the webhook did not see): onto the
                # workload, before revisionHistoryLimit prunes that ReplicaSet.
                self._patch(
                    workload, roll_patch(workload.kind, workload.resource_version, record, None)
                )
            return
        signature = tuple((key, current[key]) for key in changed)
        now = self._clock()
        if not self._debounce.ready(workload.uid, signature, now) or not self._rate.allow(
            workload.namespace, now
        ):
            report.waiting += 1
            return
        new_record = next_record(workload.tracked, record, current)
        if not self._patch(
            workload,
            roll_patch(workload.kind, workload.resource_version, new_record, self._stamp(workload)),
        ):
            return
        self._debounce.forget(workload.uid)
        appeared = [k for k in changed if baseline(k, workload.tracked, record) == MISSING]
        self._events.record(
            workload.namespace,
            workload.reference(),
            "RolloutOnChange",
            describe_change(changed, appeared),
            "Normal",
        )
        self._metrics.rollouts.labels(workload.kind.kind).inc()
        report.rolled.append(f"{workload.namespace}/{workload.kind.kind}/{workload.name}")

    def _adopt(
        self, workload: Workload, record: Record | None, current: Digests, report: PassReport
    ) -> None:
        """A record without a rollout: the template already pins the current content, which
        is now what the workload has been rolled for, so that a later undo stays."""
        new_record = next_record(workload.tracked, record, current)
        if self._patch(
            workload, roll_patch(workload.kind, workload.resource_version, new_record, None)
        ):
            report.adopted += 1

    def _patch(self, workload: Workload, body: Mapping[str, Any]) -> bool:
        """False when the workload changed or vanished since it was read: the next pass
        reads it again."""
        try:
            self._api.request(
                "PATCH",
                _object_path(workload.kind, workload.namespace, workload.name),
                body,
                "application/merge-patch+json",
            )
            return True
        except ApiError as error:
            if error.status in (404, 409):
                return False
            raise

    def _stamp(self, workload: Workload) -> str:
        """`restartedAt` as `kubectl rollout restart` writes it; never the value the
        template already has (that would not be a template change)."""
        now = self._wall_clock().replace(microsecond=0)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        if stamp == workload.restarted_at:
            stamp = (now + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return stamp


def _collection(kind: WorkloadKind, namespace: str | None = None) -> str:
    prefix = f"/apis/{kind.api_version}" if kind.group else f"/api/{kind.version}"
    if namespace is None:
        return f"{prefix}/{kind.resource}"
    return f"{prefix}/namespaces/{quote(namespace, safe='')}/{kind.resource}"


def _object_path(kind: WorkloadKind, namespace: str, name: str) -> str:
    return f"{_collection(kind, namespace)}/{quote(name, safe='')}"


def _may_roll(meta: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, Any]]) -> bool:
    namespace = meta.get("namespace", "")
    if namespace not in namespaces or meta.get("deletionTimestamp"):
        return False
    return opted_in(meta, namespaces[namespace])


def _opted_in_workload(
    kind: WorkloadKind, obj: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, Any]]
) -> Workload | None:
    meta = obj.get("metadata") or {}
    if not _may_roll(meta, namespaces):
        return None
    namespace = meta.get("namespace", "")
    template = template_of(kind, obj)
    template_meta = template.get("metadata") or {}
    if scope.opted_out(meta, template_meta):
        return None
    tracked = tracked_sources(meta, template)
    if not tracked:
        return None
    restarted_at = (template_meta.get("annotations") or {}).get(RESTARTED_AT)
    return Workload(
        kind=kind,
        namespace=namespace,
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        record=parse_record(meta),
        tracked=tracked,
        restarted_at=restarted_at if isinstance(restarted_at, str) else None,
    )
