"""The cluster's HMAC key kept in a Secret that configpin creates once and never changes."""

import base64
from typing import Any

from app.certs import new_hmac_key
from app.domain.naming import check_key
from app.kube.api import RawApi

KEY_FIELD = "key"


def read_hmac_key(api: RawApi, namespace: str, name: str) -> bytes | None:
    """The key, None while the Secret does not exist (the webhook creates it)."""
    secret = api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    return None if secret is None else _key_of(secret, namespace, name)


def ensure_hmac_key(api: RawApi, namespace: str, name: str) -> bytes:
    """Create-or-get: replicas starting together converge on the first one written, and an
    upgrade finds the key it had, so snapshot names stay stable."""
    path = f"/api/v1/namespaces/{namespace}/secrets"
    secret = api.get(f"{path}/{name}")
    if secret is None:  # read first: the usual case, and no key is generated for nothing
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "configpin"},
            },
            "type": "Opaque",
            "data": {KEY_FIELD: base64.b64encode(new_hmac_key()).decode()},
            "immutable": True,
        }
        secret, _ = api.create_or_get(path, body)
    return _key_of(secret, namespace, name)


def _key_of(secret: dict[str, Any], namespace: str, name: str) -> bytes:
    encoded = (secret.get("data") or {}).get(KEY_FIELD)
    if not isinstance(encoded, str):
        raise ValueError(f"Secret {namespace}/{name} has no '{KEY_FIELD}' entry")
    return check_key(base64.b64decode(encoded).strip())
