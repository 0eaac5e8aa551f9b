"""Roll on change: which workloads to roll, and when. Pure decisions; the controller
(app/controller/rollonchange.py) lists, reads and writes.

A workload opted in (`configpin.io/rollout-on-change: "true"` on it or its namespace) is
rolled as `kubectl rollout restart` does (the `kubectl.kubernetes.io/restartedAt` template
annotation) when a source it uses has content it has not been rolled for yet. What it was
rolled for is remembered on the workload itself, in the annotation `configpin.io/rolled-for`,
written in the same update as `restartedAt`: `{"n": 3, "sources": {"secret/db": "<digest>"}}`
(`""` for a required source that was missing). The current content is compared against that
record, never against the template's pins, so a rollback (`kubectl rollout undo`, `kubectl
argo rollouts undo`) stays on its old snapshots until a source changes again.

`kubectl rollout undo` of a Deployment writes the annotations of the ReplicaSet it goes back
to over the Deployment's: the webhook keeps the newer record in that update (`kept_record`),
so the record outlives the ReplicaSets that `revisionHistoryLimit` prunes. (The undo of a
Rollout, StatefulSet or DaemonSet writes the template only.) The deployment controller copies
a Deployment's annotations to its ReplicaSets, so the record with the highest `n` among the
workload and its ReplicaSets is the one in force, and one found only on a ReplicaSet (an undo
the webhook did not see) is written back onto the workload. A workload with no record anywhere
is compared against its pins, and its first record is written then (adopted), so a later undo
finds it. A template that already pins a source's current content is never rolled for it; its
record is brought up to date.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain import labels, scope
from app.domain.naming import DIGEST_LENGTH
from app.domain.pinning import parse_pins, snapshot_sources
from app.domain.pointer import unescape
from app.domain.references import find_references
from app.domain.workloads import WorkloadKind, template_of

ROLLOUT_ON_CHANGE = "configpin.io/rollout-on-change"
ROLLED_FOR = "configpin.io/rolled-for"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

MISSING = ""  # the digest recorded for a required source that did not exist

# "secret/db" -> digest of its content (MISSING when absent)
Digests = dict[str, str]


@dataclass(frozen=True)
class Record:
    """What a workload was last rolled for (or adopted with)."""

    n: int
    sources: Mapping[str, str]

    def encode(self) -> str:
        return json.dumps(
            {"n": self.n, "sources": dict(sorted(self.sources.items()))}, separators=(",", ":")
        )


def rollable(kinds: Iterable[WorkloadKind]) -> list[WorkloadKind]:
    """The kinds of the workload table a rollout applies to: a pod template in the object,
    pinned again when it changes (Deployments, StatefulSets, DaemonSets, Rollouts...)."""
    return [
        k
        for k in kinds
        if "UPDATE" in k.operations
        and not k.is_pod
        # A Job's template cannot change; a bare ReplicaSet does not replace its Pods when
        # its template does.
        and not k.template_immutable
        and not k.unless_controlled
    ]


def _annotations(metadata: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (metadata or {}).get("annotations") or {}


def _is_true(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower() == "true"


def opted_in(
    workload_metadata: Mapping[str, Any] | None, namespace_metadata: Mapping[str, Any] | None
) -> bool:
    """The workload's own annotation wins ("false" opts one workload out of its namespace's
    opt-in); otherwise the namespace's."""
    own = _annotations(workload_metadata).get(ROLLOUT_ON_CHANGE)
    if isinstance(own, str):
        return _is_true(own)
    return _is_true(_annotations(namespace_metadata).get(ROLLOUT_ON_CHANGE))


def parse_record(metadata: Mapping[str, Any] | None) -> Record | None:
    """The record on an object's metadata; an unreadable one counts as none."""
    raw = _annotations(metadata).get(ROLLED_FOR)
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    n, sources = value.get("n"), value.get("sources")
    if not isinstance(n, int) or isinstance(n, bool) or not isinstance(sources, dict):
        return None
    return Record(
        n, {k: v for k, v in sources.items() if isinstance(k, str) and isinstance(v, str)}
    )


def kept_record(kind: WorkloadKind, old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The record an update must keep: the old object's, when the update changes the pod
    template (as an undo does) and brings an older record or none. An update that leaves the
    template alone is let through as written."""
    kept = parse_record(old.get("metadata"))
    if kept is None or template_of(kind, old) == template_of(kind, new):
        return None
    brought = parse_record(new.get("metadata"))
    if brought is not None and brought.n >= kept.n:
        return None
    raw: str = _annotations(old.get("metadata"))[ROLLED_FOR]
    return raw


def newest_record(records: Iterable[Record | None]) -> Record | None:
    found = [r for r in records if r is not None]
    return max(found, key=lambda r: r.n) if found else None


def pinned_digest(snapshot_name: str) -> str:
    """A snapshot is named `<source>-<digest>`."""
    return snapshot_name[-DIGEST_LENGTH:]


def tracked_sources(
    workload_metadata: Mapping[str, Any] | None, template: Mapping[str, Any]
) -> Digests:
    """The sources a template depends on: each pinned one with the digest it was pinned to,
    each required live one with MISSING (the webhook leaves a reference live when its source
    is missing; one that exists and is live by the source's own opt-out is dropped by the
    caller, which reads the source). References live by default or by the workload's
    `configpin.io/live` list are not tracked: their changes reach the Pods without a rollout."""
    template_metadata = template.get("metadata")
    pins = parse_pins(template_metadata)
    # Keys read as the webhook reads them: a source that is not an object name is no pin.
    snapshots = {
        (kind, name): f"{kind}/{source}" for (kind, name), source in snapshot_sources(pins).items()
    }
    live = scope.live_references(workload_metadata, template_metadata)
    tracked: Digests = {}
    for ref in find_references(template.get("spec") or {}, "/spec"):
        if ref.live_by_default or not labels.is_object_name(ref.name):
            continue
        pinned_as = snapshots.get((ref.kind, ref.name))
        if pinned_as is not None:
            tracked[pinned_as] = pinned_digest(ref.name)
            continue
        key = f"{ref.kind}/{ref.name}"
        if key not in live and not ref.optional:
            tracked.setdefault(key, MISSING)
    return tracked


def baseline(key: str, tracked: Digests, record: Record | None) -> str:
    """What the workload was rolled for: its record's digest, else the digest it pinned."""
    return record.sources[key] if record and key in record.sources else tracked[key]


def changed_sources(tracked: Digests, record: Record | None, current: Digests) -> list[str]:
    """The tracked sources whose current content the workload has not been rolled for.

    `current` holds a digest for each tracked source that exists and may be pinned, MISSING
    for one that does not exist, and nothing for one that stays live (its own opt-out). A
    source that disappears starts nothing: a rollout could not pin it."""
    changed = []
    for key in tracked:
        now = current.get(key)
        # A template that already pins the current content (someone else's rollout, an
        # image change after the edit) needs no rollout: only its record is behind.
        if now and now != baseline(key, tracked, record) and now != tracked[key]:
            changed.append(key)
    return sorted(changed)


def record_behind(tracked: Digests, record: Record | None, current: Digests) -> bool:
    """With no change to roll for: whether the record should be written (there is none
    yet, or the template was rolled to current content by someone else)."""
    if record is None:
        return True
    return any(current.get(key) and record.sources.get(key) != current[key] for key in tracked)


def next_record(tracked: Digests, record: Record | None, current: Digests) -> Record:
    """The record written with a rollout (or an adoption): the current content of every
    tracked source, numbered after the newest record."""
    sources = {key: current.get(key, pinned) for key, pinned in tracked.items()}
    return Record((record.n + 1) if record else 1, sources)


def roll_patch(
    kind: WorkloadKind, resource_version: str, record: Record, restarted_at: str | None
) -> dict[str, Any]:
    """A merge patch: the record, and (for a rollout) `restartedAt` in the template, as
    `kubectl rollout restart` writes it. The resourceVersion makes it conditional: a
    workload changed since it was read (another writer, an undo) is read again first."""
    patch: dict[str, Any] = {
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": {ROLLED_FOR: record.encode()},
        }
    }
    if restarted_at is not None:
        node: dict[str, Any] = {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}
        for segment in reversed(kind.template.split("/")[1:]):
            node = {unescape(segment): node}
        patch |= node
    return patch


def describe_change(changed: Iterable[str], appeared: Iterable[str]) -> str:
    """The Event's message: names of sources only, never content."""
    came = set(appeared)
    parts = [
        f"{key.replace('/', ' ')} {'appeared' if key in came else 'changed'}" for key in changed
    ]
    return (
        ", ".join(parts)
        + ": rolling out a new revision pinned to the new content (configpin.io/rollout-on-change)"
    )


@dataclass
class _Pending:
    first_seen: float
    last_change: float
    signature: tuple[tuple[str, str], ...]


@dataclass
class Debouncer:
    """Edits within `quiet` seconds of each other become one rollout; a source edited
    without pause still rolls after `longest` seconds."""

    quiet: float
    longest: float
    _pending: dict[str, _Pending] = field(default_factory=dict)

    def ready(self, uid: str, signature: tuple[tuple[str, str], ...], now: float) -> bool:
        pending = self._pending.get(uid)
        if pending is None:
            self._pending[uid] = pending = _Pending(now, now, signature)
        elif pending.signature != signature:
            pending.signature, pending.last_change = signature, now
        return now - pending.last_change >= self.quiet or now - pending.first_seen >= self.longest

    def forget(self, uid: str) -> None:
        self._pending.pop(uid, None)

    def keep_only(self, uids: Iterable[str]) -> None:
        """Drop what is pending for workloads that are gone."""
        alive = set(uids)
        for uid in [u for u in self._pending if u not in alive]:
            del self._pending[uid]


@dataclass
class RateLimit:
    """At most `count` rollouts per namespace in any `window` seconds."""

    count: int
    window: float
    _started: dict[str, list[float]] = field(default_factory=dict)

    def allow(self, namespace: str, now: float) -> bool:
        recent = [t for t in self._started.get(namespace, []) if now - t < self.window]
        if len(recent) >= self.count:
            self._started[namespace] = recent
            return False
        self._started[namespace] = [*recent, now]
        return True
