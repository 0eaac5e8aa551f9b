"""The Pod rule's matchConditions, evaluated by the real API server: a Pod that its
controller made from a pinned template is not sent to configpin, and every Pod that could
need pinning still is."""

from typing import Any

from app.kube.api import RawApi
from devkit.kubeobjects import configmap, create, unmanaged_owner
from devkit.localwebhook import Webhook
from tests.e2e.conftest import Namespaces

PINS = "configpin.io/pins"


def reviews(webhook: Webhook) -> float:
    return sum(webhook.metric("configpin_admission_reviews_total").values())


def pod(namespace: str, name: str, config: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1",
                    "envFrom": [{"configMapRef": {"name": config}}],
                }
            ]
        },
    }


def test_a_pinned_pod_of_a_controller_is_not_sent_and_any_other_pod_is(
    admin: RawApi, webhook: Webhook, namespaces: Namespaces
) -> None:
    namespace = namespaces.make()
    create(admin, configmap(namespace, "app-config", {"color": "blue"}))
    owner = unmanaged_owner(admin, namespace, "owner")
    pins = {"annotations": {PINS: '{"configmap/app-config":"app-config-v1"}'}}

    counted = reviews(webhook)
    create(admin, pod(namespace, "steady", "app-config-v1", ownerReferences=[owner], **pins))
    assert reviews(webhook) == counted  # skipped by the API server

    owned_unpinned = pod(namespace, "owned-unpinned", "app-config", ownerReferences=[owner])
    create(admin, owned_unpinned)
    assert reviews(webhook) == counted + 1

    not_controller = pod(
        namespace,
        "owned-not-controller",
        "app-config-v1",
        ownerReferences=[{**owner, "controller": False}],
        **pins,
    )
    create(admin, not_controller)
    assert reviews(webhook) == counted + 2


def test_a_bare_pod_with_unpinned_references_still_gets_pinned_even_with_a_pins_annotation(
    admin: RawApi, webhook: Webhook, namespaces: Namespaces
) -> None:
    namespace = namespaces.make()
    create(admin, configmap(namespace, "app-config", {"color": "blue"}))
    stale = {"annotations": {PINS: '{"configmap/other":"other-v1"}'}}

    created = create(admin, pod(namespace, "bare", "app-config", **stale))

    name = created["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    assert name != "app-config" and name.startswith("app-config-")
    assert "configmap/app-config" in created["metadata"]["annotations"][PINS]
