"""Pins: the `configpin.io/pins` annotation, template comparison and the JSON patch."""

import json
from collections.abc import Iterable, Mapping
from typing import Any

import jsonpatch
import orjson

from app.domain import labels
from app.domain.pointer import escape, resolve
from app.domain.references import Reference, SourceKind, find_references

Pins = dict[str, str]  # "configmap/app-config" -> "app-config-7k2m9x4q1z"


def parse_pins(metadata: Mapping[str, Any] | None) -> Pins:
    """The pins recorded on a template or Pod; an unreadable annotation counts as none."""
    raw = ((metadata or {}).get("annotations") or {}).get(labels.PINS)
    if not isinstance(raw, str):
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def encode_pins(pins: Mapping[str, str]) -> str:
    """Compact, key-sorted JSON: the same pins always give the same bytes, so a template
    written back by a rollback still equals its ReplicaSet's."""
    return json.dumps(dict(sorted(pins.items())), separators=(",", ":"))


def snapshot_sources(*all_pins: Pins) -> dict[tuple[SourceKind, str], str]:
    """(kind, snapshot name) -> source name, from pins annotations."""
    mapping: dict[tuple[SourceKind, str], str] = {}
    for pins in all_pins:
        for source_key, snapshot in pins.items():
            kind, _, source = source_key.partition("/")
            # A key is written by whoever wrote the template: its source part must be a
            # name the API would accept, never a path.
            if kind in ("configmap", "secret") and labels.is_object_name(source):
                mapping[(kind, snapshot)] = source  # type: ignore[index]
    return mapping


def without_empty_fields(value: Any) -> Any:
    """`value` less every field that is null, `{}` or `[]`. A controller written in Go writes
    a custom resource's template back through its structs: `creationTimestamp: null`,
    `resources: {}`. The same Pods, which must not look like a changed template."""
    if isinstance(value, Mapping):
        cleaned = {k: without_empty_fields(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [without_empty_fields(item) for item in value]
    return value


def unpinned_template(template: Mapping[str, Any], pins: Iterable[Pins]) -> dict[str, Any]:
    """`template` with pinned names mapped back to their sources, the pins annotation set
    aside and empty fields dropped: two templates that differ only by their pins compare
    equal."""
    to_source = snapshot_sources(*pins)
    result: dict[str, Any] = without_empty_fields(template)
    ops = [
        {"op": "replace", "path": ref.pointer, "value": to_source[(ref.kind, ref.name)]}
        for ref in find_references(result.get("spec") or {}, "/spec")
        if (ref.kind, ref.name) in to_source
    ]
    result = dict(jsonpatch.apply_patch(result, ops))
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(labels.PINS, None)
            if not annotations:
                del metadata["annotations"]
        if not metadata:
            del result["metadata"]
    return result


def patch_operations(
    obj: Mapping[str, Any],
    references: Iterable[Reference],
    names: Mapping[str, str],
    metadata_pointer: str,
    pins_value: str | None,
) -> list[dict[str, Any]]:
    """JSON patch setting each reference to `names[ref.pointer]` and the pins annotation
    of the metadata at `metadata_pointer` to `pins_value` (None removes it)."""
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": ref.pointer, "value": names[ref.pointer]}
        for ref in references
        if names.get(ref.pointer, ref.name) != ref.name
    ]
    return ops + annotation_operations(obj, metadata_pointer, labels.PINS, pins_value)


def annotation_operations(
    obj: Mapping[str, Any], metadata_pointer: str, key: str, value: str | None
) -> list[dict[str, Any]]:
    """JSON patch setting annotation `key` of the metadata at `metadata_pointer` to `value`
    (None removes it); nothing when it already is."""
    metadata = resolve(obj, metadata_pointer)
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    current = annotations.get(key) if isinstance(annotations, dict) else None
    if value == current:
        return []
    key_pointer = f"{metadata_pointer}/annotations/{escape(key)}"
    if value is None:
        return [{"op": "remove", "path": key_pointer}]
    if not isinstance(metadata, dict):
        return [{"op": "add", "path": metadata_pointer, "value": {"annotations": {key: value}}}]
    if not isinstance(annotations, dict):
        return [{"op": "add", "path": f"{metadata_pointer}/annotations", "value": {key: value}}]
    return [{"op": "add", "path": key_pointer, "value": value}]
