"""Lists in warnings, denials and log lines, kept to a readable length."""

from collections.abc import Sequence

LISTED = 10


def listed(items: Sequence[str], limit: int = LISTED) -> str:
    """`a, b, c` or, past `limit` items, `a, b, ... and 4,990 more`."""
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest:,} more" if rest > 0 else shown
