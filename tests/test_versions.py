"""History, diff and unpin as pure functions: revisions -> rows, snapshots -> changes, template ->
unpinned template, rows -> table. The table layout is pinned by golden files in
tests/golden_versions/ (`CONFIGPIN_UPDATE_GOLDEN=1` rewrites them, never under CI)."""

import base64
import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from app.domain import labels
from app.domain.references import SourceKind
from app.domain.versions import (
    KeyChanges,
    MissingSnapshotError,
    Revision,
    Snapshot,
    UsageError,
    diff_sources,
    history,
    history_document,
    history_table,
    human_age,
    key_changes,
    parse_target,
    releasable,
    revisions_of,
    snapshot_of,
    template_diff,
    template_kinds,
    unpin,
    versioned_kinds,
)
from app.domain.workloads import (
    CREATE_AND_UPDATE,
    DEPLOYMENT,
    POD,
    REPLICA_SET,
    Rollbacks,
    WorkloadKind,
    Workloads,
)

# A kind whose revisions are ControllerRevisions, as StatefulSets and DaemonSets keep them.
STATEFULSET = WorkloadKind(
    "apps",
    "v1",
    "StatefulSet",
    "statefulsets",
    "/spec/template",
    CREATE_AND_UPDATE,
    Rollbacks.CONTROLLER_REVISIONS,
)
KINDS = [DEPLOYMENT, STATEFULSET]
GOLDEN = Path(__file__).parent / "golden_versions"
UPDATE = os.environ.get("CONFIGPIN_UPDATE_GOLDEN") == "1"
NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.UTC)
SECRET_VALUE = "unit-sentinel-secret-value-5521"


def at(minutes_ago: int) -> str:
    return (NOW - datetime.timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")


def template(pins: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": {"app": "web"}}
    if pins:
        metadata["annotations"] = {labels.PINS: json.dumps(pins)}
    config = pins.get("configmap/app-config", "app-config")
    db = pins.get("secret/db", "db")
    return {
        "metadata": metadata,
        "spec": {
            "containers": [
                {"name": "web", "image": "web:1", "envFrom": [{"secretRef": {"name": db}}]}
            ],
            "volumes": [{"name": "config", "configMap": {"name": config}}],
        },
    }


def replica_set(number: int, pins: dict[str, str], owner: str = "uid-web") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"web-{number}",
            "creationTimestamp": at(60 - number * 10),
            "annotations": {"deployment.kubernetes.io/revision": str(number)},
            "ownerReferences": [{"uid": owner, "controller": True}],
        },
        "spec": {"template": template(pins)},
    }


WORKLOAD = {"metadata": {"uid": "uid-web", "name": "web", "namespace": "shop"}}

SNAPSHOTS: dict[tuple[SourceKind, str], Snapshot] = {
    ("configmap", "app-config-aaaa"): Snapshot(
        "app-config-aaaa", NOW - datetime.timedelta(minutes=55), {"color": "blue", "size": "m"}
    ),
    ("configmap", "app-config-bbbb"): Snapshot(
        "app-config-bbbb",
        NOW - datetime.timedelta(minutes=35),
        {"color": "green", "size": "m", "motd": "line one\nline two\n"},
    ),
    ("configmap", "app-config-cccc"): Snapshot(
        "app-config-cccc", NOW - datetime.timedelta(minutes=25), {"color": "green"}
    ),
    ("secret", "db-xxxx"): Snapshot(
        "db-xxxx", NOW - datetime.timedelta(minutes=55), {"password": "b2xk"}
    ),
    ("secret", "db-yyyy"): Snapshot(
        "db-yyyy",
        NOW - datetime.timedelta(minutes=25),
        {"password": base64.b64encode(SECRET_VALUE.encode()).decode(), "user": "YXBw"},
    ),
}

# Five revisions: created, config edited, nothing pinned changed (image), config and secret
# edited, then the secret no longer referenced.
HISTORY = [
    replica_set(1, {"configmap/app-config": "app-config-aaaa", "secret/db": "db-xxxx"}),
    replica_set(2, {"configmap/app-config": "app-config-bbbb", "secret/db": "db-xxxx"}),
    replica_set(3, {"configmap/app-config": "app-config-bbbb", "secret/db": "db-xxxx"}),
    replica_set(4, {"configmap/app-config": "app-config-cccc", "secret/db": "db-yyyy"}),
    replica_set(5, {"configmap/app-config": "app-config-cccc"}),
]


def revisions() -> list[Revision]:
    # Out of order and with a ReplicaSet of another owner: the function sorts and filters.
    objects = [HISTORY[3], HISTORY[0], replica_set(9, {}, owner="uid-other"), *HISTORY[1:3]]
    return revisions_of(DEPLOYMENT, WORKLOAD, [*objects, HISTORY[4]])


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        assert not os.environ.get("CI"), "golden files are refreshed by hand, not in CI"
        path.write_text(actual, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with CONFIGPIN_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), f"{path} differs"


class TestTargets:
    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ("deploy/web", DEPLOYMENT),
            ("deployment.apps/web", DEPLOYMENT),
            ("Deployments/web", DEPLOYMENT),
            ("sts/web", STATEFULSET),
            ("statefulset/web", STATEFULSET),
        ],
    )
    def test_kubectl_names_of_a_kind(self, text: str, kind: Any) -> None:
        assert parse_target(text, KINDS) == (kind, "web")

    @pytest.mark.parametrize("text", ["web", "deploy/", "pod/web", "deploy/a/b", "ds/web"])
    def test_anything_else_is_a_usage_error(self, text: str) -> None:
        with pytest.raises(UsageError):
            parse_target(text, KINDS)

    def test_the_kinds_with_revisions_come_from_the_workload_table(self) -> None:
        kinds = versioned_kinds(Workloads())
        assert DEPLOYMENT in kinds and POD not in kinds and REPLICA_SET not in kinds


class TestRevisions:
    def test_owned_revisions_oldest_first(self) -> None:
        found = revisions()
        assert [r.number for r in found] == [1, 2, 3, 4, 5]
        assert found[0].pins == {"configmap/app-config": "app-config-aaaa", "secret/db": "db-xxxx"}

    def test_controller_revisions_read_their_stored_template(self) -> None:
        stored = {
            "metadata": {
                "name": "db-5d4f",
                "creationTimestamp": at(3),
                "ownerReferences": [{"uid": "uid-web", "controller": True}],
            },
            "revision": 2,
            "data": {
                "spec": {"template": {**template({"secret/db": "db-xxxx"}), "$patch": "replace"}}
            },
        }
        [revision] = revisions_of(STATEFULSET, WORKLOAD, [stored])
        assert revision.number == 2 and "$patch" not in revision.template
        assert revision.pins == {"secret/db": "db-xxxx"}

    def test_a_replicaset_not_yet_numbered_is_left_out(self) -> None:
        unnumbered = replica_set(1, {})
        del unnumbered["metadata"]["annotations"]
        assert revisions_of(DEPLOYMENT, WORKLOAD, [unnumbered]) == []


class TestHistory:
    def test_each_revision_says_which_snapshot_and_what_changed(self) -> None:
        rows = history(revisions(), SNAPSHOTS)
        summary = [
            (
                row.revision,
                row.live,
                [(s.source, s.snapshot, s.status, s.changes) for s in row.sources],
            )
            for row in rows
        ]
        assert summary == [
            (1, False, [
                ("configmap/app-config", "app-config-aaaa", "new", KeyChanges()),
                ("secret/db", "db-xxxx", "new", KeyChanges()),
            ]),
            (2, False, [
                ("configmap/app-config", "app-config-bbbb", "changed",
                 KeyChanges(("motd",), (), ("color",))),
                ("secret/db", "db-xxxx", "unchanged", KeyChanges()),
            ]),
            (3, False, [
                ("configmap/app-config", "app-config-bbbb", "unchanged", KeyChanges()),
                ("secret/db", "db-xxxx", "unchanged", KeyChanges()),
            ]),
            (4, False, [
                ("configmap/app-config", "app-config-cccc", "changed",
                 KeyChanges((), ("motd", "size"), ())),
                ("secret/db", "db-yyyy", "changed", KeyChanges(("user",), (), ("password",))),
            ]),
            (5, True, [
                ("configmap/app-config", "app-config-cccc", "unchanged", KeyChanges()),
                ("secret/db", None, "unpinned", KeyChanges()),
            ]),
        ]  # fmt: skip

    def test_a_snapshot_gone_is_said_so(self) -> None:
        rows = history(revisions()[:1], {})
        assert {s.status for s in rows[0].sources} == {"snapshot missing"}

    def test_key_changes(self) -> None:
        changes = key_changes({"a": "1", "b": "2", "c": "3"}, {"b": "2", "c": "4", "d": "5"})
        assert changes == KeyChanges(("d",), ("a",), ("c",))
        assert changes.summary() == "+d -a ~c"
        assert key_changes({"a": "1"}, {"a": "1"}) == KeyChanges()

    def test_table_layout(self) -> None:
        table = history_table(history(revisions(), SNAPSHOTS), NOW, color=False)
        check_golden("history.txt", table)
        assert "\033" not in table and SECRET_VALUE not in table
        assert len(table.splitlines()) == 1 + 5  # a header and one line per revision

    def test_table_on_a_terminal(self) -> None:
        check_golden("history-color.txt", history_table(history(revisions(), SNAPSHOTS), NOW, True))

    def test_document_for_scripts(self) -> None:
        document = history_document(DEPLOYMENT, "shop", "web", history(revisions(), SNAPSHOTS))
        check_golden("history.json", json.dumps(document, indent=2) + "\n")

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
         (20 * 3600, "20h"), (3 * 86400 + 3600, "3d1h"), (30 * 86400, "30d"),
         (3 * 365 * 86400, "3y")],
    )  # fmt: skip
    def test_ages_read_like_kubectls(self, seconds: int, text: str) -> None:
        assert human_age(seconds) == text


class TestDiff:
    def test_configmap_values_as_a_unified_diff_secrets_by_key_only(self) -> None:
        found = revisions()
        diffs = diff_sources(found[0], found[3], SNAPSHOTS)
        assert [(d.source, d.before, d.after) for d in diffs] == [
            ("configmap/app-config", "app-config-aaaa", "app-config-cccc"),
            ("secret/db", "db-xxxx", "db-yyyy"),
        ]
        text = "".join(d.text for d in diffs)
        check_golden("diff-1-4.txt", text)
        assert "-color: blue\n-size: m\n+color: green\n" in text
        assert "~password" in text and "+user" in text
        for value in (SECRET_VALUE, base64.b64encode(SECRET_VALUE.encode()).decode(), "b2xk"):
            assert value not in text

    def test_equal_revisions_have_no_diff(self) -> None:
        found = revisions()
        assert diff_sources(found[1], found[2], SNAPSHOTS) == []

    def test_multi_line_values_diff_line_by_line(self) -> None:
        found = revisions()
        text = diff_sources(found[1], found[3], SNAPSHOTS)[0].text
        assert "-motd: |\n-  line one\n-  line two\n" in text

    def test_a_source_no_longer_pinned_is_a_difference(self) -> None:
        found = revisions()
        [secret] = [
            d for d in diff_sources(found[3], found[4], SNAPSHOTS) if d.source == "secret/db"
        ]
        assert secret.after is None and "-password -user" in secret.text

    def test_a_missing_snapshot_cannot_be_compared(self) -> None:
        found = revisions()
        with pytest.raises(MissingSnapshotError):
            diff_sources(found[0], found[1], {})

    def test_binary_data_is_shown_by_hash(self) -> None:
        snapshot = snapshot_of("x", {"data": {"a": "1"}, "binaryData": {"blob": "AAEC"}})
        assert snapshot.content is not None
        assert snapshot.content["blob"].startswith("<binary, 4 base64 chars, sha256 ")


class TestUnpin:
    def test_names_the_sources_again_and_drops_the_pins(self) -> None:
        pinned = template({"configmap/app-config": "app-config-aaaa", "secret/db": "db-xxxx"})
        unpinned, pins = unpin(pinned)
        assert unpinned == template({})
        assert pins == {"configmap/app-config": "app-config-aaaa", "secret/db": "db-xxxx"}
        check_golden("unpin-dry-run.txt", template_diff("deployment.apps/web", pinned, unpinned))

    def test_an_unpinned_template_has_nothing_to_unpin(self) -> None:
        assert unpin(template({})) == (template({}), {})

    def test_releases_only_what_no_template_still_pins(self) -> None:
        web = {"configmap/app-config": "app-config-aaaa", "secret/db": "db-xxxx"}
        api = {"secret/db": "db-xxxx"}
        assert releasable([web], [api, {}]) == [("configmap", "app-config-aaaa")]
        assert releasable([web, api], []) == [
            ("configmap", "app-config-aaaa"),
            ("secret", "db-xxxx"),
        ]

    def test_templates_that_hold_snapshots_are_the_workloads_not_their_instances(self) -> None:
        kinds = template_kinds(Workloads())
        assert DEPLOYMENT in kinds and POD not in kinds and REPLICA_SET not in kinds
