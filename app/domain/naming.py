"""Snapshot names: `<source-name>-<digest>`, the digest a keyed HMAC of the content.

Keyed, so that a snapshot's name reveals nothing about a low-entropy Secret; deterministic,
so every replica, retry and dry-run computes the same name for the same content.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from app.domain.references import SourceKind

DIGEST_LENGTH = 10
MAX_NAME_LENGTH = 253  # a DNS subdomain, the limit for ConfigMap and Secret names
MIN_KEY_BYTES = 16

# Consonants and digits without vowels or look-alikes, as Kubernetes' own generated names
# use, so that a digest never spells a word.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class InvalidKeyError(ValueError):
    pass


def check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise InvalidKeyError(
            f"the HMAC key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}"
        )
    return key


def content_digest(
    key: bytes, kind: SourceKind, source: Mapping[str, Any], *, bound: bool = True
) -> str:
    """The digest of a source's pinned content (kind, type for Secrets, data, binaryData),
    bound to its namespace and name: the same password in `dev/db` and `prod/db-prod` gives
    two unrelated names, so a name reveals no equality across sources. `bound=False` is the
    digest of snapshots made before names were bound, still recognised as configpin's."""
    metadata = source.get("metadata") or {}
    fields: dict[str, Any] = {
        "kind": kind,
        "type": (source.get("type") or "") if kind == "secret" else "",
        "data": source.get("data") or {},
        "binaryData": source.get("binaryData") or {},
    }
    if bound:
        fields |= {"namespace": metadata.get("namespace") or "", "name": metadata.get("name") or ""}
    canonical = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    number = int.from_bytes(hmac.new(key, canonical, hashlib.sha256).digest(), "big")
    chars = []
    for _ in range(DIGEST_LENGTH):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def snapshot_name(source_name: str, digest: str) -> str:
    """`<source>-<digest>`, the source part shortened to keep the name within 253 chars."""
    room = MAX_NAME_LENGTH - len(digest) - 1
    # A cut may end on '.' or '-', which a DNS subdomain label may not end with.
    prefix = source_name[:room].rstrip(".-") if len(source_name) > room else source_name
    return f"{prefix}-{digest}"
