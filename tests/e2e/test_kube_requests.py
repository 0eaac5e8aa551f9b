"""The API requests configpin makes, counted by its own metric against the real API server:
one read per source and one create per new snapshot for a Deployment, none for its Pods."""

from app.kube.api import RawApi
from devkit.kubeobjects import configmap, create, eventually, items, secret, sources_deployment
from devkit.localwebhook import Webhook
from tests.e2e.conftest import Namespaces

Counts = dict[tuple[str, str], float]


def kube_requests(webhook: Webhook) -> Counts:
    """configpin_kube_requests_total by (verb, resource)."""
    found = webhook.metric("configpin_kube_requests_total")
    return {(dict(labels)["verb"], dict(labels)["resource"]): n for labels, n in found.items()}


def delta(before: Counts, after: Counts) -> Counts:
    return {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}


def test_a_deployment_reads_each_source_once_creates_each_snapshot_once_and_its_pods_ask_nothing(
    admin: RawApi, webhook: Webhook, namespaces: Namespaces
) -> None:
    namespace = namespaces.make()
    sources = [configmap(namespace, f"config-{i}", {"n": str(i)}) for i in range(3)] + [
        secret(namespace, f"secret-{i}", {"n": str(i)}) for i in range(2)
    ]
    for source in sources:
        create(admin, source)
    before = kube_requests(webhook)

    create(admin, sources_deployment(namespace, "web", sources, replicas=3))
    eventually(
        lambda: len(items(admin, "v1", "Pod", namespace)) == 3 or None,
        what="the Deployment's three Pods",
    )
    made = delta(before, kube_requests(webhook))

    # The namespace's labels may be read once (cached for seconds); nothing else is asked.
    made.pop(("get", "namespaces"), None)
    assert made == {
        ("get", "configmaps"): 3,
        ("get", "secrets"): 2,
        ("create", "configmaps"): 3,
        ("create", "secrets"): 2,
    }
