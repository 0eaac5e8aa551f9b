"""Kubernetes timestamps (RFC 3339, `Z` for UTC) as datetimes."""

import datetime


def parse_time(value: object) -> datetime.datetime | None:
    """A metadata timestamp such as `creationTimestamp`; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value)  # reads `Z` since Python 3.11
    except ValueError:
        return None
