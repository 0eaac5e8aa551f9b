"""RFC 6901 JSON pointers: `configpin.io/pins` is the segment `configpin.io~1pins`."""

from collections.abc import Mapping
from typing import Any


def escape(segment: str | int) -> str:
    return str(segment).replace("~", "~0").replace("/", "~1")


def unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def resolve(obj: Any, pointer: str) -> Any:
    """The value at `pointer` in `obj`, None when any step is missing."""
    node = obj
    for raw in pointer.split("/")[1:]:
        segment = unescape(raw)
        if isinstance(node, Mapping):
            node = node.get(segment)
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return None
    return node
