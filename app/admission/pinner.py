"""The pinning sequence for one object: scope -> references -> sources -> snapshots -> patch.

The only I/O goes through `Sources`, so the same sequence serves the webhook and the
offline `render` command.
"""

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.admission.sources import Sources, SourceUnavailableError
from app.domain import labels, scope
from app.domain.pinning import (
    Pins,
    encode_pins,
    parse_pins,
    patch_operations,
    snapshot_sources,
    unpinned_template,
)
from app.domain.pointer import resolve
from app.domain.references import Reference, SourceKind, find_references
from app.domain.snapshots import build_snapshot, is_snapshot, source_name_of
from app.domain.workloads import Rollbacks, WorkloadKind, Workloads, controller_of


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
    kinds: Workloads = field(default_factory=Workloads)

    def on_failure(self, kind: WorkloadKind) -> OnFailure:
        """Workload templates follow `deployment_failure` (an apply can be retried), Pods
        `pod_failure`."""
        return self.pod_failure if kind.is_pod else self.deployment_failure


@dataclass(frozen=True)
class PinRequest:
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
    created: int = 0
    reused: int = 0
    missing: tuple[str, ...] = ()  # "secret ns/name" of required sources that do not exist
    status_code: int = 403  # for a denial: 403 a decision on the object, 503 the API failed
    api_failure: bool = False
    # The kind of the controller whose Pod was admitted with live references because that
    # kind is not in the table (for `configpin_unpinned_pods_total`).
    unpinned_owner: str | None = None


@dataclass(frozen=True)
class _Target:
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
    if decided is not None:
        return decided
    try:
        return _pin(request, sources, policy)
    except SourceUnavailableError as error:
        return _api_failure(request, policy, error)


def pin_offline(request: PinRequest, policy: Policy) -> Outcome | None:
    """The outcome when the object alone decides it, with no API call; None when the
    sequence needs the cluster. Kept apart so that the web layer answers these reviews (the
    steady state: Pods of a pinned ReplicaSet) without leaving the event loop."""
    kind, obj = request.kind, request.obj
    if request.operation not in kind.operations:
        return _SKIPPED
    if scope.namespace_never_touched(request.namespace, policy.own_namespace):
        return _SKIPPED
    target = _target(kind, obj)
    if scope.opted_out(obj.get("metadata"), target.metadata):
        return _SKIPPED
    owner = controller_of(obj) if kind.unless_controlled else None
    if owner is not None:
        # Made by a controller: it gets what its owner's pinned template gave it.
        pinned = snapshot_sources(parse_pins(target.metadata))
        if all((ref.kind, ref.name) in pinned for ref in _references(target)):
            return _UNCHANGED
        unknown = policy.kinds.find_object(owner) is None
        return Outcome("skipped", unpinned_owner=str(owner.get("kind"))) if unknown else _SKIPPED
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
            return Outcome("skipped")
    if kind.template_elsewhere and resolve(obj, kind.template_elsewhere) is not None:
        field_name = kind.template_elsewhere.strip("/").replace("/", ".")
        return Outcome(
            "skipped",
            warnings=(
                f"configpin: {kind.kind} not pinned, its template comes from {field_name} "
                "(whose own template is pinned)",
            ),
        )
    target = _target(kind, obj)
    refs = _references(target)
    own_pins = parse_pins(target.metadata)

    old_pins: Pins = {}
    if request.old is not None:
        old_template = _template(kind, request.old)
        new_template = _template(kind, obj)
        old_pins = parse_pins(old_template.get("metadata"))
        if unpinned_template(old_template, [old_pins, own_pins]) == unpinned_template(
            new_template, [old_pins, own_pins]
        ):
            return _keep_old_pins(request, target, refs, old_template)
        if kind.template_immutable:
            return Outcome("skipped")  # the API server refuses the change itself

    live_keys = scope.live_references(obj.get("metadata"), target.metadata)
    return _pin_references(request, sources, policy, target, refs, own_pins, old_pins, live_keys)


def _pin_references(
    request: PinRequest,
    sources: Sources,
    policy: Policy,
    target: _Target,
    refs: list[Reference],
    own_pins: Pins,
    old_pins: Pins,
    live_keys: frozenset[str],
) -> Outcome:
    """Pin every reference that is not already pinned to a snapshot of its source now.

    A pin carried over unchanged from the old template counts as its source: a real
    template change (`rollout restart`, a new image) rolls out current config. A pin the
    request brings itself (a rollback, a reinvocation) is kept as it is. A reference listed
    in `configpin.io/live` names its source, pinned before or not."""
    carried = snapshot_sources(old_pins)
    own = snapshot_sources(own_pins)
    resolved: dict[tuple[SourceKind, str], _Resolution] = {}  # one read per source
    names: dict[str, str] = {}
    pins: Pins = {}
    missing: list[str] = []
    for ref in refs:
        source_name = carried.get((ref.kind, ref.name)) or own.get((ref.kind, ref.name), ref.name)
        if f"{ref.kind}/{source_name}" in live_keys:
            names[ref.pointer] = source_name
            continue
        if (ref.kind, ref.name) in own and (ref.kind, ref.name) not in carried:
            names[ref.pointer] = ref.name
            pins[f"{ref.kind}/{source_name}"] = ref.name
            continue
        if (ref.kind, source_name) not in resolved:
            resolved[(ref.kind, source_name)] = _resolve(
                sources.read(request.namespace, ref.kind, source_name), ref.kind, policy.key
            )
        resolution = resolved[(ref.kind, source_name)]
        if resolution.missing:
            if (ref.kind, ref.name) in carried:
                names[ref.pointer] = ref.name  # the source is gone; its snapshot still serves
                pins[f"{ref.kind}/{source_name}"] = ref.name
            elif not ref.optional:
                missing.append(f"{ref.kind} {request.namespace}/{source_name}")
        elif resolution.live:
            names[ref.pointer] = source_name
        elif resolution.snapshot is None:  # the reference already names a snapshot
            names[ref.pointer] = ref.name
            pins[f"{ref.kind}/{resolution.source_name or ref.name}"] = ref.name
        else:
            names[ref.pointer] = resolution.snapshot["metadata"]["name"]
            pins[f"{ref.kind}/{source_name}"] = names[ref.pointer]

    if missing:
        return _missing_sources(request, policy, list(dict.fromkeys(missing)))
    repinned = any(
        (ref.kind, ref.name) in carried and names.get(ref.pointer, ref.name) != ref.name
        for ref in refs
    )
    if repinned and _is_rollback(request, sources):
        return Outcome("unchanged")

    created = reused = 0
    if not request.dry_run:  # a dry-run gets the same names, and nothing is written
        for resolution in resolved.values():
            if resolution.snapshot is None:
                continue
            if sources.create_snapshot(resolution.snapshot):
                created += 1
            else:
                reused += 1

    patch = patch_operations(
        request.obj, refs, names, target.metadata_pointer, encode_pins(pins) if pins else None
    )
    return Outcome("pinned" if patch else "unchanged", patch=patch, created=created, reused=reused)


@dataclass(frozen=True)
class _Resolution:
    """What one referenced name turned out to be."""

    missing: bool = False
    live: bool = False  # opted out, or a platform Secret type
    snapshot: Mapping[str, Any] | None = None  # to create and pin to
    source_name: str | None = None  # when the name is itself a snapshot: its source


def _resolve(current: Mapping[str, Any] | None, kind: SourceKind, key: bytes) -> _Resolution:
    if current is None:
        return _Resolution(missing=True)
    if is_snapshot(current):
        return _Resolution(source_name=source_name_of(current))
    if scope.source_stays_live(current, kind):
        return _Resolution(live=True)
    return _Resolution(snapshot=build_snapshot(key, kind, current))


def _is_rollback(request: PinRequest, sources: Sources) -> bool:
    """Whether the new template is one of the workload's revisions' own, written back
    (`kubectl rollout undo`): its pins then stay exactly as they were, even where they equal
    the current ones, so the old revision comes back with its old config."""
    kind = request.kind
    old_meta = (request.old or {}).get("metadata") or {}
    spec = request.obj.get("spec") or {}
    match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    if kind.rollbacks == Rollbacks.NONE or not old_meta.get("uid") or not match_labels:
        return False
    template = _template(kind, request.obj)
    revisions = sources.revision_templates(
        request.namespace, kind.rollbacks, old_meta["uid"], match_labels
    )
    return any(
        _without_label(existing, kind.revision_hash_label) == template for existing in revisions
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


def _missing_sources(request: PinRequest, policy: Policy, missing: list[str]) -> Outcome:
    listed = ", ".join(missing)
    if policy.missing_source == OnMissing.DENY:
        return Outcome(
            "denied",
            allowed=False,
            denial=f"configpin: required source not found: {listed}",
            missing=tuple(missing),
        )
    return Outcome(
        "missing-source",
        warnings=(f"configpin: not pinned, required source not found: {listed}",),
        missing=tuple(missing),
    )


def _api_failure(request: PinRequest, policy: Policy, error: SourceUnavailableError) -> Outcome:
    if policy.on_failure(request.kind) == OnFailure.DENY:
        return Outcome(
            "denied",
            allowed=False,
            denial=f"configpin {error}; nothing was changed, retry the request",
            status_code=503,
            api_failure=True,
        )
    message = f"configpin: {request.kind.kind} admitted unpinned, {error}"
    return Outcome("failed-open", warnings=(message,), event=message, api_failure=True)


def _template(kind: WorkloadKind, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template of `obj` where the table says it sits (a Pod is its own)."""
    template = resolve(obj, kind.template)
    return template if isinstance(template, Mapping) else {}


def _target(kind: WorkloadKind, obj: Mapping[str, Any]) -> _Target:
    template = _template(kind, obj)
    spec, metadata = template.get("spec"), template.get("metadata")
    return _Target(
        kind.spec_pointer,
        kind.metadata_pointer,
        spec if isinstance(spec, Mapping) else {},
        metadata if isinstance(metadata, Mapping) else {},
    )
