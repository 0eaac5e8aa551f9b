"""The HMAC key Secret: created once by whichever replica comes first, kept after that, and
made under the chart's own identity."""

import base64
from collections.abc import Iterator

import pytest

from app.kube.api import RawApi, connect
from app.kube.keys import ensure_hmac_key
from devkit.kubeobjects import delete, get
from devkit.localwebhook import SYSTEM_NAMESPACE

NAME = "configpin-e2e-hmac-key"


@pytest.fixture
def identity(webhook_kubeconfig: str, admin: RawApi) -> Iterator[RawApi]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": NAME, "namespace": SYSTEM_NAMESPACE},
    }
    delete(admin, secret)
    yield RawApi(connect(webhook_kubeconfig), timeout_seconds=10)
    delete(admin, secret)


def test_the_key_is_created_once_and_kept(identity: RawApi, admin: RawApi) -> None:
    first = ensure_hmac_key(identity, SYSTEM_NAMESPACE, NAME)
    again = ensure_hmac_key(identity, SYSTEM_NAMESPACE, NAME)
    assert first == again and len(first) >= 32
    stored = get(admin, "v1", "Secret", SYSTEM_NAMESPACE, NAME)
    assert stored is not None and stored["immutable"] is True
    assert base64.b64decode(stored["data"]["key"]) == first
