"""`configpin history` at its edges: kubectl's AGE at every boundary of apimachinery's
HumanDuration, and the table with no revision or nothing pinned."""

import datetime

import pytest

from app.domain.versions import HistoryRow, history_table, human_age

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
