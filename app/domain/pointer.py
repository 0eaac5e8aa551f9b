"""RFC 6901 JSON pointers: `configpin.io/pins` is the segment `configpin.io~1pins`."""


def escape(segment: str | int) -> str:
    return str(segment).replace("~", "~0").replace("/", "~1")
