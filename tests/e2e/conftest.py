"""Session fixtures: a real control plane, and configpin serving over TLS under its own
least-privilege identity, registered with the chart's webhook configuration."""

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.kube.api import RawApi, connect
from devkit.devcluster import ensure_cluster, teardown_cluster
from devkit.kubeobjects import create_namespace, delete
from devkit.localwebhook import Webhook, webhook_identity


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def admin_kubeconfig() -> Iterator[str]:
    kubeconfig, started = ensure_cluster()
    yield kubeconfig
    if started:
        teardown_cluster()


@pytest.fixture(scope="session")
def admin(admin_kubeconfig: str) -> RawApi:
    return RawApi(connect(admin_kubeconfig), timeout_seconds=30)


@pytest.fixture(scope="session")
def webhook_kubeconfig(
    admin: RawApi, admin_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    return webhook_identity(admin, admin_kubeconfig, tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="session")
def webhook(
    admin: RawApi, webhook_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhook]:
    server = Webhook(webhook_kubeconfig, tmp_path_factory.mktemp("serve"))
    server.start()
    config = server.register(admin)
    try:
        yield server
    finally:
        delete(admin, config)
        server.stop()


class Namespaces:
    """Fresh namespaces per test, opted in unless asked otherwise, deleted afterwards."""

    def __init__(self, admin: RawApi) -> None:
        self.admin = admin
        self.made: list[dict[str, Any]] = []

    def make(self, opted_in: bool = True) -> str:
        name = f"e2e-{os.getpid()}-{time.monotonic_ns() % 10**8}"
        labels = {"configpin.io/inject": "enabled"} if opted_in else {}
        self.made.append(create_namespace(self.admin, name, labels))
        return name


@pytest.fixture
def namespaces(admin: RawApi, webhook: Webhook) -> Iterator[Namespaces]:
    made = Namespaces(admin)
    yield made
    for obj in made.made:
        delete(admin, obj)
