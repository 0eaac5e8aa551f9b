"""The blue-green story with Argo Rollouts, kwok-run Pods and roll-on-change, driven with
kubectl and the `kubectl argo rollouts` plugin: a Secret edit starts the rollout by itself;
the preview Pods run the new snapshot and the active ones the old, even a replaced one;
promote; a bad config and a new image rolled out, then undone, bring back the previous
code and config and are not rolled forward again.

At every step every Pod of the active ReplicaSet references exactly the active revision's
snapshots, every preview Pod the preview's, and no Pod references a live source."""

import json
import time
from collections.abc import Callable, Iterator

import pytest

from app.kube.api import RawApi
from devkit import bluegreen
from devkit.bluegreen import Revision, argo_rollouts, live_references, settled
from devkit.controllerproc import ControllerGroup, roll_on_change_group
from devkit.kubectl import kubectl
from devkit.kubeobjects import b64
from devkit.localwebhook import Webhook
from tests.e2e.conftest import Namespaces

DEBOUNCE = 2.0
REPLICAS = 2
V1, V2 = "registry.example/shop/web:1.0", "registry.example/shop/web:2.0"


@pytest.fixture(scope="module")
def controllers(
    admin: RawApi,
    admin_kubeconfig: str,
    webhook: Webhook,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControllerGroup]:
    if admin.get(f"/apis/{bluegreen.ROLLOUT_API}") is None:
        pytest.skip("the dev cluster serves no Argo Rollouts API (scripts/dev-cluster)")
    workdir = tmp_path_factory.mktemp("bluegreen")
    key = webhook.certs / "hmac.key"
    with roll_on_change_group(admin, admin_kubeconfig, key, workdir, DEBOUNCE) as group:
        group.add("bluegreen-a")
        yield group


def checked(admin: RawApi, namespace: str, found: dict[str, Revision]) -> dict[str, Revision]:
    """Each Pod runs with exactly its revision's snapshots, none with a live source."""
    for role, revision in found.items():
        assert revision.pods_agree(), f"{role} Pods differ from their ReplicaSet: {revision}"
        assert {r.split("/")[0] for r in revision.snapshots} == {"secret", "configmap"}
    assert live_references(admin, namespace) == []
    return found


def step(
    admin: RawApi,
    namespace: str,
    preview: bool,
    ready: Callable[[dict[str, Revision]], bool] = lambda found: True,
) -> dict[str, Revision]:
    return checked(admin, namespace, settled(admin, namespace, preview, REPLICAS, ready))


def secret_of(revision: Revision) -> str:
    return next(r for r in revision.snapshots if r.startswith("secret/"))


def config_of(revision: Revision) -> str:
    return next(r for r in revision.snapshots if r.startswith("configmap/"))


def test_blue_green_with_roll_on_change(
    admin: RawApi, admin_kubeconfig: str, namespaces: Namespaces, controllers: ControllerGroup
) -> None:
    ns = namespaces.make()
    objects = [*bluegreen.sources(ns, "pw-1", "good"), *bluegreen.services(ns)]
    objects.append(bluegreen.rollout(ns, V1, REPLICAS))
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    kubectl(admin_kubeconfig, "apply", "-f", "-", stdin=manifest)
    argo_rollouts(admin_kubeconfig, ns, "status", bluegreen.APP, "--timeout", "150s")
    v1 = step(admin, ns, False)["active"]

    # The Secret is edited: the rollout starts by itself, preview on the new snapshot.
    kubectl(
        admin_kubeconfig, "-n", ns, "patch", "secret", "db", "--type=merge",
        "-p", json.dumps({"data": {"DB_PASSWORD": b64("pw-2")}}),
    )  # fmt: skip
    both = step(admin, ns, True)
    v2 = both["preview"]
    assert both["active"] == v1
    assert secret_of(v2) != secret_of(v1) and config_of(v2) == config_of(v1)

    # An active Pod deleted comes back on the old snapshot.
    victim = sorted(v1.pods)[0]
    kubectl(admin_kubeconfig, "-n", ns, "delete", "pod", victim, "--wait=false")
    replaced = step(admin, ns, True, lambda found: victim not in found["active"].pods)
    assert victim not in replaced["active"].pods
    assert replaced["active"].snapshots == v1.snapshots and replaced["preview"] == v2

    argo_rollouts(admin_kubeconfig, ns, "promote", bluegreen.APP)
    promoted = step(admin, ns, False, lambda found: found["active"].hash == v2.hash)
    assert promoted["active"].snapshots == v2.snapshots

    # A bad config and a new image, together: one new revision with both.
    kubectl(
        admin_kubeconfig, "-n", ns, "patch", "configmap", "app-config", "--type=merge",
        "-p", json.dumps({"data": {"mode": "bad"}}),
    )  # fmt: skip
    argo_rollouts(admin_kubeconfig, ns, "set", "image", bluegreen.APP, f"{bluegreen.APP}={V2}")
    v3 = step(admin, ns, True)["preview"]
    assert v3.image == V2 and config_of(v3) != config_of(v2) and secret_of(v3) == secret_of(v2)
    argo_rollouts(admin_kubeconfig, ns, "promote", bluegreen.APP)
    promoted = step(admin, ns, False, lambda found: found["active"].hash == v3.hash)

    # Undo brings back the previous code and config, and it stays.
    bluegreen.previous_scaled_down(admin, ns, promoted["active"])
    argo_rollouts(admin_kubeconfig, ns, "undo", bluegreen.APP)
    undone = step(admin, ns, True)["preview"]
    assert undone.image == V1 and undone.snapshots == v2.snapshots
    argo_rollouts(admin_kubeconfig, ns, "promote", bluegreen.APP)
    back = step(admin, ns, False, lambda found: found["active"].image == V1)
    assert back["active"].snapshots == v2.snapshots
    time.sleep(DEBOUNCE + 4)
    after = step(admin, ns, False)
    assert after["active"].snapshots == v2.snapshots, "the undo was rolled forward"
