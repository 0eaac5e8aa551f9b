"""`configpin history` at its edges: kubectl's AGE at every boundary of apimachinery's
HumanDuration, and the table with no revision or nothing pinned."""

import datetime
import hashlib

import pytest

from app.domain.versions import (
    BOLD,
    GREEN,
    RED,
    RESET,
    HistoryRow,
    Snapshot,
    binary_marker,
    colored_diff,
    history_table,
    human_age,
    snapshot_of,
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
