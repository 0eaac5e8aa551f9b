"""The pinning sequence for one object: scope -> references -> sources -> snapshots -> patch.

The only I/O goes through `Sources`, so the same sequence serves the webhook and the
offline `render` command.
"""

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

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
from app.domain.references import Reference, SourceKind, find_references
from app.domain.snapshots import build_snapshot, is_snapshot, source_name_of

ObjectKind = Literal["Pod", "Deployment"]
POD_TEMPLATE_HASH = "pod-template-hash"


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

    def on_failure(self, kind: ObjectKind) -> OnFailure:
        return self.deployment_failure if kind == "Deployment" else self.pod_failure


@dataclass(frozen=True)
class PinRequest:
    kind: ObjectKind
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


@dataclass(frozen=True)
class _Target:
    """Where the pod spec and the metadata carrying the pins sit in the object."""

    spec_pointer: str
    metadata_pointer: str
    spec: Mapping[str, Any]
    metadata: Mapping[str, Any]


def pin(request: PinRequest, sources: Sources, policy: Policy) -> Outcome:
    try:
        return _pin(request, sources, policy)
    except SourceUnavailableError as error:
        return _api_failure(request, policy, error)


def _pin(request: PinRequest, sources: Sources, policy: Policy) -> Outcome:
    obj, namespace = request.obj, request.namespace
    handled = ("CREATE",) if request.kind == "Pod" else ("CREATE", "UPDATE")
    if request.operation not in handled:
        return Outcome("skipped")
    if scope.namespace_never_touched(namespace, policy.own_namespace):
        return Outcome("skipped")
    if policy.check_namespace_label:
        ns_labels = sources.namespace_labels(namespace)
        if ns_labels is None or not scope.namespace_opted_in(ns_labels):
            return Outcome("skipped")
    target = _target(request.kind, obj)
    if scope.opted_out(obj.get("metadata"), target.metadata):
        return Outcome("skipped")

    # Webhooks run before validation: a name that is not a valid object name (`../x`) is
    # left for the API server to refuse, never looked up.
    refs = [
        ref
        for ref in find_references(target.spec, target.spec_pointer)
        if not ref.live_by_default and labels.is_object_name(ref.name)
    ]
    own_pins = parse_pins(target.metadata)

    if request.kind == "Pod" and _has_controller(obj):
        # Pods of a controller are pinned per owner revision in a later step; until then
        # they keep what their template gave them.
        pinned = snapshot_sources(own_pins)
        already = all((ref.kind, ref.name) in pinned for ref in refs)
        return Outcome("unchanged" if already else "skipped")

    old_pins: Pins = {}
    if request.kind == "Deployment" and request.old is not None:
        old_template = (request.old.get("spec") or {}).get("template") or {}
        new_template = (obj.get("spec") or {}).get("template") or {}
        old_pins = parse_pins(old_template.get("metadata"))
        if unpinned_template(old_template, [old_pins, own_pins]) == unpinned_template(
            new_template, [old_pins, own_pins]
        ):
            return _keep_old_pins(request, target, refs, old_template)

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
    """Whether the new template is one of the Deployment's ReplicaSets' own, written back
    (`kubectl rollout undo`): its pins then stay exactly as they were, even where they equal
    the current ones, so the old ReplicaSet comes back with its old config."""
    old_meta = (request.old or {}).get("metadata") or {}
    spec = request.obj.get("spec") or {}
    match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    if not old_meta.get("uid") or not match_labels:
        return False
    template = spec.get("template") or {}
    return any(
        _without_hash(existing) == template
        for existing in sources.revision_templates(request.namespace, old_meta["uid"], match_labels)
    )


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's template as its Deployment holds it: without `pod-template-hash`."""
    result = copy.deepcopy(dict(template))
    pod_labels = (result.get("metadata") or {}).get("labels")
    if isinstance(pod_labels, dict):
        pod_labels.pop(POD_TEMPLATE_HASH, None)
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
    message = f"configpin: {request.kind} admitted unpinned, {error}"
    return Outcome("failed-open", warnings=(message,), event=message, api_failure=True)


def _target(kind: ObjectKind, obj: Mapping[str, Any]) -> _Target:
    if kind == "Pod":
        return _Target("/spec", "/metadata", obj.get("spec") or {}, obj.get("metadata") or {})
    template = (obj.get("spec") or {}).get("template") or {}
    return _Target(
        "/spec/template/spec",
        "/spec/template/metadata",
        template.get("spec") or {},
        template.get("metadata") or {},
    )


def _has_controller(obj: Mapping[str, Any]) -> bool:
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(o, Mapping) and o.get("controller") is True for o in owners)
