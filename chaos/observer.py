"""The chaos test's observer: watches the cluster and the configpin processes during a run
and counts the violations of the six invariants (chaos/invariants.py says what each is).

Watches are the API server's own (list, then watch from the list's resourceVersion with
bookmarks), one thread per kind, cluster-wide and filtered to the run's namespaces. A watch
that ends is resumed from the last resourceVersion seen; one that fails (410 Gone, a
connection refused while the API server restarts, a read that times out while etcd is
paused) is replaced by a fresh list, compared with what was known: what vanished in between
was deleted. The official client's `watch` re-lists on neither, hence the loop here.

What is kept per object is a small record (names, uids, the snapshots it references, a
keyed fingerprint of a source's or snapshot's content), never a whole object and never a
Secret value; memory grows with the number of objects the run makes, not with time.

A violation seen through one watch is confirmed before it is counted: watches of different
kinds arrive in no common order (a Pod may be seen before the snapshot created before it),
so a missing snapshot or a deleted snapshot's holder is read back from the API server.
"""

import contextlib
import copy
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_bytes
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from app.domain import labels
from app.domain.references import SourceKind
from app.domain.snapshots import API_KIND, SOURCE_KIND
from app.domain.timestamps import parse_time
from app.kube.api import ApiError, ApiUnreachableError, RawApi
from chaos.invariants import (
    ABSENT,
    DENIALS,
    EXPECTED_DENIALS,
    MEMORY,
    NEVER_DELETED,
    NO_ORPHAN,
    ONE_CONFIG,
    REFERENCES,
    REVISION_KINDS,
    Denial,
    Fault,
    Holder,
    Lags,
    MemoryBound,
    ObjectKey,
    Snapshot,
    SourceHistory,
    Tally,
    classify_denial,
    content_violation,
    fingerprint,
    holder_record,
    holders_of,
    is_source,
    memory_verdict,
    missing_snapshots,
    old_orphans,
    pinned_source,
    revision_mismatches,
    snapshot_record,
    uncalled_for_denials,
)

log = logging.getLogger("configpin.chaos")

# (kind, cluster-wide collection). Every kind that may run with a snapshot, the sources and
# snapshots themselves, and Events (FailedCreate: a controller's creates refused).
HOLDER_COLLECTIONS: tuple[tuple[str, str], ...] = (
    ("Pod", "/api/v1/pods"),
    ("ReplicaSet", "/apis/apps/v1/replicasets"),
    ("ControllerRevision", "/apis/apps/v1/controllerrevisions"),
    ("Deployment", "/apis/apps/v1/deployments"),
    ("StatefulSet", "/apis/apps/v1/statefulsets"),
    ("DaemonSet", "/apis/apps/v1/daemonsets"),
    ("Job", "/apis/batch/v1/jobs"),
    ("Rollout", "/apis/argoproj.io/v1alpha1/rollouts"),  # skipped where its CRD is absent
)
CONTENT_COLLECTIONS: tuple[tuple[str, str], ...] = (
    ("ConfigMap", "/api/v1/configmaps"),
    ("Secret", "/api/v1/secrets"),
)
EVENTS = ("Event", "/api/v1/events")
COLLECTIONS = (*HOLDER_COLLECTIONS, *CONTENT_COLLECTIONS, EVENTS)
HOLDER_KINDS = frozenset(kind for kind, _ in HOLDER_COLLECTIONS)
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Rollout"})
PATHS = dict(COLLECTIONS)

WATCH_SECONDS = 30  # the server ends each watch after this; it is resumed at once
READ_TIMEOUT_SECONDS = WATCH_SECONDS + 15  # bookmarks and the end come well within
LIST_PAGE = 500
REQUEST_TIMEOUT_SECONDS = 30  # lists and reads (an etcd pause holds them)
CONFIRM_AFTER_SECONDS = 5.0  # a missing snapshot is read back once watches had this to catch up
SNAPSHOT_WAIT_SECONDS = 30.0  # a revision's snapshot not seen by then is left to invariant 1's
CHECK_SECONDS = 1.0
RSS_SECONDS = 2.0
RSS_KEPT = 2000  # samples per process; past it every other one is dropped
DENIAL_TOLERANCE_SECONDS = 15.0  # the webhook's 10 s timeout, and kubectl's report
FAILED_CREATE_KINDS = frozenset({"ReplicaSet", "StatefulSet", "DaemonSet", "Job"})

# What a restarting API server or a paused etcd does to a request or a stream (the client
# wraps TLS failures in ApiException; a cut stream can end mid-line).
_CONNECTION_ERRORS = (
    ApiError,
    ApiUnreachableError,
    ApiException,
    urllib3.exceptions.HTTPError,
    OSError,
    ValueError,
)


class _GoneError(Exception):
    """The watch's resourceVersion is too old: list again."""


class _NotServedError(Exception):
    """The API does not serve this kind (a CRD not installed)."""


@dataclass
class _RevisionCheck:
    holder: Holder
    due: float
    give_up: float


@dataclass
class _Suspect:
    """A revision whose content check failed with the faults known then; judged again in
    report(), once every fault window is known."""

    holder: Holder
    source_key: str
    snapshot: Snapshot


@dataclass
class _State:
    """The observer's view, guarded by Observer._lock."""

    holders: dict[tuple[str, str, str], Holder] = field(default_factory=dict)  # kind, ns, name
    present: dict[ObjectKey, Snapshot] = field(default_factory=dict)
    seen: dict[ObjectKey, Snapshot] = field(default_factory=dict)  # every snapshot ever seen
    sources: dict[ObjectKey, SourceHistory] = field(default_factory=dict)
    source_names: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    referenced_by: dict[ObjectKey, set[tuple[str, str, str]]] = field(
        default_factory=lambda: defaultdict(set)
    )
    unheld_since: dict[ObjectKey, float] = field(default_factory=dict)
    # (workload uid, template_key) -> when the observer first saw that template on it
    template_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    # ... and when its watch saw the workload's version just before that template
    template_after: dict[tuple[str, str], float] = field(default_factory=dict)
    workload_seen: dict[str, tuple[float, bool]] = field(default_factory=dict)  # (when, watched)
    workload_names: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # uid -> name
    requests: dict[tuple[str, str, str], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )  # (kind, namespace, name) -> when each rollout request was sent
    watch_restarts: Counter[str] = field(default_factory=Counter)  # lists after the first
    created: set[str] = field(default_factory=set)  # snapshot uids created during the run
    deleted: set[str] = field(default_factory=set)
    event_counts: dict[str, int] = field(default_factory=dict)
    denials: list[Denial] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    revision_checks: list[_RevisionCheck] = field(default_factory=list)
    suspects: list[_Suspect] = field(default_factory=list)
    missing_checks: dict[tuple[tuple[str, str, str], str, ObjectKey], float] = field(
        default_factory=dict
    )
    deletion_checks: list[tuple[Snapshot, list[Holder]]] = field(default_factory=list)
    reported: set[tuple[str, str]] = field(default_factory=set)  # (invariant, what) counted once
    revisions_checked: int = 0
    processes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    rss: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # threads of the observer that died


class Observer:
    def __init__(
        self,
        api: RawApi,
        namespaces: Sequence[str],
        *,
        lags: Lags | None = None,
        memory: MemoryBound | None = None,
        expected_denials: Mapping[str, frozenset[str]] = EXPECTED_DENIALS,
        release_settle_seconds: float = 30.0,
    ) -> None:
        self._namespaces = frozenset(namespaces)
        self._lags = lags or Lags()
        self._memory = memory or MemoryBound()
        self._expected = expected_denials
        self._settle = release_settle_seconds
        self._key = token_bytes(32)  # fingerprints mean nothing outside this run
        self._lock = threading.Lock()  # the view
        self._checking = threading.Lock()  # one pass of checks at a time
        self._state = _State()
        self._tally = Tally()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: dict[str, urllib3.BaseHTTPResponse] = {}
        self._started = time.time()
        # A connection pool of its own, one connection per watch (each holds one for its
        # whole life) and a few for lists and reads, so that the driver's requests through
        # `api` never wait for one. RawApi reads whole answers; a watch is a stream, so it
        # goes through the transport directly.
        configuration = copy.deepcopy(api._client.configuration)
        configuration.connection_pool_maxsize = len(COLLECTIONS) + 4
        self._transport = ApiClient(configuration)
        self._api = RawApi(self._transport, timeout_seconds=REQUEST_TIMEOUT_SECONDS)

    # -- the interface the driver uses ----------------------------------------------------

    def start(self) -> None:
        self._started = time.time()
        for kind, path in COLLECTIONS:
            self._spawn(f"watch-{kind}", self._follow, kind, path)
        self._spawn("checks", self._check_loop)
        self._spawn("rss", self._rss_loop)

    def record_edit(self, namespace: str, kind: str, name: str, data: Mapping[str, str]) -> None:
        """Called with each source's first content and before each edit is sent."""
        source_kind = SOURCE_KIND[kind]
        print_ = fingerprint(self._key, source_kind, {"data": dict(data)})
        with self._lock:
            self._history((namespace, source_kind, name)).record(time.time(), print_)

    def record_rollout(self, namespace: str, kind: str, name: str) -> None:
        """Optional: called just before each request that changes a workload's template
        (`kubectl set image`, `rollout restart`, `rollout undo`). Its admission comes after,
        so a pin to content replaced before then is stale, however recently."""
        with self._lock:
            self._state.requests[(kind, namespace, name)].append(time.time())

    def record_fault(self, kind: str, started: float, ended: float) -> None:
        with self._lock:
            self._state.faults.append(Fault(kind, started, ended))

    def record_denial(self, reason: str, message: str) -> None:
        """A denial the driver saw; `reason` is the API's, the kind is read from `message`."""
        kind = classify_denial(message)
        with self._lock:
            self._state.denials.append(
                Denial(time.time(), kind if kind != "other" else f"other ({reason})", "kubectl")
            )

    def track_process(self, role: str, pid: int) -> None:
        with self._lock:
            self._state.processes[role].append(pid)
            self._state.rss.setdefault(pid, [])

    def report(self, *, grace_seconds: float, sweep_interval_seconds: float) -> dict[str, Any]:
        """Every pending check now, with every fault window known, then the final ones
        (orphans, denials, memory). May be called more than once: each call starts from
        the violations counted while watching."""
        self._run_checks(time.time(), final=True)
        orphans = self._old_orphans(grace_seconds, sweep_interval_seconds)
        memory, grown = self._memory_report()
        with self._lock:
            state = self._state
            tally = copy.deepcopy(self._tally)
            reported = set(state.reported)
            faults, suspects, denials = (
                list(state.faults),
                list(state.suspects),
                list(state.denials),
            )
            snapshots = {"created": len(state.created), "deleted": len(state.deleted)}
            checked = {
                "revisions": state.revisions_checked,  # and bare Pods, for their content
                "holders": len(state.holders),
                "snapshots_seen": len(state.seen),
                "sources": len(state.sources),
                "watch_restarts": dict(sorted(state.watch_restarts.items())),
            }
            errors = list(state.errors)
        for suspect in suspects:
            problem = self._content_failure(
                suspect.holder, suspect.source_key, suspect.snapshot, faults
            )
            what = (REFERENCES, f"{suspect.holder}:{suspect.source_key}")
            if problem is not None and what not in reported:
                reported.add(what)
                tally.add(REFERENCES, problem)
        for example in orphans:
            tally.add(NO_ORPHAN, example)
        for example in uncalled_for_denials(
            denials, faults, self._expected, DENIAL_TOLERANCE_SECONDS
        ):
            tally.add(DENIALS, example)
        for example in grown:
            tally.add(MEMORY, example)
        return {
            "invariants": tally.as_dict(),
            "snapshots": snapshots,
            "denials": dict(sorted(Counter(d.reason for d in denials).items())),
            "memory": memory,
            "checked": checked,
            "observer_errors": errors,  # not empty: some invariants went unwatched
        }

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:  # unblock reads waiting on a quiet watch
            with contextlib.suppress(OSError, ValueError, RuntimeError):  # already closed
                stream.shutdown()
        # One deadline for all: a thread inside a list waits for its timeout (they are
        # daemons, so one left behind does not keep the process alive).
        deadline = time.monotonic() + 10
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._transport.close()  # type: ignore[no-untyped-call]

    # -- watches --------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except Exception as error:
                # A watch or check that died would leave its invariants silently at zero:
                # the report says so, and the exception still reaches the thread's hook.
                with self._lock:
                    self._state.errors.append(f"{name}: {type(error).__name__}")
                raise

        thread = threading.Thread(target=run, name=f"chaos-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _follow(self, kind: str, path: str) -> None:
        delay = 0.5
        first = True
        while not self._stopping.is_set():
            try:
                if not first:
                    with self._lock:
                        self._state.watch_restarts[kind] += 1
                first = False
                version = self._relist(kind, path)
                delay = 0.5
                while not self._stopping.is_set():
                    version = self._watch(kind, path, version)
            except _GoneError:
                continue
            except _NotServedError:
                log.info("%s is not served: not watched", kind)
                return
            except _CONNECTION_ERRORS as error:
                if self._stopping.is_set():
                    return
                log.info("watch of %s failed (%s), listing again", kind, type(error).__name__)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def _relist(self, kind: str, path: str) -> str:
        """List every object of `kind`, apply it, forget what vanished; the list's version."""
        objects: list[dict[str, Any]] = []
        token = ""
        while True:
            query = f"?limit={LIST_PAGE}" + (f"&continue={quote(token)}" if token else "")
            try:
                page = self._api.request("GET", path + query)
            except ApiError as error:
                if error.status == 404:
                    raise _NotServedError from None
                if error.status == 410:  # the continue token expired
                    objects, token = [], ""
                    continue
                raise
            objects += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                version = str((page.get("metadata") or {}).get("resourceVersion", ""))
                break
        now = time.time()
        listed = set()
        for obj in objects:
            obj["kind"] = kind  # list items carry no kind
            meta = obj.get("metadata") or {}
            listed.add((meta.get("namespace", ""), meta.get("name", "")))
            self._apply(kind, "ADDED", obj, now, watched=False)
        for namespace, name in self._known_names(kind) - listed:
            self._forget(kind, namespace, name, now)
        return version

    def _watch(self, kind: str, path: str, version: str) -> str:
        """Follow one watch to its end; the last resourceVersion seen."""
        query = (
            f"?watch=1&allowWatchBookmarks=true&timeoutSeconds={WATCH_SECONDS}"
            f"&resourceVersion={quote(version)}"
        )
        stream = self._open(path + query)
        with self._lock:
            self._streams[kind] = stream
        try:
            for line in iter_resp_lines(stream):  # type: ignore[no-untyped-call]
                if self._stopping.is_set():
                    break
                if not line:
                    continue
                event = _json(line)
                kind_of_event = event.get("type")
                obj = event.get("object") or {}
                if kind_of_event == "ERROR":
                    if obj.get("code") == 410:
                        raise _GoneError
                    raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or ""))
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
                    obj["kind"] = kind
                    self._apply(kind, kind_of_event, obj, time.time(), watched=True)
        finally:
            with self._lock:
                self._streams.pop(kind, None)
            stream.close()
            stream.release_conn()
        return version

    def _open(self, path: str) -> urllib3.BaseHTTPResponse:
        transport = self._transport
        params = transport.param_serialize(
            "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
        )
        response = transport.call_api(*params, _request_timeout=(5, READ_TIMEOUT_SECONDS))
        stream: urllib3.BaseHTTPResponse = response.response
        if not 200 <= response.status < 300:
            stream.close()
            stream.release_conn()
            if response.status == 410:
                raise _GoneError
            raise ApiError(response.status, response.reason or "")
        return stream

    def _known_names(self, kind: str) -> set[tuple[str, str]]:
        with self._lock:
            state = self._state
            if kind in HOLDER_KINDS:
                return {(ns, name) for k, ns, name in state.holders if k == kind}
            if kind in SOURCE_KIND:
                source_kind = SOURCE_KIND[kind]
                snapshots = {(ns, name) for ns, k, name in state.present if k == source_kind}
                return snapshots | state.source_names[kind]
        return set()

    # -- applying what was seen -----------------------------------------------------------

    def _apply(
        self, kind: str, change: str, obj: dict[str, Any], now: float, *, watched: bool
    ) -> None:
        """One object seen at `now`, through a watch event or a list."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if kind == "Event":
            if change != "DELETED":
                self._failed_create(obj, now)
            return
        if namespace not in self._namespaces:
            return
        if change == "DELETED":
            self._forget(kind, namespace, meta.get("name", ""), now)
        elif kind in HOLDER_KINDS:
            self._holder_seen(holder_record(obj, kind), now, watched)
        elif kind in SOURCE_KIND:
            self._content_seen(kind, obj, now)

    def _holder_seen(self, holder: Holder, now: float, watched: bool) -> None:
        name = (holder.kind, holder.namespace, holder.name)
        with self._lock:
            state = self._state
            previous = state.holders.get(name)
            state.holders[name] = holder
            self._index(name, previous, holder, now)
            if holder.kind in WORKLOAD_KINDS and holder.template is not None:
                self._workload_seen(holder.uid, holder.template, now, watched)
                state.workload_names[holder.uid] = name
            known = state.seen.keys()
            for missing in missing_snapshots(holder, state.present.keys(), known):
                state.missing_checks.setdefault(
                    (name, holder.uid, missing), now + CONFIRM_AFTER_SECONDS
                )
            # A revision, or a bare Pod (pinned at its own creation): its content is
            # checked once, when first seen.
            pinned_at_creation = holder.kind in REVISION_KINDS or (
                holder.kind == "Pod" and holder.owner is None
            )
            new = previous is None or previous.uid != holder.uid
            if pinned_at_creation and new and holder.pins:
                due = max(now, (holder.created or now) + 1.0 + self._lags.watch) + 1.0
                state.revision_checks.append(
                    _RevisionCheck(holder, due, due + SNAPSHOT_WAIT_SECONDS)
                )

    def _workload_seen(self, uid: str, template: str, now: float, watched: bool) -> None:
        """When each template was first seen on the workload, and when the version before
        it was (only from one watch: a list shows a version long after it was written)."""
        state = self._state
        key = (uid, template)
        if key not in state.template_seen:
            state.template_seen[key] = now
            before = state.workload_seen.get(uid)
            if watched and before is not None and before[1]:
                state.template_after[key] = before[0]
        state.workload_seen[uid] = (now, watched)

    def _index(
        self, name: tuple[str, str, str], before: Holder | None, after: Holder | None, now: float
    ) -> None:
        """Who references which snapshot, and since when a snapshot is referenced by none."""
        state = self._state
        old = {(n, k, s) for n, (k, s) in _refs(before)}
        new = {(n, k, s) for n, (k, s) in _refs(after)}
        for key in old - new:
            holders = state.referenced_by[key]
            holders.discard(name)
            if not holders:
                del state.referenced_by[key]
                state.unheld_since[key] = now
        for key in new - old:
            state.referenced_by[key].add(name)
            state.unheld_since.pop(key, None)

    def _content_seen(self, kind: str, obj: dict[str, Any], now: float) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        snapshot = snapshot_record(obj, self._key)
        with self._lock:
            state = self._state
            if snapshot is not None:
                state.present[snapshot.key] = snapshot
                state.seen[snapshot.key] = snapshot
                created = snapshot.created
                if created is not None and created >= self._started - 1.0:
                    state.created.add(snapshot.uid)
            elif is_source(obj):
                source_kind = SOURCE_KIND[kind]
                state.source_names[kind].add((namespace, name))
                print_ = fingerprint(self._key, source_kind, obj)
                self._history((namespace, source_kind, name)).observe(now, print_)

    def _forget(self, kind: str, namespace: str, name: str, now: float) -> None:
        with self._lock:
            state = self._state
            if kind in HOLDER_KINDS:
                key = (kind, namespace, name)
                holder = state.holders.pop(key, None)
                if holder is not None:
                    self._index(key, holder, None, now)
                return
            if kind not in SOURCE_KIND:
                return
            source_kind = SOURCE_KIND[kind]
            snapshot = state.present.pop((namespace, source_kind, name), None)
            if snapshot is None:
                if (namespace, name) in state.source_names[kind]:
                    state.source_names[kind].discard((namespace, name))
                    self._history((namespace, source_kind, name)).observe(now, ABSENT)
                return
            state.deleted.add(snapshot.uid)
            holding = holders_of(snapshot.key, state.holders.values())
            if holding:
                state.deletion_checks.append((snapshot, holding))
                for holder in holding:
                    hold = (holder.kind, holder.namespace, holder.name)
                    state.missing_checks.setdefault((hold, holder.uid, snapshot.key), now)

    def _history(self, key: ObjectKey) -> SourceHistory:
        return self._state.sources.setdefault(key, SourceHistory())

    def _failed_create(self, event: Mapping[str, Any], now: float) -> None:
        """FailedCreate Events: a controller's creates refused (counted as denials)."""
        involved = event.get("involvedObject") or {}
        if (
            event.get("reason") != "FailedCreate"
            or involved.get("kind") not in FAILED_CREATE_KINDS
            or involved.get("namespace") not in self._namespaces
        ):
            return
        series = event.get("series") or {}
        count = int(series.get("count") or event.get("count") or 1)
        when = _event_time(event) or now
        if when < self._started - 1.0:
            return  # before the run
        uid = (event.get("metadata") or {}).get("uid", "")
        origin = f"{involved.get('kind')} {involved.get('namespace')}/{involved.get('name')}"
        reason = classify_denial(str(event.get("message") or ""))
        with self._lock:
            state = self._state
            new = count - state.event_counts.get(uid, 0)
            state.event_counts[uid] = max(count, state.event_counts.get(uid, 0))
            state.denials += [Denial(when, reason, origin)] * max(0, new)

    # -- checks ---------------------------------------------------------------------------

    def _check_loop(self) -> None:
        last_groups = 0.0
        while not self._stopping.wait(CHECK_SECONDS):
            now = time.time()
            try:
                self._run_checks(now, final=False)
                if now - last_groups >= 5.0:
                    self._check_revisions_agree()
                    last_groups = now
            except _CONNECTION_ERRORS as error:
                log.info("checks postponed: %s", type(error).__name__)

    def _run_checks(self, now: float, *, final: bool) -> None:
        with self._checking:  # the check thread, or report()
            self._check_missing(now, final)
            self._check_deletions()
            self._check_contents(now, final)
            if final:
                self._check_revisions_agree()

    def _check_missing(self, now: float, final: bool) -> None:
        """Invariant 1: a holder references a snapshot that does not exist. Confirmed by
        reading both back: the watches of the two kinds may simply be apart. A check whose
        reads fail stays queued."""
        with self._lock:
            state = self._state
            due = [item for item, when in state.missing_checks.items() if final or when <= now]
        for item in due:
            (kind, namespace, name), uid, snapshot = item
            with self._lock:
                exists = snapshot in self._state.present
            if not exists and self._read_snapshot(snapshot) is None:
                holder = self._read_holder(kind, namespace, name, uid)
                if holder is not None and snapshot in holder.snapshots({snapshot}):
                    self._count_once(
                        REFERENCES,
                        f"{holder}->{snapshot}",
                        f"{holder} references {snapshot[1]} snapshot {snapshot[0]}/"
                        f"{snapshot[2]}, which does not exist",
                    )
            with self._lock:
                self._state.missing_checks.pop(item, None)

    def _check_deletions(self) -> None:
        """Invariant 3: a snapshot vanished while something still referenced it."""
        while True:
            with self._lock:
                if not self._state.deletion_checks:
                    return
                snapshot, holding = self._state.deletion_checks[0]
            for seen in holding:
                holder = self._read_holder(seen.kind, seen.namespace, seen.name, seen.uid)
                if holder is not None and (snapshot.kind, snapshot.name) in holder.references:
                    self._count_once(
                        NEVER_DELETED,
                        snapshot.uid,
                        f"{snapshot} was deleted while {holder} referenced it",
                    )
                    break
            with self._lock:
                self._state.deletion_checks.pop(0)

    def _check_contents(self, now: float, final: bool) -> None:
        """Invariant 1: each snapshot a new revision pins holds what its source held when
        the revision was admitted. A failure is judged again in report(), when every fault
        window is known (the driver records a fault once it has ended)."""
        with self._lock:
            state = self._state
            ready = [c for c in state.revision_checks if final or c.due <= now]
            waiting = [c for c in state.revision_checks if not (final or c.due <= now)]
            state.revision_checks = waiting
            faults = list(state.faults)
        for check in ready:
            holder = check.holder
            unresolved = False
            for source_key, snapshot_name in sorted(holder.pins.items()):
                source = pinned_source(source_key)
                if source is None:
                    continue
                with self._lock:
                    snapshot = self._state.seen.get((holder.namespace, source[0], snapshot_name))
                if snapshot is None:
                    unresolved = True
                    continue
                if self._content_failure(holder, source_key, snapshot, faults):
                    with self._lock:
                        self._state.suspects.append(_Suspect(holder, source_key, snapshot))
            with self._lock:
                if unresolved and not final and now < check.give_up:
                    check.due = now + CONFIRM_AFTER_SECONDS
                    self._state.revision_checks.append(check)
                else:
                    self._state.revisions_checked += 1

    def _content_failure(
        self, holder: Holder, source_key: str, snapshot: Snapshot, faults: Sequence[Fault]
    ) -> str | None:
        source = pinned_source(source_key)
        with self._lock:
            history = None
            if source is not None:
                history = copy.deepcopy(self._state.sources.get((holder.namespace, *source)))
            seen = after = sent = None
            if holder.owner is not None and holder.template is not None:
                state = self._state
                seen = state.template_seen.get((holder.owner, holder.template))
                after = state.template_after.get((holder.owner, holder.template))
                workload = state.workload_names.get(holder.owner)
                upper = seen if seen is not None else (holder.created or 0.0) + 1.0
                if workload is not None:
                    sent = max((t for t in state.requests[workload] if t <= upper), default=None)
        return content_violation(
            holder,
            source_key,
            snapshot,
            history,
            faults,
            self._lags,
            template_seen=seen,
            previous_seen=after,
            request_sent=sent,
        )

    def _check_revisions_agree(self) -> None:
        """Invariant 2, over the holders known now."""
        with self._lock:
            holders = list(self._state.holders.values())
            known = set(self._state.seen)
        for revision, example in revision_mismatches(holders, known):
            self._count_once(ONE_CONFIG, revision, example)

    def _old_orphans(self, grace_seconds: float, sweep_interval_seconds: float) -> list[str]:
        """Invariant 4, from fresh lists: every snapshot, then every holder."""
        snapshots: list[Snapshot] = []
        holders: list[Holder] = []
        for namespace in sorted(self._namespaces):
            for kind, path in CONTENT_COLLECTIONS:
                query = f"?labelSelector={quote(labels.SNAPSHOT_SELECTOR)}"
                for obj in self._list(_namespaced(path, namespace) + query):
                    record = snapshot_record({**obj, "kind": kind}, self._key)
                    if record is not None:
                        snapshots.append(record)
            for kind, path in HOLDER_COLLECTIONS:
                holders += [
                    holder_record(o, kind) for o in self._list(_namespaced(path, namespace))
                ]
        with self._lock:
            unheld = dict(self._state.unheld_since)
        return old_orphans(
            snapshots,
            holders,
            time.time(),
            grace_seconds,
            sweep_interval_seconds,
            unheld,
            self._settle,
        )

    def _count_once(self, invariant: str, what: str, example: str) -> None:
        with self._lock:
            if (invariant, what) in self._state.reported:
                return
            self._state.reported.add((invariant, what))
            self._tally.add(invariant, example)
        log.warning("invariant %s violated: %s", invariant, example)

    # -- reads ----------------------------------------------------------------------------

    def _list(self, path: str) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            joiner = "&" if "?" in path else "?"
            query = f"{joiner}limit={LIST_PAGE}" + (f"&continue={quote(token)}" if token else "")
            try:
                page = self._api.request("GET", path + query)
            except ApiError as error:
                if error.status == 404:
                    return  # a kind not served
                raise
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def _read_snapshot(self, key: ObjectKey) -> dict[str, Any] | None:
        namespace, kind, name = key
        path = _namespaced(PATHS[API_KIND[kind]], namespace)
        return self._api.get(f"{path}/{quote(name, safe='')}")

    def _read_holder(self, kind: str, namespace: str, name: str, uid: str) -> Holder | None:
        """The holder as the API server has it now, if it is still the same object."""
        obj = self._api.get(f"{_namespaced(PATHS[kind], namespace)}/{quote(name, safe='')}")
        if obj is None or (obj.get("metadata") or {}).get("uid") != uid:
            return None
        return holder_record(obj, kind)

    # -- memory ---------------------------------------------------------------------------

    def _rss_loop(self) -> None:
        while not self._stopping.wait(RSS_SECONDS):
            with self._lock:
                pids = [pid for pids in self._state.processes.values() for pid in pids[-1:]]
            for pid in pids:
                rss = _rss_mib(pid)
                if rss is None:
                    continue
                with self._lock:
                    samples = self._state.rss[pid]
                    samples.append((time.time(), rss))
                    if len(samples) > RSS_KEPT:
                        del samples[1::2]

    def _memory_report(self) -> tuple[dict[str, Any], list[str]]:
        """Per role, each process's verdict; and an example per process that grew."""
        with self._lock:
            processes = {role: list(pids) for role, pids in self._state.processes.items()}
            rss = {pid: list(samples) for pid, samples in self._state.rss.items()}
        report: dict[str, Any] = {}
        grown = []
        for role, pids in sorted(processes.items()):
            verdicts = [memory_verdict(pid, rss.get(pid, []), self._memory) for pid in pids]
            grown += [
                f"{role} (pid {v.pid}) grew from {v.baseline_mib:.1f} MiB to "
                f"{v.end_mib:.1f} MiB (allowed {v.allowed_growth_mib:.1f} MiB)"
                for v in verdicts
                if not v.flat
            ]
            report[role] = {
                "flat": all(v.flat for v in verdicts),
                "processes": [v.as_dict() for v in verdicts],
            }
        return report, grown


def _refs(holder: Holder | None) -> set[tuple[str, tuple[SourceKind, str]]]:
    if holder is None:
        return set()
    return {(holder.namespace, ref) for ref in holder.references}


def _namespaced(path: str, namespace: str) -> str:
    prefix, resource = path.rsplit("/", 1)
    return f"{prefix}/namespaces/{quote(namespace, safe='')}/{resource}"


def _json(line: str) -> dict[str, Any]:
    value = json.loads(line)
    return value if isinstance(value, dict) else {}


def _event_time(event: Mapping[str, Any]) -> float | None:
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed.timestamp()
    return None


def _rss_mib(pid: int) -> float | None:
    """The resident set of a process, from /proc/PID/status (VmRSS, in kB)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None  # gone
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None
