"""RFC 6901 JSON pointers, built from path segments."""

from collections.abc import Iterable


def escape(segment: str | int) -> str:
    return str(segment).replace("~", "~0").replace("/", "~1")


def pointer(*segments: str | int) -> str:
    return "".join("/" + escape(s) for s in segments)


def join(base: str, segments: Iterable[str | int]) -> str:
    return base + pointer(*segments)
