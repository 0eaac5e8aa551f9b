"""Versions read back: a workload's revisions, the snapshots each one runs with, what changed
between them, and the way back to live sources. Pure: objects in, rows and text out."""

import datetime
import difflib
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from app.domain.pinning import Pins, parse_pins, snapshot_sources, unpinned_template
from app.domain.references import SourceKind
from app.domain.timestamps import parse_time
from app.domain.workloads import Rollbacks, WorkloadKind


class UsageError(ValueError):
    """A command line that names no workload configpin can read."""


# kubectl's short names for the kinds whose revisions can be read.
SHORT_NAMES = {"Deployment": "deploy", "StatefulSet": "sts", "DaemonSet": "ds", "Rollout": "ro"}
# How a controller numbers the ReplicaSets of a workload, by the workload's API group.
REVISION_ANNOTATIONS = {
    "apps": "deployment.kubernetes.io/revision",
    "argoproj.io": "rollout.argoproj.io/revision",
}


def versioned_kinds(workloads: Iterable[WorkloadKind]) -> list[WorkloadKind]:
    """The kinds of the table that keep revisions (ReplicaSets or ControllerRevisions)."""
    return [kind for kind in workloads if kind.rollbacks is not Rollbacks.NONE]


def resource_name(kind: WorkloadKind) -> str:
    """`deployment.apps`, as kubectl prints it."""
    return f"{kind.kind.lower()}.{kind.group}" if kind.group else kind.kind.lower()


def parse_target(text: str, kinds: Iterable[WorkloadKind]) -> tuple[WorkloadKind, str]:
    """`deploy/web`, `statefulset.apps/db`, ... -> (kind, name), as kubectl reads them."""
    kinds = list(kinds)
    aliases: dict[str, WorkloadKind] = {}
    for kind in kinds:
        names = {kind.kind.lower(), kind.resource, SHORT_NAMES.get(kind.kind, kind.resource)}
        for name in names:
            aliases[name] = kind
            aliases[f"{name}.{kind.group}"] = kind
    kind_text, slash, name = text.partition("/")
    if not slash or not name or "/" in name:
        raise UsageError(f"expected KIND/NAME (deployment/web, sts/db), got {text!r}")
    found = aliases.get(kind_text.lower())
    if found is None:
        known = ", ".join(kind.kind for kind in kinds)
        raise UsageError(f"{kind_text!r} is not a workload kind with revisions ({known})")
    return found, name


def template_kinds(workloads: Iterable[WorkloadKind]) -> list[WorkloadKind]:
    """The kinds whose own template may pin a snapshot (not Pods and ReplicaSets, which are
    instances and revisions of those: they keep snapshots through ownerReferences)."""
    return [kind for kind in workloads if not kind.is_pod and not kind.unless_controlled]


@dataclass(frozen=True)
class Revision:
    number: int
    name: str
    created: datetime.datetime | None
    template: Mapping[str, Any]

    @property
    def pins(self) -> Pins:
        return parse_pins(self.template.get("metadata"))


def revisions_of(
    kind: WorkloadKind, workload: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]
) -> list[Revision]:
    """The workload's revisions, oldest first, from the ReplicaSets or ControllerRevisions of
    its namespace: only those it controls (a selector can match another owner's)."""
    uid = (workload.get("metadata") or {}).get("uid")
    found: list[Revision] = []
    for obj in objects:
        metadata = obj.get("metadata") or {}
        if not any(
            owner.get("uid") == uid and owner.get("controller") is True
            for owner in metadata.get("ownerReferences") or []
        ):
            continue
        if kind.rollbacks is Rollbacks.REPLICA_SETS:
            annotation = REVISION_ANNOTATIONS[kind.group]  # the table's kinds: apps, Argo
            raw_number: Any = (metadata.get("annotations") or {}).get(annotation)
            template = (obj.get("spec") or {}).get("template") or {}
        else:
            raw_number = obj.get("revision")
            template = dict(((obj.get("data") or {}).get("spec") or {}).get("template") or {})
            template.pop("$patch", None)  # ControllerRevisions store a strategic-merge patch
        try:
            number = int(raw_number)
        except (TypeError, ValueError):
            continue  # not yet numbered by its controller
        found.append(
            Revision(
                number,
                metadata["name"],
                parse_time(metadata.get("creationTimestamp")),
                template,
            )
        )
    return sorted(found, key=lambda revision: revision.number)


@dataclass(frozen=True)
class Snapshot:
    """What history needs of a snapshot; `content` None when it no longer exists."""

    name: str
    created: datetime.datetime | None
    content: Mapping[str, str] | None


def snapshot_of(name: str, obj: Mapping[str, Any] | None) -> Snapshot:
    if obj is None:
        return Snapshot(name, None, None)
    return Snapshot(
        name, parse_time((obj.get("metadata") or {}).get("creationTimestamp")), content_of(obj)
    )


def content_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """Key -> value of a ConfigMap or Secret; a binaryData value stands for itself by size and
    hash (its base64 text is no use in a diff)."""
    binary = {key: binary_marker(value) for key, value in (obj.get("binaryData") or {}).items()}
    return {**binary, **(obj.get("data") or {})}


@dataclass(frozen=True)
class KeyChanges:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def summary(self) -> str:
        """`+new -gone ~edited`: key names only, never a value."""
        return " ".join(
            [f"+{k}" for k in self.added]
            + [f"-{k}" for k in self.removed]
            + [f"~{k}" for k in self.changed]
        )


def key_changes(before: Mapping[str, str], after: Mapping[str, str]) -> KeyChanges:
    return KeyChanges(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(k for k in before.keys() & after.keys() if before[k] != after[k])),
    )


# What happened to a source at a revision, against the revision before it.
Status = Literal["new", "unchanged", "changed", "unpinned", "snapshot missing"]


@dataclass(frozen=True)
class SourceState:
    source: str  # "configmap/app-config"
    snapshot: str | None  # None when the revision does not pin it (any more)
    snapshot_created: datetime.datetime | None
    status: Status
    changes: KeyChanges = field(default_factory=KeyChanges)


@dataclass(frozen=True)
class HistoryRow:
    revision: int
    name: str
    created: datetime.datetime | None
    live: bool
    sources: tuple[SourceState, ...]


def history(
    revisions: Sequence[Revision], snapshots: Mapping[tuple[SourceKind, str], Snapshot]
) -> list[HistoryRow]:
    """One row per revision, oldest first; the newest is the one the workload runs now.
    `snapshots` holds every snapshot the revisions pin, by (kind, name)."""
    rows: list[HistoryRow] = []
    previous: Pins = {}
    for index, revision in enumerate(revisions):
        pins = revision.pins
        states = [
            _state(source, pins[source], previous.get(source), snapshots) for source in sorted(pins)
        ]
        states += [
            SourceState(source, None, None, "unpinned")
            for source in sorted(previous.keys() - pins.keys())
        ]
        live = index == len(revisions) - 1
        rows.append(
            HistoryRow(revision.number, revision.name, revision.created, live, tuple(states))
        )
        previous = pins
    return rows


def _state(
    source: str,
    name: str,
    before: str | None,
    snapshots: Mapping[tuple[SourceKind, str], Snapshot],
) -> SourceState:
    kind = source_kind(source)
    snapshot = snapshots.get((kind, name))
    if snapshot is None or snapshot.content is None:
        return SourceState(source, name, None, "snapshot missing")
    if before is None:
        return SourceState(source, name, snapshot.created, "new")
    if before == name:
        return SourceState(source, name, snapshot.created, "unchanged")
    # Against a snapshot gone since, which keys changed is unknown: "changed" says only that.
    earlier = snapshots.get((kind, before))
    if earlier is None or earlier.content is None:
        return SourceState(source, name, snapshot.created, "changed")
    changes = key_changes(earlier.content, snapshot.content)
    return SourceState(source, name, snapshot.created, "changed", changes)


def source_kind(source: str) -> SourceKind:
    return "secret" if source.startswith("secret/") else "configmap"


def human_age(seconds: float) -> str:
    """kubectl's AGE column (apimachinery's HumanDuration)."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years, rest = divmod(days, 365)
    if years < 8:
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def _age(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    return "<unknown>" if moment is None else human_age((now - moment).total_seconds())


# Terminal styles; an empty style when the output is not a terminal.
BOLD, GREEN, YELLOW, RESET = "\033[1m", "\033[32m", "\033[33m", "\033[0m"


def history_table(rows: Sequence[HistoryRow], now: datetime.datetime, color: bool) -> str:
    """kubectl-style columns: REVISION, AGE, LIVE, then one column per source pinned in any
    revision, each cell `snapshot (its age) what changed`. One line per revision; the live one
    green on a terminal."""
    sources = sorted({state.source for row in rows for state in row.sources})
    header = ["REVISION", "AGE", "LIVE", *sources]  # source names as typed, to copy
    lines: list[list[str]] = []
    for row in rows:
        by_source = {state.source: state for state in row.sources}
        cells = [str(row.revision), _age(row.created, now), "*" if row.live else ""]
        cells += [_cell(by_source.get(source), now) for source in sources]
        lines.append(cells)
    if not rows:
        return "No revisions found.\n"
    if not sources:
        header.append("SOURCES")
        for cells in lines:
            cells.append("(nothing pinned)")
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    out = [_line(header, widths, BOLD if color else "")]
    for row, cells in zip(rows, lines, strict=True):
        out.append(_line(cells, widths, GREEN if color and row.live else ""))
    return "".join(out)


def _cell(state: SourceState | None, now: datetime.datetime) -> str:
    if state is None:
        return "-"
    if state.snapshot is None:
        return f"({state.status})"
    if state.status == "snapshot missing":
        return f"{state.snapshot} (snapshot missing)"
    what = state.changes.summary() if state.status == "changed" else state.status
    return f"{state.snapshot} ({_age(state.snapshot_created, now)}) {what or 'changed'}"


def _line(cells: Sequence[str], widths: Sequence[int], style: str) -> str:
    return _styled("   ".join(map(str.ljust, cells, widths)).rstrip(), style)


def _styled(line: str, style: str) -> str:
    return f"{style}{line}{RESET}\n" if style else f"{line}\n"


def history_document(
    kind: WorkloadKind, namespace: str, name: str, rows: Sequence[HistoryRow]
) -> dict[str, Any]:
    """The same history for scripts (`-o json|yaml`): times as RFC 3339, keys by name."""
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "namespace": namespace,
        "name": name,
        "revisions": [
            {
                "revision": row.revision,
                "name": row.name,
                "created": _rfc3339(row.created),
                "live": row.live,
                "sources": [
                    {
                        "source": state.source,
                        "snapshot": state.snapshot,
                        "snapshotCreated": _rfc3339(state.snapshot_created),
                        "status": state.status,
                        "added": list(state.changes.added),
                        "removed": list(state.changes.removed),
                        "changed": list(state.changes.changed),
                    }
                    for state in row.sources
                ],
            }
            for row in rows
        ],
    }


def _rfc3339(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


# --- diff ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceDiff:
    source: str
    before: str | None  # snapshot names; None: not pinned at that revision
    after: str | None
    text: str  # a unified diff for a ConfigMap, key names for a Secret; "" when equal


def diff_sources(
    a: Revision,
    b: Revision,
    snapshots: Mapping[tuple[SourceKind, str], Snapshot],
) -> list[SourceDiff]:
    """What differs between the sources pinned by revisions `a` and `b`. A ConfigMap's values
    as a unified diff; a Secret's changed key names only, whatever the caller asks."""
    pins_a, pins_b = a.pins, b.pins
    diffs: list[SourceDiff] = []
    for source in sorted(pins_a.keys() | pins_b.keys()):
        before, after = pins_a.get(source), pins_b.get(source)
        if before == after:
            continue
        kind = source_kind(source)
        old = _content(snapshots, kind, before)
        new = _content(snapshots, kind, after)
        label_a = f"{source} revision {a.number} ({before or 'not pinned'})"
        label_b = f"{source} revision {b.number} ({after or 'not pinned'})"
        if kind == "secret":
            changes = key_changes(old, new)
            summary = changes.summary() or "same keys and values (type or encoding differs)"
            text = f"--- {label_a}\n+++ {label_b}\n{summary}\n"
        else:
            text = (
                "".join(
                    line + "\n"
                    for line in difflib.unified_diff(
                        _lines(old), _lines(new), label_a, label_b, lineterm=""
                    )
                )
                or f"--- {label_a}\n+++ {label_b}\nsame keys and values\n"
            )
        diffs.append(SourceDiff(source, before, after, text))
    return diffs


def _content(
    snapshots: Mapping[tuple[SourceKind, str], Snapshot], kind: SourceKind, name: str | None
) -> Mapping[str, str]:
    if name is None:
        return {}
    snapshot = snapshots.get((kind, name))
    if snapshot is None or snapshot.content is None:
        raise MissingSnapshotError(f"{kind} snapshot {name} no longer exists: cannot compare")
    return snapshot.content


class MissingSnapshotError(LookupError):
    pass


def _lines(content: Mapping[str, str]) -> list[str]:
    """A ConfigMap's keys as YAML-like lines: `key: value`, or a block for a value with a line
    break, whose header tells how the value ends as YAML's does: `|` one line break, `|-`
    none, `|+` more (each shown as an empty line)."""
    lines: list[str] = []
    for key in sorted(content):
        value = content[key]
        if "\n" not in value:
            lines.append(f"{key}: {value}")
            continue
        header = "|+" if value.endswith("\n\n") else "|" if value.endswith("\n") else "|-"
        lines.append(f"{key}: {header}")
        lines += [f"  {line}" for line in value.splitlines()]
    return lines


def binary_marker(value: str) -> str:
    """A binaryData value stands for itself by size and hash, not by its base64 text."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    return f"<binary, {len(value)} base64 chars, sha256 {digest}>"


# --- unpin --------------------------------------------------------------------------------


def unpin(template: Mapping[str, Any]) -> tuple[dict[str, Any], Pins]:
    """The template with each pinned reference named after its source again and the pins
    annotation dropped, and the pins it drops (empty: nothing to unpin)."""
    pins = parse_pins(template.get("metadata"))
    if not pins:
        return dict(template), {}
    return unpinned_template(template, [pins]), pins


def template_diff(resource: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What unpin would write, as a unified diff of the pod template (names only: a template
    holds references, never a Secret's value)."""
    return "".join(
        line + "\n"
        for line in difflib.unified_diff(
            _yaml_lines(before),
            _yaml_lines(after),
            f"{resource} (pinned)",
            f"{resource} (unpinned)",
            lineterm="",
        )
    )


def _yaml_lines(template: Mapping[str, Any]) -> list[str]:
    # Keys sorted (safe_dump's default); no line folded, however long.
    return yaml.safe_dump({"template": dict(template)}, width=math.inf).splitlines()


RED = "\033[31m"


def colored_diff(text: str) -> str:
    """A unified diff with removed lines red and added lines green, for a terminal."""
    out = []
    for line in text.splitlines():
        if line.startswith(("---", "+++")):
            out.append(_styled(line, BOLD))
        elif line.startswith("-"):
            out.append(_styled(line, RED))
        elif line.startswith("+"):
            out.append(_styled(line, GREEN))
        else:
            out.append(f"{line}\n")
    return "".join(out)


def releasable(
    unpinned: Iterable[Pins], still_pinned: Iterable[Pins]
) -> list[tuple[SourceKind, str]]:
    """The snapshots unpin lets go of: pinned by the templates it unpins and by no template
    still pinned in the namespace. Old revisions (and their Pods) keep them through their
    ownerReferences: the garbage collector deletes each after its last owner, without
    waiting for configpin."""
    kept = snapshot_sources(*still_pinned).keys()
    return sorted(snapshot_sources(*unpinned).keys() - kept)
