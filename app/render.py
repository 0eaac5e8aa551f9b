"""`configpin render`: the webhook's pinning, offline, over manifest files.

Like `istioctl kube-inject`, the same pinning sequence runs on documents instead of a
cluster: every namespace counts as opted in and sources come from the files.
"""

import base64
import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonpatch
import yaml

from app.admission.pinner import PinRequest, Policy, pin
from app.domain.references import SourceKind
from app.domain.snapshots import SOURCE_KIND
from app.domain.workloads import Rollbacks, WorkloadKind, Workloads

DEFAULT_NAMESPACE = "default"


class RenderError(Exception):
    pass


def load_documents(texts: Iterable[tuple[str, str]], kinds: Workloads | None = None) -> list[Any]:
    """Every YAML document of every (file name, text), in order; empty documents dropped."""
    documents: list[Any] = []
    for filename, text in texts:
        try:
            loaded = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        except yaml.YAMLError as error:
            raise RenderError(f"{filename}: invalid YAML{_where(error)}") from None
        except ValueError:  # a scalar under an explicit tag that does not convert (!!int x)
            raise RenderError(f"{filename}: invalid YAML: a value does not match its tag") from None
        for index, doc in enumerate(loaded, start=1):
            _check_shape(filename, index, doc, kinds or Workloads())
        documents.extend(loaded)
    return documents


def _where(error: yaml.YAMLError) -> str:
    # The position and the problem with anything quoted masked: PyYAML's own message quotes
    # the offending line, tag or alias, which could be a Secret value.
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    if not problem:
        return position
    masked = _QUOTED.sub("'...'", problem)
    return f"{position}: {masked}"


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|[!*&]\S+")


def _check_shape(filename: str, index: int, doc: Any, kinds: Workloads) -> None:
    """Objects configpin reads must have the shape the API server would enforce."""
    if not isinstance(doc, dict):
        return
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in _SOURCE_FIELDS:
        fields = _SOURCE_FIELDS[key]
    elif kinds.find_object(doc) is not None:
        fields = ("spec",)
    else:
        return
    where = f"{filename}: document {index} ({doc['kind']})"
    for field in ("metadata", *fields):
        if field in doc and not isinstance(doc[field], dict):
            raise RenderError(f"{where}: {field} must be a mapping")
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise RenderError(f"{where}: metadata.name must be a non-empty string")


# The sources render reads, and their fields that must be mappings (for the kinds it
# rewrites: `spec`).
_SOURCE_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("v1", "ConfigMap"): ("data", "binaryData"),
    ("v1", "Secret"): ("data", "stringData"),
}


class ManifestSources:
    """ConfigMaps and Secrets found in the documents; snapshots collected, not written."""

    def __init__(self, documents: Iterable[Any]) -> None:
        self._objects: dict[tuple[str, SourceKind, str], Mapping[str, Any]] = {}
        self.created: dict[tuple[str, SourceKind, str], Mapping[str, Any]] = {}
        for doc in documents:
            kind = _source_kind(doc)
            if kind is not None:
                self._objects[_key(doc, kind)] = _as_stored(doc)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return {}

    def read(self, namespace: str, kind: SourceKind, name: str) -> Mapping[str, Any] | None:
        return self._objects.get((namespace, kind, name))

    def revision_templates(
        self, namespace: str, kind: Rollbacks, owner_uid: str, selector: str
    ) -> list[Mapping[str, Any]]:
        return []  # manifests have no history: render only ever sees a CREATE

    def create_snapshot(self, snapshot: Mapping[str, Any]) -> Mapping[str, Any] | None:
        key = _key(snapshot, SOURCE_KIND[snapshot["kind"]])
        existing = self._objects.get(key) or self.created.get(key)
        if existing is None:
            self.created[key] = snapshot
        return existing


def render(documents: list[Any], key: bytes, kinds: Workloads | None = None) -> list[Any]:
    """Pinned copies of `documents` (every kind of the table) followed by each new
    snapshot once, sorted by name."""
    sources = ManifestSources(documents)
    policy = Policy(key=key, check_namespace_label=False, kinds=kinds or Workloads())
    output: list[Any] = []
    missing: list[str] = []
    for doc in documents:
        kind = _pinned_kind(doc, policy.kinds)
        if kind is None:
            output.append(doc)
            continue
        namespace = (doc.get("metadata") or {}).get("namespace") or DEFAULT_NAMESPACE
        outcome = pin(PinRequest(kind, "CREATE", namespace, doc), sources, policy)
        missing.extend(outcome.missing)
        output.append(jsonpatch.apply_patch(doc, outcome.patch) if outcome.patch else doc)
    if missing:
        raise RenderError("required sources not found: " + ", ".join(dict.fromkeys(missing)))
    snapshots = sorted(sources.created.values(), key=lambda s: (s["metadata"]["name"], s["kind"]))
    return output + snapshots


def dump(documents: list[Any]) -> str:
    return yaml.safe_dump_all(
        documents, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def _pinned_kind(doc: Any, kinds: Workloads) -> WorkloadKind | None:
    if not isinstance(doc, dict):
        return None
    return kinds.find_object(doc)


def _source_kind(doc: Any) -> SourceKind | None:
    if isinstance(doc, dict) and doc.get("apiVersion") == "v1" and doc.get("kind") in SOURCE_KIND:
        return SOURCE_KIND[doc["kind"]]
    return None


def _key(doc: Mapping[str, Any], kind: SourceKind) -> tuple[str, SourceKind, str]:
    metadata = doc.get("metadata") or {}
    return (metadata.get("namespace") or DEFAULT_NAMESPACE, kind, metadata.get("name", ""))


def _as_stored(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object as the API server would store it: in its namespace, a Secret's stringData
    folded into data, base64-encoded, and its type defaulting to Opaque, so snapshot names
    match the cluster's."""
    stored = copy.deepcopy(dict(doc))
    metadata = stored["metadata"] = dict(stored.get("metadata") or {})
    metadata["namespace"] = metadata.get("namespace") or DEFAULT_NAMESPACE
    if doc.get("kind") != "Secret":
        return stored
    stored["type"] = stored.get("type") or "Opaque"
    data = dict(stored.get("data") or {})
    for name, value in (stored.pop("stringData", None) or {}).items():
        data[name] = base64.b64encode(str(value).encode()).decode()
    if data:
        stored["data"] = data
    return stored
