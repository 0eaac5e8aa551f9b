"""The pinning sequence for one object: scope -> references -> sources -> snapshots -> patch.

The only I/O goes through `Sources`, so the same sequence serves the webhook and the
offline `render` command.
"""

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NamedTuple

from app.admission.sources import Sources, SourceUnavailableError
from app.domain import labels, scope
from app.domain.messages import listed
from app.domain.pinning import (
    Pins,
    annotation_operations,
    encode_pins,
    parse_pins,
    patch_operations,
    snapshot_sources,
    unpinned_template,
    without_empty_fields,
)
from app.domain.pointer import resolve
from app.domain.references import Reference, SourceKind, find_references
from app.domain.rollonchange import ROLLED_FOR, kept_record
from app.domain.selectors import label_selector
from app.domain.snapshots import SOURCE_KIND, build_snapshot, source_name_of, verified_source
from app.domain.workloads import Rollbacks, WorkloadKind, Workloads, controller_of, template_of


class OnFailure(StrEnum):
    DENY = "deny"
    ALLOW = "allow"


class OnMissing(StrEnum):
    WARN = "warn"
    DENY = "deny"


@dataclass(frozen=True)
class Policy:
    key: bytes
    own_namespace: str | None = None
    deployment_failure: OnFailure = OnFailure.DENY
    pod_failure: OnFailure = OnFailure.ALLOW
    missing_source: OnMissing = OnMissing.WARN
    check_namespace_label: bool = True
    # `configmap/NAME` or `secret/NAME` keys that stay live everywhere (platform data).
    live_sources: frozenset[str] = scope.LIVE_SOURCE_NAMES
    max_sources: int = 100  # distinct sources one review may read
    # One deadline for the whole review, inside the webhook's timeout: no API call (and so
    # no snapshot) starts after it.
    review_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic
    kinds: Workloads = field(default_factory=Workloads)

    def on_failure(self, kind: WorkloadKind) -> OnFailure:
        """Workload templates follow `deployment_failure` (an apply can be retried), Pods
        `pod_failure`."""
        return self.pod_failure if kind.is_pod else self.deployment_failure


class PinRequest(NamedTuple):  # made on every review: cheaper than a frozen dataclass
    kind: WorkloadKind
    operation: str
    namespace: str
    obj: Mapping[str, Any]
    old: Mapping[str, Any] | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Outcome:
    result: str  # for metrics: pinned, unchanged, skipped, missing-source, failed-open, denied
    allowed: bool = True
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    denial: str | None = None
    event: str | None = None  # a Warning Event to record on the object
    event_reason: str = "PinningFailed"
    created: int = 0
    reused: int = 0
    missing: tuple[str, ...] = ()  # "secret ns/name" of required sources that do not exist
    unpinned: int = 0  # references left as written because their source is missing
    # The kind of the controller whose Pod was admitted with live references because that
    # kind is not in the table (for `configpin_unpinned_pods_total`).
    unpinned_owner: str | None = None
    status_code: int = 403  # for a denial: 403 a decision on the object, 503 the API failed
    api_failure: bool = False


class _Target(NamedTuple):  # made on every review, as is PinRequest
    """Where the pod spec and the metadata carrying the pins sit in the object."""

    spec_pointer: str
    metadata_pointer: str
    spec: Mapping[str, Any]
    metadata: Mapping[str, Any]


# The answers of the steady state, shared: an Outcome is immutable.
_SKIPPED = Outcome("skipped")
_UNCHANGED = Outcome("unchanged")


def pin(request: PinRequest, sources: Sources, policy: Policy) -> Outcome:
    decided = pin_offline(request, policy)
    return decided if decided is not None else pin_online(request, sources, policy)


def pin_online(request: PinRequest, sources: Sources, policy: Policy) -> Outcome:
    """The sequence with the cluster, for a request `pin_offline` left undecided (the
    web layer asks that first, on the event loop, and does not ask it twice)."""
    guarded = _Guarded(sources, request.namespace, policy)
    try:
        outcome = _pin(request, guarded, policy)
    except SourceUnavailableError as error:
        outcome = _api_failure(request, policy, error, guarded.created)
    return _keeping_record(request, outcome)


def pin_offline(request: PinRequest, policy: Policy) -> Outcome | None:
    """The outcome when the object alone decides it, with no API call; None when the
    sequence needs the cluster. Decided first, so that an API outage never refuses an
    update that changes nothing (a label edit, a controller's own writes), and kept apart
    so that the web layer answers these reviews without leaving the event loop."""
    decided = _pin_offline(request, policy)
    return None if decided is None else _keeping_record(request, decided)


def _keeping_record(request: PinRequest, outcome: Outcome) -> Outcome:
    """An admitted update that would take roll-on-change's record back (`kubectl rollout
    undo` writes a ReplicaSet's annotations over the Deployment's) keeps the newer one."""
    if not outcome.allowed or request.old is None:
        return outcome
    kept = kept_record(request.kind, request.old, request.obj)
    if kept is None:
        return outcome
    restore = annotation_operations(request.obj, "/metadata", ROLLED_FOR, kept)
    return replace(outcome, patch=[*outcome.patch, *restore])


def _pin_offline(request: PinRequest, policy: Policy) -> Outcome | None:
    kind, obj = request.kind, request.obj
    if request.operation not in kind.operations:
        return _SKIPPED
    if scope.namespace_never_touched(request.namespace, policy.own_namespace):
        return _SKIPPED
    target = _target(kind, obj)
    own_pins = parse_pins(target.metadata)
    old_template = template_of(kind, request.old) if request.old is not None else None
    old_pins = parse_pins(old_template.get("metadata")) if old_template is not None else {}
    if scope.opted_out(obj.get("metadata"), target.metadata):
        return _unpin(request, target, own_pins, old_pins)
    refs = _references(target)
    owner = controller_of(obj) if kind.unless_controlled else None
    if owner is not None:
        # Made by a controller: it gets what its owner's pinned template gave it.
        pinned = snapshot_sources(own_pins)
        if all((ref.kind, ref.name) in pinned for ref in refs):
            return _UNCHANGED
        unknown = policy.kinds.find_object(owner) is None
        return Outcome("skipped", unpinned_owner=str(owner.get("kind"))) if unknown else _SKIPPED
    if old_template is not None:
        # Only the stored pins map names back: a pin the request brings that differs from
        # the stored one (a rollback to a revision that differs only in config) is a change.
        new_template = template_of(kind, obj)
        if unpinned_template(old_template, [old_pins]) == unpinned_template(
            new_template, [old_pins]
        ):
            return _keep_old_pins(request, target, refs, old_template)
    return None


def _references(target: _Target) -> list[Reference]:
    # Webhooks run before validation: a name that is not a valid object name (`../x`) is
    # left for the API server to refuse, never looked up.
    return [
        ref
        for ref in find_references(target.spec, target.spec_pointer)
        if not ref.live_by_default and labels.is_object_name(ref.name)
    ]


def _pin(request: PinRequest, sources: Sources, policy: Policy) -> Outcome:
    kind, obj, namespace = request.kind, request.obj, request.namespace
    if policy.check_namespace_label:
        ns_labels = sources.namespace_labels(namespace)
        if ns_labels is None or not scope.namespace_opted_in(ns_labels):
            return _SKIPPED
    if kind.template_elsewhere and resolve(obj, kind.template_elsewhere) is not None:
        field_name = kind.template_elsewhere.removeprefix("/").replace("/", ".")
        return Outcome(
            "skipped",
            warnings=(
                f"configpin: {kind.kind} not pinned, its template comes from {field_name} "
                "(whose own template is pinned)",
            ),
        )
    if request.old is not None and kind.template_immutable:
        return _SKIPPED  # a changed template: the API server refuses the change itself
    target = _target(kind, obj)
    refs = _references(target)
    distinct = sorted({f"{ref.kind} {namespace}/{ref.name}" for ref in refs})
    if len(distinct) > policy.max_sources:
        return _failure(
            request,
            policy,
            f"the {kind.kind} references {len(distinct):,} distinct sources, more than "
            f"the limit of {policy.max_sources} (CONFIGPIN_MAX_SOURCES)",
            status_code=403,
        )
    own_pins = parse_pins(target.metadata)
    old_template = template_of(kind, request.old) if request.old is not None else None
    old_pins = parse_pins(old_template.get("metadata")) if old_template is not None else {}
    live_keys = scope.live_references(obj.get("metadata"), target.metadata) | policy.live_sources
    plan = _Planner(request.namespace, sources, policy.key, live_keys)
    plan.run(refs, snapshot_sources(own_pins), snapshot_sources(old_pins))
    return _apply(request, sources, policy, target, refs, plan)


@dataclass
class _Planner:
    """What each reference becomes, each source and claimed snapshot read once.

    A pin carried over unchanged from the old template counts as its source: a real
    template change (`rollout restart`, a new image) rolls out current config. A pin the
    request brings itself (a rollback, a reinvocation, a hand edit) is kept when the object
    it names is a snapshot of the claimed source, proven by its digest recomputed under
    the key; otherwise the name is a plain reference. A reference listed in
    `configpin.io/live` (or a live-by-default name) names its source, pinned before or not."""

    namespace: str
    sources: Sources
    key: bytes
    live_keys: frozenset[str]
    names: dict[str, str] = field(default_factory=dict)  # pointer -> name to write
    pins: Pins = field(default_factory=dict)
    new: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> snapshot
    restored: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # deleted, remade
    missing: list[str] = field(default_factory=list)  # required sources that do not exist
    lost: list[str] = field(default_factory=list)  # pinned snapshots gone for good
    unpinned: int = 0
    repinned: bool = False  # a carried pin moved to current content
    _read: dict[tuple[SourceKind, str], Mapping[str, Any] | None] = field(default_factory=dict)

    def read(self, kind: SourceKind, name: str) -> Mapping[str, Any] | None:
        if (kind, name) not in self._read:
            self._read[(kind, name)] = self.sources.read(self.namespace, kind, name)
        return self._read[(kind, name)]

    def run(
        self,
        refs: list[Reference],
        own: dict[tuple[SourceKind, str], str],
        carried: dict[tuple[SourceKind, str], str],
    ) -> None:
        for ref in refs:
            key = (ref.kind, ref.name)
            claimed = carried.get(key) or own.get(key)
            if claimed is not None and f"{ref.kind}/{claimed}" in self.live_keys:
                self.names[ref.pointer] = claimed  # pinned before, live now
            elif f"{ref.kind}/{ref.name}" in self.live_keys:
                continue
            elif claimed is not None and key not in carried:
                self._brought(ref, claimed)
            elif claimed is not None:
                self._carried(ref, claimed)
            else:
                self._plain(ref, ref.name)

    def _pin(self, ref: Reference, source: str, name: str) -> None:
        self.names[ref.pointer] = name
        self.pins[f"{ref.kind}/{source}"] = name

    def _claim_holds(self, ref: Reference, claimed: str) -> bool | None:
        """Whether the object `ref` names is a snapshot of `claimed`; None when nothing
        holds the name."""
        current = self.read(ref.kind, ref.name)
        if current is None:
            return None
        return verified_source(current, ref.kind, self.namespace, self.key) == claimed

    def _brought(self, ref: Reference, claimed: str) -> None:
        claim = self._claim_holds(ref, claimed)
        if claim is False:
            self._plain(ref, ref.name)
            return
        self._pin(ref, claimed, ref.name)
        if claim is None:  # a rollback to a snapshot deleted since
            source = self.read(ref.kind, claimed)
            remade = _snapshot_of(source, ref.kind, self.key)
            if remade is not None and remade["metadata"]["name"] == ref.name:
                self.restored[ref.name] = remade
            else:
                self.lost.append(f"{ref.kind} {self.namespace}/{ref.name}")

    def _carried(self, ref: Reference, claimed: str) -> None:
        if self._claim_holds(ref, claimed) is False:
            self._plain(ref, ref.name)
            return
        source = self.read(ref.kind, claimed)
        if source is None:  # the source is gone; its snapshot still serves
            self._pin(ref, claimed, ref.name)
            return
        self._plain(ref, claimed)
        self.repinned = self.repinned or self.names.get(ref.pointer, ref.name) != ref.name

    def _plain(self, ref: Reference, source_name: str) -> None:
        current = self.read(ref.kind, source_name)
        if current is None:
            if not ref.optional:
                self.missing.append(f"{ref.kind} {self.namespace}/{source_name}")
                self.unpinned += 1
            return
        if source_name == ref.name:
            origin = verified_source(current, ref.kind, self.namespace, self.key)
            if origin is not None:  # the reference already names a snapshot
                self._pin(ref, origin, ref.name)
                return
        snapshot = _snapshot_of(current, ref.kind, self.key)
        if snapshot is None:
            self.names[ref.pointer] = source_name
            return
        name = snapshot["metadata"]["name"]
        self.new.setdefault(name, snapshot)
        self._pin(ref, source_name, name)


def _snapshot_of(
    source: Mapping[str, Any] | None, kind: SourceKind, key: bytes
) -> dict[str, Any] | None:
    """The snapshot to pin `source` to; None when it is absent or stays live."""
    if source is None or scope.source_stays_live(source, kind):
        return None
    return build_snapshot(key, kind, source)


def _apply(
    request: PinRequest,
    sources: Sources,
    policy: Policy,
    target: _Target,
    refs: list[Reference],
    plan: _Planner,
) -> Outcome:
    gaps = _Gaps(plan.missing, plan.lost)
    if gaps and policy.missing_source == OnMissing.DENY:
        return Outcome(
            "denied",
            allowed=False,
            denial=f"configpin: {gaps.message(refused=True)}",
            missing=tuple(dict.fromkeys(gaps.missing)),
        )
    rollback = plan.repinned and _is_rollback(request, sources)
    # Written back from one of its own ReplicaSets: everything stays as it was.
    to_create = plan.restored if rollback else {**plan.restored, **plan.new}
    created = reused = 0
    if not request.dry_run:  # a dry-run gets the same names, and nothing is written
        for snapshot in to_create.values():
            if _create(sources, snapshot, policy.key):
                created += 1
            else:
                reused += 1
    pins_value = encode_pins(plan.pins) if plan.pins else None
    patch = (
        []
        if rollback
        else patch_operations(request.obj, refs, plan.names, target.metadata_pointer, pins_value)
    )
    result = "missing-source" if gaps else "pinned" if patch else "unchanged"
    warnings = (f"configpin: {gaps.message()}",) if gaps else ()
    return Outcome(
        result,
        patch=patch,
        created=created,
        reused=reused,
        warnings=warnings,
        event=warnings[0] if warnings else None,
        event_reason="SourceNotFound",
        missing=tuple(dict.fromkeys(gaps.missing)),
        unpinned=plan.unpinned,
    )


@dataclass(frozen=True)
class _Gaps:
    """References that could not be pinned: missing sources, snapshots gone for good."""

    missing: list[str]
    lost: list[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.lost)

    def message(self, refused: bool = False) -> str:
        parts = []
        if self.missing:
            unique = list(dict.fromkeys(self.missing))
            what = (
                "required source not found"
                if refused
                else "required source not found, left unpinned"
            )
            parts.append(f"{what}: {listed(unique)}")
        if self.lost:
            unique = list(dict.fromkeys(self.lost))
            # The names first: Kubernetes shows the first 120 characters of a warning.
            parts.append(
                f"snapshot not found: {listed(unique)} (deleted, and its source changed "
                "since: Pods cannot start until it exists)"
            )
        return "; ".join(parts)


def _create(sources: Sources, snapshot: Mapping[str, Any], key: bytes) -> bool:
    """Create the snapshot; True when created, False when a real snapshot of the same
    content already held its name (another replica, a retry, an earlier rollout)."""
    existing = sources.create_snapshot(snapshot)
    if existing is None:
        return True
    metadata = snapshot["metadata"]
    kind = SOURCE_KIND[snapshot["kind"]]
    # The digest recomputed from the existing object's content decides, not its labels.
    if verified_source(existing, kind, metadata["namespace"], key) == source_name_of(snapshot):
        if (existing.get("metadata") or {}).get("deletionTimestamp"):
            # Its finalizer may be released the moment this admission's object is not
            # stored yet: pinning to it would pin to something about to vanish.
            raise SourceUnavailableError(
                "use snapshot",
                kind,
                metadata["namespace"],
                metadata["name"],
                "the snapshot is being deleted",
            )
        return False
    raise SourceUnavailableError(
        "create snapshot",
        kind,
        metadata["namespace"],
        metadata["name"],
        "the name is taken by another object",
    )


def _is_rollback(request: PinRequest, sources: Sources) -> bool:
    """Whether the new template is one of the workload's revisions' own, written back
    (`kubectl rollout undo`): its pins then stay exactly as they were, even where they equal
    the current ones, so the old revision comes back with its old config."""
    kind = request.kind
    old_meta = (request.old or {}).get("metadata") or {}
    selector = label_selector((request.obj.get("spec") or {}).get("selector"))
    if kind.rollbacks == Rollbacks.NONE or not old_meta.get("uid") or selector is None:
        return False  # an empty or invalid selector: validation refuses the object anyway
    template = template_of(kind, request.obj)
    revisions = sources.revision_templates(
        request.namespace, kind.rollbacks, old_meta["uid"], selector
    )
    template = without_empty_fields(template)
    return any(
        without_empty_fields(_without_label(existing, kind.revision_hash_label)) == template
        for existing in revisions
    )


def _without_label(template: Mapping[str, Any], label: str | None) -> dict[str, Any]:
    """A revision's template as its workload holds it: without the controller's hash label."""
    result = copy.deepcopy(dict(template))
    pod_labels = (result.get("metadata") or {}).get("labels")
    if label is not None and isinstance(pod_labels, dict):
        pod_labels.pop(label, None)
    return result


def _keep_old_pins(
    request: PinRequest, target: _Target, refs: list[Reference], old_template: Mapping[str, Any]
) -> Outcome:
    """The template did not really change: give it back exactly the old pins, so that
    nothing rolls out by accident."""
    old_refs = find_references(old_template.get("spec") or {}, target.spec_pointer)
    names = {ref.pointer: ref.name for ref in old_refs}
    old_value = ((old_template.get("metadata") or {}).get("annotations") or {}).get(labels.PINS)
    patch = patch_operations(
        request.obj,
        refs,
        names,
        target.metadata_pointer,
        old_value if isinstance(old_value, str) else None,
    )
    return Outcome("pinned" if patch else "unchanged", patch=patch)


def _unpin(request: PinRequest, target: _Target, own_pins: Pins, old_pins: Pins) -> Outcome:
    """Opted out: every pinned reference back to its source, the pins annotation dropped,
    as `configpin.io/live` does per reference."""
    refs = find_references(target.spec, target.spec_pointer)
    to_source = snapshot_sources(old_pins, own_pins)
    names = {
        ref.pointer: to_source[(ref.kind, ref.name)]
        for ref in refs
        if (ref.kind, ref.name) in to_source
    }
    patch = patch_operations(request.obj, refs, names, target.metadata_pointer, None)
    return Outcome("unpinned", patch=patch) if patch else _SKIPPED


def _api_failure(
    request: PinRequest, policy: Policy, error: SourceUnavailableError, created: list[str]
) -> Outcome:
    # Say what is true: snapshots created before the failure exist (unused until a retry
    # pins to them; the lifecycle sweep removes those never used).
    done = f"snapshots created before the failure: {listed(created)}" if created else ""
    return _failure(
        request,
        policy,
        str(error),
        status_code=503,
        api_failure=True,
        denied_note=f"; {done or 'nothing was changed'}, retry the request",
        admitted_note=f"; {done}" if done else "",
    )


def _failure(
    request: PinRequest,
    policy: Policy,
    reason: str,
    status_code: int,
    api_failure: bool = False,
    denied_note: str = "",
    admitted_note: str = "",
) -> Outcome:
    """The kind's failure setting: refused, or admitted unpinned with a warning and Event."""
    if policy.on_failure(request.kind) == OnFailure.DENY:
        return Outcome(
            "denied",
            allowed=False,
            denial=f"configpin {reason}{denied_note}",
            status_code=status_code,
            api_failure=api_failure,
        )
    message = f"configpin: {request.kind.kind} admitted unpinned, {reason}{admitted_note}"
    return Outcome("failed-open", warnings=(message,), event=message, api_failure=api_failure)


class _Guarded:
    """The review's view of `Sources`: one deadline for the whole review (no call starts
    after it), and a record of the snapshots created, for an honest failure message."""

    def __init__(self, sources: Sources, namespace: str, policy: Policy) -> None:
        self._sources = sources
        self._namespace = namespace
        self._clock = policy.clock
        self._seconds = policy.review_seconds
        self._deadline = policy.clock() + policy.review_seconds
        self.created: list[str] = []

    def _check(self, action: str, kind: str, name: str, namespace: str | None = None) -> None:
        if self._clock() > self._deadline:
            detail = f"the review's deadline of {self._seconds:g}s passed"
            where = self._namespace if namespace is None else namespace
            raise SourceUnavailableError(action, kind, where, name, detail)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        self._check("read", "namespace", namespace, namespace="")
        return self._sources.namespace_labels(namespace)

    def read(self, namespace: str, kind: SourceKind, name: str) -> Mapping[str, Any] | None:
        self._check("read", kind, name)
        return self._sources.read(namespace, kind, name)

    def create_snapshot(self, snapshot: Mapping[str, Any]) -> Mapping[str, Any] | None:
        kind, name = SOURCE_KIND[snapshot["kind"]], snapshot["metadata"]["name"]
        self._check("create snapshot", kind, name)
        existing = self._sources.create_snapshot(snapshot)
        if existing is None:
            self.created.append(f"{kind} {self._namespace}/{name}")
        return existing

    def revision_templates(
        self, namespace: str, kind: Rollbacks, owner_uid: str, selector: str
    ) -> list[Mapping[str, Any]]:
        self._check(f"list {kind.value} of", "workload", owner_uid)
        return self._sources.revision_templates(namespace, kind, owner_uid, selector)


def _target(kind: WorkloadKind, obj: Mapping[str, Any]) -> _Target:
    template = template_of(kind, obj)
    spec, metadata = template.get("spec"), template.get("metadata")
    return _Target(
        kind.spec_pointer,
        kind.metadata_pointer,
        spec if isinstance(spec, Mapping) else {},
        metadata if isinstance(metadata, Mapping) else {},
    )
