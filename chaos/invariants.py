"""The invariants of the chaos test, as plain functions over plain data.

The observer (chaos/observer.py) turns what it watches into the small records below and asks
these functions which violations there are. Nothing here talks to a server, so every rule is
tested on its own (tests/test_chaos_invariants.py).

The six invariants:

1. every Pod, ReplicaSet and ControllerRevision references only snapshots that exist while it
   exists, and each snapshot a revision pins holds a content its source had when that
   revision was admitted (`content_violation` says what "when" means);
2. within one revision, all Pods (and the revision's own template) pin the same snapshots;
3. no snapshot that something references is ever deleted (gone, not merely asked to go: a
   `deletionTimestamp` under the in-use finalizer is a request);
4. at the end, no orphan older than the grace period plus one sweep interval;
5. every admission denial is one the settings call for, given the fault being injected;
6. the memory of every configpin process is flat across the run.

No Secret value is kept: contents are reduced to a keyed fingerprint (`fingerprint`) under a
key drawn at random for the run, and examples name objects only.
"""

import hashlib
import hmac
import json
import statistics
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.domain.lifecycle import is_ours, referenced_names
from app.domain.pinning import parse_pins, without_empty_fields
from app.domain.references import SourceKind
from app.domain.snapshots import SOURCE_KIND, is_snapshot, source_name_of
from app.domain.timestamps import parse_time

INVARIANTS = (
    "1-references-exist-and-content-matches",
    "2-one-revision-one-config",
    "3-referenced-snapshot-never-deleted",
    "4-no-old-orphan",
    "5-denials-called-for",
    "6-memory-flat",
)
REFERENCES, ONE_CONFIG, NEVER_DELETED, NO_ORPHAN, DENIALS, MEMORY = INVARIANTS

EXAMPLES_KEPT = 10  # per invariant: the count says how many, a few names say which

# (namespace, kind, name) of a ConfigMap or Secret, source or snapshot.
ObjectKey = tuple[str, SourceKind, str]


class Tally:
    """Violations per invariant: a count, and the first few examples (object names only)."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(INVARIANTS, 0)
        self.examples: dict[str, list[str]] = {name: [] for name in INVARIANTS}

    def add(self, invariant: str, example: str) -> None:
        self.counts[invariant] += 1
        if len(self.examples[invariant]) < EXAMPLES_KEPT:
            self.examples[invariant].append(example)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"violations": self.counts[name], "examples": list(self.examples[name])}
            for name in INVARIANTS
        }


# -- contents ------------------------------------------------------------------------------

ABSENT = "absent"  # the fingerprint of a source that does not exist (deleted)


def fingerprint(key: bytes, kind: SourceKind, content: Mapping[str, Any]) -> str:
    """A keyed digest of what a snapshot copies from its source: `data`, `binaryData` and,
    for a Secret, `type` (an Opaque Secret's type may be left out: it is its default)."""
    fields = {
        "type": (content.get("type") or "Opaque") if kind == "secret" else "",
        "data": content.get("data") or {},
        "binaryData": content.get("binaryData") or {},
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()[:32]


# -- what the observer keeps of each object ------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    namespace: str
    kind: SourceKind
    name: str
    uid: str
    source: str | None  # the source it says it copies (configpin.io/source-name)
    fingerprint: str
    created: float | None
    deletion_asked: float | None  # deletionTimestamp: the in-use finalizer may hold it
    owned: bool  # has ownerReferences

    @property
    def key(self) -> ObjectKey:
        return (self.namespace, self.kind, self.name)

    def __str__(self) -> str:
        return f"{self.kind} snapshot {self.namespace}/{self.name}"


def snapshot_record(obj: Mapping[str, Any], key: bytes) -> Snapshot | None:
    """The record of a snapshot made by configpin; None for anything else."""
    if obj.get("kind") not in SOURCE_KIND or not is_ours(obj):
        return None
    kind = SOURCE_KIND[obj["kind"]]
    meta = obj.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    deleted = parse_time(meta.get("deletionTimestamp"))
    return Snapshot(
        namespace=meta.get("namespace", ""),
        kind=kind,
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        source=source_name_of(obj),
        fingerprint=fingerprint(key, kind, obj),
        created=created.timestamp() if created else None,
        deletion_asked=deleted.timestamp() if deleted else None,
        owned=bool(meta.get("ownerReferences")),
    )


def is_source(obj: Mapping[str, Any]) -> bool:
    """A ConfigMap or Secret users edit: anything of those kinds that is not a snapshot."""
    return obj.get("kind") in SOURCE_KIND and not is_snapshot(obj)


# Kinds whose objects are revisions: a template frozen at creation, pinned at admission.
REVISION_KINDS = frozenset({"ReplicaSet", "ControllerRevision"})
# Pod labels naming the revision a Pod was made from.
POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"


@dataclass(frozen=True)
class Holder:
    """An object that may run with snapshots: a Pod, a revision, or a workload template."""

    kind: str
    namespace: str
    name: str
    uid: str
    created: float | None
    revision: str | None  # "ReplicaSet/NAME" or "ControllerRevision/NAME": its revision
    pins: Mapping[str, str]  # "configmap/app-config" -> snapshot name
    references: frozenset[tuple[SourceKind, str]]  # every ConfigMap/Secret it names
    owner: str | None = None  # the uid of its controller
    template: str | None = None  # template_key of its pod template (workloads, revisions)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def snapshots(self, known: Collection[ObjectKey] = ()) -> frozenset[ObjectKey]:
        """The snapshots it references: the names its pins annotation gives, and any other
        reference to a name known to be a snapshot."""
        pinned = set(self.pins.values())
        return frozenset(
            (self.namespace, kind, name)
            for kind, name in self.references
            if name in pinned or (self.namespace, kind, name) in known
        )


def template_metadata(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The metadata of the pod template an object carries (a Pod's own metadata)."""
    if kind == "Pod":
        return obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    if kind == "ControllerRevision":
        spec = (obj.get("data") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("metadata")) or {}


def revision_of(obj: Mapping[str, Any], kind: str) -> str | None:
    """The revision an object is (ReplicaSet, ControllerRevision) or was made from (Pod)."""
    meta = obj.get("metadata") or {}
    if kind in REVISION_KINDS:
        return f"{kind}/{meta.get('name', '')}"
    if kind != "Pod":
        return None
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner is None:
        return None
    if owner.get("kind") == "ReplicaSet":
        return f"ReplicaSet/{owner.get('name', '')}"
    revision_hash = (meta.get("labels") or {}).get(CONTROLLER_REVISION_HASH)
    if not revision_hash:
        return None
    # A StatefulSet's Pods carry the revision's full name, a DaemonSet's its hash alone.
    prefix = f"{owner.get('name', '')}-"
    name = revision_hash if revision_hash.startswith(prefix) else prefix + revision_hash
    return f"ControllerRevision/{name}"


# Labels a controller adds to the template it copies into a revision.
_REVISION_LABELS = ("pod-template-hash", "rollouts-pod-template-hash")


def template_key(obj: Mapping[str, Any], kind: str) -> str | None:
    """The same digest for a workload's pod template and for the revision made from it:
    less the hash label the controller adds, the `$patch` a ControllerRevision carries, and
    empty fields (a template serialised from Go structs has `creationTimestamp: null`)."""
    if kind == "Pod":
        return None
    spec = obj.get("spec") or {}
    if kind == "ControllerRevision":
        spec = (obj.get("data") or {}).get("spec") or {}
    template = spec.get("template")
    if not isinstance(template, Mapping):
        return None
    template = {k: v for k, v in template.items() if k != "$patch"}
    metadata = dict(template.get("metadata") or {})
    metadata["labels"] = {
        k: v for k, v in (metadata.get("labels") or {}).items() if k not in _REVISION_LABELS
    }
    canonical = json.dumps(
        without_empty_fields({**template, "metadata": metadata}),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def holder_record(obj: Mapping[str, Any], kind: str) -> Holder:
    meta = obj.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    return Holder(
        kind=kind,
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        created=created.timestamp() if created else None,
        revision=revision_of(obj, kind),
        pins=parse_pins(template_metadata(obj, kind)),
        references=frozenset(referenced_names(obj)),
        owner=owner.get("uid") if owner else None,
        template=template_key(obj, kind),
    )


# -- invariant 1: what a revision pins is what its source held when it was admitted ---------


@dataclass(frozen=True)
class Fault:
    kind: str  # webhook-kill, controller-kill, apiserver-restart, etcd-pause, snapshot-burst
    started: float
    ended: float


@dataclass
class SourceHistory:
    """What a source held over time: observations from the watch (the content was current
    at the moment seen) and the driver's records, made just before each write is sent."""

    observed: list[tuple[float, str]] = field(default_factory=list)  # (time seen, fingerprint)
    recorded: list[tuple[float, str]] = field(default_factory=list)  # (time recorded, fp)

    def observe(self, when: float, print_: str) -> None:
        if not self.observed or self.observed[-1][1] != print_:
            self.observed.append((when, print_))

    def record(self, when: float, print_: str) -> None:
        self.recorded.append((when, print_))

    def earliest(self) -> float | None:
        times = [t for t, _ in self.observed[:1]] + [t for t, _ in self.recorded[:1]]
        return min(times) if times else None


@dataclass(frozen=True)
class Lags:
    """How far the evidence may be from the truth, in seconds."""

    watch: float = 2.0  # a write reaches the watch within this (a loaded 2-core machine)
    write: float = 10.0  # a recorded edit lands within this after its record, if at all
    # An admission happens before its object is written, at most the webhook's timeout
    # (10 s); the written template reaches the watch within `watch`, and a revision is
    # made from it within a few seconds (the deployment / statefulset controller's
    # reaction), which only matters when the observer missed the template. Faults
    # stretch it.
    admission: float = 15.0
    # A workload's version reaches the watch within this (the bound from its previous
    # version, where a late lower bound would cry stale for nothing).
    previous: float = 5.0


def admission_start(upper: float, span: float, faults: Iterable[Fault]) -> float:
    """The moment `span` seconds of fault-free time before `upper`: time spent in a fault
    does not count (an etcd pause holds the write, an API server restart holds the
    controllers)."""
    merged: list[list[float]] = []
    for fault in sorted(faults, key=lambda f: f.started):
        if merged and fault.started <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], fault.ended)
        else:
            merged.append([fault.started, fault.ended])
    moment, remaining = upper, span
    for started, ended in reversed(merged):
        if started >= moment:
            continue
        free = moment - min(ended, moment)
        if free >= remaining:
            break
        remaining -= free
        moment = started
    return moment - remaining


def content_intervals(history: SourceHistory, lags: Lags) -> list[tuple[float, float, str]]:
    """(from, to, fingerprint): the times during which the source may have held each
    content. An observation at `o` of content C, followed by an observation of another
    content at `o'`, means C was written at most `watch` before `o` and replaced before
    `o'`. A record at `r` means the content may have been written from `r` on, within
    `write` (the watch, when it sees it, tells the rest)."""
    intervals = []
    observed = history.observed
    for index, (seen, print_) in enumerate(observed):
        until = observed[index + 1][0] if index + 1 < len(observed) else float("inf")
        intervals.append((seen - lags.watch, until, print_))
    intervals += [(when, when + lags.write, print_) for when, print_ in history.recorded]
    return intervals


def pinned_source(source_key: str) -> tuple[SourceKind, str] | None:
    """("configmap", "app-config") from a pins key "configmap/app-config"."""
    kind, _, name = source_key.partition("/")
    if kind == "configmap":
        return "configmap", name
    if kind == "secret":
        return "secret", name
    return None


def content_violation(
    revision: Holder,
    source_key: str,
    snapshot: Snapshot,
    history: SourceHistory | None,
    faults: Sequence[Fault],
    lags: Lags,
    template_seen: float | None = None,
    previous_seen: float | None = None,
    request_sent: float | None = None,
) -> str | None:
    """Why the snapshot `revision` pins for `source_key` is not a content its source held
    when the revision was admitted; None when it is, or when that cannot be judged.

    "When admitted": the admission that pinned the revision's template came before the
    template was written, so before both the moment the observer first saw that template
    on the workload (`template_seen`) and the revision's `creationTimestamp` (whole
    seconds, so one second is added); and it came at most `lags.admission` before that,
    more when a fault overlapped. It also came after the workload's version before that
    template was written: the API server runs the admission of an update on the object
    it read, and writes only if that is still the latest. When the observer's watch saw
    that version (at `previous_seen`, so written at most `lags.previous` before), the
    window starts there, unless a fault may have held the watch back. When the driver
    said when it sent the request that made the template (`request_sent`, the latest
    before the template was seen, within the admission window), the admission came after
    it: so a read from a stale cache is caught however fresh. The content
    must be one the source held at some moment of that window: never one it held only
    before (a stale read), only after (impossible unless a snapshot was replaced), or
    never (a wrong copy, or a snapshot of another source)."""
    kind, _, source = source_key.partition("/")
    if kind != snapshot.kind or (snapshot.source is not None and snapshot.source != source):
        return (
            f"{revision} pins {snapshot} for {kind} {revision.namespace}/{source}, "
            f"but the snapshot is of {snapshot.kind} {snapshot.source}"
        )
    if revision.created is None or history is None:
        return None
    upper = revision.created + 1.0
    if template_seen is not None:
        upper = min(upper, template_seen)
    earliest = history.earliest()
    if earliest is None or earliest > upper:
        return None  # the source was first seen after the revision: nothing to judge with
    lower = admission_start(upper, lags.admission, faults)
    if previous_seen is not None and previous_seen <= upper:
        after = previous_seen - lags.previous
        if not any(f.started < upper and f.ended > after for f in faults):
            lower = max(lower, after)
    if request_sent is not None and upper - lags.admission <= request_sent <= upper:
        lower = max(lower, request_sent)
    spans = [(a, b) for a, b, p in content_intervals(history, lags) if p == snapshot.fingerprint]
    where = f"{revision} pins {snapshot} of {kind} {revision.namespace}/{source}"
    if not spans:
        return f"{where}: a content the source never held"
    if any(a <= upper and b >= lower for a, b in spans):
        return None
    if all(a > upper for a, _ in spans):
        return f"{where}: a content the source only got after the revision was created"
    return (
        f"{where}: a content the source no longer held when the revision was admitted "
        f"(replaced before its admission could start, {upper - lower:.0f}s or less before "
        "its template was written)"
    )


def missing_snapshots(
    holder: Holder, present: Collection[ObjectKey], known: Collection[ObjectKey]
) -> list[ObjectKey]:
    """The snapshots `holder` references that do not exist now."""
    return sorted(key for key in holder.snapshots(known) if key not in present)


# -- invariant 2: one revision, one config -------------------------------------------------


def revision_mismatches(
    holders: Iterable[Holder], known: Collection[ObjectKey]
) -> list[tuple[str, str]]:
    """(revision, example) for each revision whose Pods (or whose own template) do not all
    pin the same snapshots. Pods never change what they reference, so any difference is
    real, whenever it is seen."""
    groups: dict[tuple[str, str], dict[frozenset[ObjectKey], Holder]] = {}
    for holder in holders:
        if holder.revision is None:
            continue
        variants = groups.setdefault((holder.namespace, holder.revision), {})
        variants.setdefault(holder.snapshots(known), holder)
    found = []
    for (namespace, revision), variants in sorted(groups.items()):
        if len(variants) > 1:
            (one, a), (other, b), *_ = sorted(variants.items(), key=lambda kv: str(kv[1]))
            found.append(
                (
                    f"{namespace}/{revision}",
                    f"{revision} in {namespace}: {a} pins {_names(one)} "
                    f"but {b} pins {_names(other)}",
                )
            )
    return found


def _names(keys: Iterable[ObjectKey]) -> str:
    return "{" + ", ".join(f"{kind}/{name}" for _, kind, name in sorted(keys)) + "}"


# -- invariant 3: a referenced snapshot is never deleted -----------------------------------


def holders_of(snapshot: ObjectKey, holders: Iterable[Holder]) -> list[Holder]:
    """The holders referencing `snapshot`, by name (what the kubelet would look up)."""
    namespace, kind, name = snapshot
    return sorted(
        (h for h in holders if h.namespace == namespace and (kind, name) in h.references),
        key=str,
    )


# -- invariant 4: no old orphan ------------------------------------------------------------


def old_orphans(
    snapshots: Iterable[Snapshot],
    holders: Iterable[Holder],
    now: float,
    grace_seconds: float,
    sweep_interval_seconds: float,
    unheld_since: Mapping[ObjectKey, float],
    settle_seconds: float = 30.0,
) -> list[str]:
    """Snapshots nothing references that should have been gone by `now`.

    An orphan (docs/semantics.md, Lifecycle) is a snapshot of configpin's that no Pod,
    revision or workload template references. The sweeper deletes one once it is older than
    the grace period, at its next pass; the garbage collector deletes an owned one after its
    last owner. So one that became unreferenced at `u` is late once
    `now > max(created + grace, u) + sweep interval`. `unheld_since` gives `u` where the
    observer saw the last reference go; otherwise the snapshot was never referenced (`u` is
    its creation). One whose deletion was asked is released by the lifecycle controller
    once `settle_seconds` have passed since (CONFIGPIN_RELEASE_SETTLE_SECONDS), at its next
    pass."""
    held = {(h.namespace, kind, name) for h in holders for kind, name in h.references}
    late = []
    for snapshot in snapshots:
        if snapshot.key in held or snapshot.created is None:
            continue
        since = max(snapshot.created + grace_seconds, unheld_since.get(snapshot.key, 0.0))
        if snapshot.deletion_asked is not None:
            since = max(since, snapshot.deletion_asked + settle_seconds)
        overdue = now - since - sweep_interval_seconds
        if overdue > 0:
            late.append(
                f"{snapshot} referenced by nothing, {overdue:.0f}s past grace period "
                f"plus one sweep interval"
                + (" (being deleted)" if snapshot.deletion_asked is not None else "")
                + (" (owned)" if snapshot.owned else "")
            )
    return sorted(late)


# -- invariant 5: denials the settings call for --------------------------------------------

# What configpin's settings say about each fault (the chaos harness's settings: failurePolicy
# Fail for workload templates, Ignore for Pods, CONFIGPIN_DEPLOYMENT_FAILURE=deny,
# CONFIGPIN_MISSING_SOURCE=warn): which kinds of denial a fault may cause.
# - webhook-kill: the API server may call the replica being killed (connection refused, or
#   a review cut off), and failurePolicy Fail refuses the workload's write.
# - apiserver-restart: the webhook's reads of sources fail (configpin denies, fail closed);
#   the API server itself may answer that it is unavailable.
# - etcd-pause: reads of sources time out (configpin denies); the API server times out.
#   The webhook still answers within its timeout (review deadline 5 s plus one 3 s API
#   timeout), so an unreachable webhook is NOT called for.
# - controller-kill, snapshot-burst: nothing on the admission path fails: no denial.
EXPECTED_DENIALS: Mapping[str, frozenset[str]] = {
    "webhook-kill": frozenset({"webhook-unreachable"}),
    "apiserver-restart": frozenset({"webhook-unreachable", "api-failure", "api-unavailable"}),
    "etcd-pause": frozenset({"api-failure", "api-unavailable"}),
    "controller-kill": frozenset(),
    "snapshot-burst": frozenset(),
}


def classify_denial(message: str) -> str:
    """The kind of a refused request, from the message the client was shown."""
    if "failed calling webhook" in message or "failed to call webhook" in message:
        return "webhook-unreachable"
    if "configpin failed (internal error)" in message:
        return "internal-error"
    if "configpin could not" in message:
        return "api-failure"  # a source read or snapshot create failed: fail closed
    if "more than the limit of" in message and "CONFIGPIN_MAX_SOURCES" in message:
        return "too-many-sources"
    if "configpin:" in message and "denied the request" in message:
        return "missing-source"
    unavailable = (
        "the server was unable to return a response",
        "the server is currently unable to handle the request",
        "etcdserver",
        "Timeout: request did not complete",
        "context deadline exceeded",
        "connection refused",
        "ServiceUnavailable",
    )
    if any(text in message for text in unavailable):
        return "api-unavailable"
    return "other"


@dataclass(frozen=True)
class Denial:
    when: float
    reason: str  # classify_denial's
    origin: str  # what saw it: "kubectl", or the Event's object ("ReplicaSet ns/name")


def uncalled_for_denials(
    denials: Iterable[Denial],
    faults: Sequence[Fault],
    expected: Mapping[str, Collection[str]],
    tolerance_seconds: float,
) -> list[str]:
    """Denials no fault window explains. A denial is seen up to `tolerance_seconds` after
    its window (the request's own timeouts: it was sent during the fault)."""
    found = []
    for denial in denials:
        if not any(
            f.started - 1.0 <= denial.when <= f.ended + tolerance_seconds
            and denial.reason in expected.get(f.kind, ())
            for f in faults
        ):
            at = time.strftime("%H:%M:%S", time.gmtime(denial.when))
            found.append(f"{denial.reason} denial seen by {denial.origin} at {at} UTC")
    return found


# -- invariant 6: flat memory --------------------------------------------------------------


@dataclass(frozen=True)
class MemoryBound:
    """When the memory of a process is flat.

    Measured (README, make bench): `configpin serve` holds 77 MiB after its first load and
    the same after 5 minutes of steady load (1.00x); the lifecycle controller's peak stays
    within 124 MiB over 20,000 snapshots. A leak proportional to the work (thousands of
    reviews and passes in a run) grows without bound; a flat process moves by allocator
    noise (a new glibc arena under a burst of threads: a few MiB). So: after a warm-up,
    the RSS at the end (median of the last quarter of samples) may exceed the RSS after the
    warm-up (median of the first quarter) by at most `ratio` of it or `floor_mib`, whichever
    is larger."""

    warmup_seconds: float = 60.0  # imports, first connections, caches filling
    ratio: float = 0.10
    floor_mib: float = 8.0
    min_samples: int = 8  # fewer after the warm-up: the process lived too short to judge


@dataclass(frozen=True)
class MemoryVerdict:
    pid: int
    samples: int
    judged: bool
    baseline_mib: float
    end_mib: float
    peak_mib: float
    allowed_growth_mib: float

    @property
    def flat(self) -> bool:
        return not self.judged or self.end_mib - self.baseline_mib <= self.allowed_growth_mib

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "samples": self.samples,
            "judged": self.judged,
            "baseline_mib": round(self.baseline_mib, 1),
            "end_mib": round(self.end_mib, 1),
            "peak_mib": round(self.peak_mib, 1),
            "growth_mib": round(self.end_mib - self.baseline_mib, 1),
            "allowed_growth_mib": round(self.allowed_growth_mib, 1),
            "flat": self.flat,
        }


def memory_verdict(
    pid: int, samples: Sequence[tuple[float, float]], bound: MemoryBound
) -> MemoryVerdict:
    """`samples`: (time, RSS in MiB) of one process, oldest first."""
    if not samples:
        return MemoryVerdict(pid, 0, False, 0.0, 0.0, 0.0, 0.0)
    start = samples[0][0] + bound.warmup_seconds
    warm = [rss for when, rss in samples if when >= start]
    peak = max(rss for _, rss in samples)
    if len(warm) < bound.min_samples:
        last = samples[-1][1]
        return MemoryVerdict(pid, len(samples), False, last, last, peak, 0.0)
    quarter = max(1, len(warm) // 4)
    baseline = statistics.median(warm[:quarter])
    end = statistics.median(warm[-quarter:])
    allowed = max(baseline * bound.ratio, bound.floor_mib)
    return MemoryVerdict(pid, len(samples), True, baseline, end, peak, allowed)
