"""`configpin history`, `diff` and their messages at the edges: kubectl's AGE at every
boundary of apimachinery's HumanDuration, the table with no revision, nothing pinned, a source
not pinned yet or a snapshot gone, revisions not numbered yet, diffs of values with line breaks
or trailing spaces, and the exact words of each usage error."""

import datetime
import hashlib
import re

import pytest

from app.domain.references import SourceKind
from app.domain.versions import (
    BOLD,
    GREEN,
    RED,
    RESET,
    HistoryRow,
    MissingSnapshotError,
    Revision,
    Snapshot,
    SourceState,
    UsageError,
    binary_marker,
    colored_diff,
    diff_sources,
    history,
    history_table,
    human_age,
    parse_target,
    resource_name,
    revisions_of,
    snapshot_of,
    versioned_kinds,
)
from app.domain.workloads import DEPLOYMENT, POD, Workloads
from tests.test_versions import (
    SNAPSHOTS,
    STATEFULSET,
    WORKLOAD,
    replica_set,
    revisions,
    template,
)

MINUTE, HOUR, DAY, YEAR = 60, 3600, 86400, 365 * 86400
NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (121, "2m1s"), (599, "9m59s"),
        (600, "10m"), (601, "10m"), (3 * HOUR - 1, "179m"), (3 * HOUR, "3h"),
        (3 * HOUR + MINUTE, "3h1m"), (8 * HOUR - 1, "7h59m"), (8 * HOUR, "8h"),
        (8 * HOUR + MINUTE, "8h"), (48 * HOUR - 1, "47h"), (48 * HOUR, "2d"),
        (48 * HOUR + HOUR, "2d1h"), (8 * DAY - 1, "7d23h"), (8 * DAY, "8d"),
        (8 * DAY + HOUR, "8d"), (2 * YEAR - 1, "729d"), (2 * YEAR, "2y"),
        (2 * YEAR + DAY, "2y1d"), (8 * YEAR - 1, "7y364d"), (8 * YEAR, "8y"),
        (8 * YEAR + DAY, "8y"),
    ],
)  # fmt: skip
def test_ages_read_like_kubectls_at_every_boundary(seconds: int, text: str) -> None:
    assert human_age(seconds) == text


def test_no_revisions() -> None:
    assert history_table([], NOW, color=False) == "No revisions found.\n"


def test_revisions_that_pin_nothing_say_so() -> None:
    rows = [
        HistoryRow(1, "web-1", NOW - datetime.timedelta(hours=3), False, ()),
        HistoryRow(2, "web-2", None, True, ()),
    ]
    assert history_table(rows, NOW, color=False).splitlines() == [
        "REVISION   AGE         LIVE   SOURCES",
        "1          3h                 (nothing pinned)",
        "2          <unknown>   *      (nothing pinned)",
    ]


def test_a_colored_diff_marks_headers_removals_and_additions() -> None:
    text = "--- a\n+++ b\n@@ -1 +1 @@\n-old\n+new\n same\n"
    assert colored_diff(text) == (
        f"{BOLD}--- a{RESET}\n{BOLD}+++ b{RESET}\n@@ -1 +1 @@\n"
        f"{RED}-old{RESET}\n{GREEN}+new{RESET}\n same\n"
    )


def test_a_snapshot_read_back_has_its_time_and_content() -> None:
    obj = {
        "metadata": {"creationTimestamp": "2026-11-27T10:00:00Z"},
        "data": {"a": "1"},
        "binaryData": {"b": "AAEC"},
    }
    assert snapshot_of("cfg-x", obj) == Snapshot(
        "cfg-x",
        datetime.datetime(2026, 11, 27, 10, tzinfo=datetime.UTC),
        {"a": "1", "b": binary_marker("AAEC")},
    )
    assert snapshot_of("cfg-x", None) == Snapshot("cfg-x", None, None)
    digest = hashlib.sha256(b"AAEC").hexdigest()[:12]
    assert binary_marker("AAEC") == f"<binary, 4 base64 chars, sha256 {digest}>"


# --- read back against the revisions of tests/test_versions.py ----------------------------


def cells(table: str) -> list[list[str]]:
    """The table's cells, line by line (columns are three spaces or more apart; an empty
    cell disappears)."""
    return [re.split(r" {3,}", line) for line in table.splitlines()]


def test_a_kind_is_named_as_kubectl_prints_it() -> None:
    assert resource_name(DEPLOYMENT) == "deployment.apps"
    assert resource_name(POD) == "pod"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web", "expected KIND/NAME (deployment/web, sts/db), got 'web'"),
        ("deploy/a/b", "expected KIND/NAME (deployment/web, sts/db), got 'deploy/a/b'"),
        (
            "pod/web",
            "'pod' is not a workload kind with revisions"
            " (Deployment, StatefulSet, DaemonSet, Rollout)",
        ),
    ],
)
def test_a_usage_error_says_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_target(text, versioned_kinds(Workloads()))
    assert str(raised.value) == message


def test_a_replicaset_not_yet_numbered_hides_no_other() -> None:
    unnumbered = replica_set(2, {})
    del unnumbered["metadata"]["annotations"]
    found = revisions_of(DEPLOYMENT, WORKLOAD, [unnumbered, replica_set(1, {})])
    assert [revision.number for revision in found] == [1]


def test_a_controller_revision_stored_without_a_patch_directive_is_read_as_it_is() -> None:
    stored = {
        "metadata": {"name": "db-1", "ownerReferences": [{"uid": "uid-web", "controller": True}]},
        "revision": 1,
        "data": {"spec": {"template": template({"secret/db": "db-xxxx"})}},
    }
    [revision] = revisions_of(STATEFULSET, WORKLOAD, [stored])
    assert revision.template == template({"secret/db": "db-xxxx"})


# As ClusterVersions reads them: every snapshot a revision pins, with no content once deleted;
# and the same snapshot left out altogether.
GONE = [
    {**SNAPSHOTS, ("configmap", "app-config-aaaa"): Snapshot("app-config-aaaa", None, None)},
    {key: value for key, value in SNAPSHOTS.items() if key != ("configmap", "app-config-aaaa")},
]


@pytest.mark.parametrize("snapshots", GONE)
def test_a_snapshot_gone_is_said_missing_and_the_next_only_changed(
    snapshots: dict[tuple[SourceKind, str], Snapshot],
) -> None:
    rows = history(revisions()[:2], snapshots)
    assert [row.sources[0] for row in rows] == [
        SourceState("configmap/app-config", "app-config-aaaa", None, "snapshot missing"),
        # Which keys changed since a snapshot gone is unknown: not "+color +size".
        SourceState(
            "configmap/app-config",
            "app-config-bbbb",
            NOW - datetime.timedelta(minutes=35),
            "changed",
        ),
    ]
    assert cells(history_table(rows, NOW, color=False))[1:] == [
        ["1", "50m", "app-config-aaaa (snapshot missing)", "db-xxxx (55m) new"],
        ["2", "40m", "*", "app-config-bbbb (35m) changed", "db-xxxx (55m) unchanged"],
    ]


def test_a_source_not_pinned_yet_is_a_dash() -> None:
    objects = [
        replica_set(1, {"configmap/app-config": "app-config-aaaa"}),
        replica_set(2, {"configmap/app-config": "app-config-aaaa", "secret/db": "db-xxxx"}),
    ]
    rows = history(revisions_of(DEPLOYMENT, WORKLOAD, objects), SNAPSHOTS)
    assert cells(history_table(rows, NOW, color=False)) == [
        ["REVISION", "AGE", "LIVE", "configmap/app-config", "secret/db"],
        ["1", "50m", "app-config-aaaa (55m) new", "-"],
        ["2", "40m", "*", "app-config-aaaa (55m) unchanged", "db-xxxx (55m) new"],
    ]


def test_a_source_pinned_on_one_side_only_is_labelled_not_pinned() -> None:
    found = revisions()
    [dropped] = diff_sources(found[3], found[4], SNAPSHOTS)
    assert dropped.text == (
        "--- secret/db revision 4 (db-yyyy)\n+++ secret/db revision 5 (not pinned)\n"
        "-password -user\n"
    )
    [added] = diff_sources(found[4], found[3], SNAPSHOTS)
    assert added.text == (
        "--- secret/db revision 5 (not pinned)\n+++ secret/db revision 4 (db-yyyy)\n"
        "+password +user\n"
    )


def pinned_to(number: int, pins: dict[str, str]) -> Revision:
    return Revision(number, f"web-{number}", None, template(pins))


def test_secrets_of_the_same_keys_and_values_say_what_else_may_differ() -> None:
    same = Snapshot("db-zzzz", None, SNAPSHOTS[("secret", "db-xxxx")].content)
    snapshots = {**SNAPSHOTS, ("secret", "db-zzzz"): same}
    [diff] = diff_sources(
        pinned_to(1, {"secret/db": "db-xxxx"}), pinned_to(2, {"secret/db": "db-zzzz"}), snapshots
    )
    assert diff.text == (
        "--- secret/db revision 1 (db-xxxx)\n+++ secret/db revision 2 (db-zzzz)\n"
        "same keys and values (type or encoding differs)\n"
    )


def test_a_missing_snapshot_is_named_in_the_error() -> None:
    found = revisions()
    with pytest.raises(MissingSnapshotError) as raised:
        diff_sources(found[0], found[1], {})
    assert str(raised.value) == (
        "configmap snapshot app-config-aaaa no longer exists: cannot compare"
    )


def configmap_diff(before: dict[str, str], after: dict[str, str]) -> str:
    snapshots: dict[tuple[SourceKind, str], Snapshot] = {
        ("configmap", "cfg-before"): Snapshot("cfg-before", None, before),
        ("configmap", "cfg-after"): Snapshot("cfg-after", None, after),
    }
    [diff] = diff_sources(
        pinned_to(1, {"configmap/app-config": "cfg-before"}),
        pinned_to(2, {"configmap/app-config": "cfg-after"}),
        snapshots,
    )
    return diff.text


def test_a_value_with_a_line_break_is_a_block_that_says_how_it_ends() -> None:
    # A file read into a ConfigMap ends with a line break: a block, not `key: value` with
    # the break inside (an empty line in the diff).
    values = {"clip": "blue\n", "keep": "a\n\n", "plain": "x", "strip": "a\nb"}
    assert configmap_diff(values, {"plain": "x"}) == (
        "--- configmap/app-config revision 1 (cfg-before)\n"
        "+++ configmap/app-config revision 2 (cfg-after)\n"
        "@@ -1,9 +1 @@\n"
        "-clip: |\n-  blue\n-keep: |+\n-  a\n-  \n plain: x\n-strip: |-\n-  a\n-  b\n"
    )


def test_values_that_differ_only_in_their_last_line_break_differ() -> None:
    assert configmap_diff({"motd": "hello\n"}, {"motd": "hello"}).splitlines()[2:] == [
        "@@ -1,2 +1 @@",
        "-motd: |",
        "-  hello",
        "+motd: hello",
    ]
    assert configmap_diff({"motd": "a\nb\n"}, {"motd": "a\nb"}).splitlines()[2:] == [
        "@@ -1,3 +1,3 @@",
        "-motd: |",
        "+motd: |-",
        "   a",
        "   b",
    ]


def test_a_colored_diff_keeps_every_space_of_a_line() -> None:
    # A value that differs by a trailing space must still show it.
    assert colored_diff("--- a \n+++ b \n-x: blue \n+x: blue\n  y \n") == (
        f"{BOLD}--- a {RESET}\n{BOLD}+++ b {RESET}\n{RED}-x: blue {RESET}\n"
        f"{GREEN}+x: blue{RESET}\n  y \n"
    )
