"""The chaos run's bounded workload: Deployments and StatefulSets in a few namespaces,
rolled out with the kubectl a person types (image changes, `rollout restart`, `rollout
undo`) while their sources are edited, some of them rolling on change; and the burst of
simultaneous creates that race for one brand-new source's first snapshot."""

import base64
import json
import logging
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.domain.rollonchange import ROLLOUT_ON_CHANGE
from app.kube.api import ApiError, ApiUnreachableError, RawApi, connect
from chaos.invariants import classify_denial
from devkit.kubectl import kubectl
from devkit.kubeobjects import collection, create_namespace

log = logging.getLogger("chaos")

OPT_IN = {"configpin.io/inject": "enabled"}
BURST_LABEL = "chaos.configpin.io/burst"
IMAGE = "registry.example/app"
ACTIONS = ("image", "restart", "undo")
# What a person does when a command fails for a reason that may pass (the API server
# restarting, etcd frozen, a webhook replica gone): wait a moment and type it again.
RETRY_SECONDS = 1.0
GIVE_UP_SECONDS = 90.0
# Failures that typing the command again cannot change.
PERMANENT = ("NotFound", "not found", "no rollout history found", "(Invalid)")


class Journal(Protocol):
    """What the workload tells the observer."""

    def record_edit(self, namespace: str, kind: str, name: str, data: dict[str, str]) -> None: ...

    def record_denial(self, reason: str, message: str) -> None: ...

    def record_rollout(self, namespace: str, kind: str, name: str) -> None: ...


def denial_of(stderr: str) -> tuple[str, str] | None:
    """(reason, message) when kubectl's error is an admission denial: configpin's own
    answer, or the API server's when it could not call the webhook (failurePolicy: Fail).
    Other failures (the API server unreachable, etcd timing out) are not admissions."""
    if "denied the request" in stderr or "failed calling webhook" in stderr:
        message = stderr.strip()
        return classify_denial(message), message
    return None


@dataclass
class Workload:
    namespace: str
    kind: str  # Deployment or StatefulSet
    name: str
    config: str  # its ConfigMap
    secret: str  # its Secret
    style: int  # how it references them: 0 env + volume, 1 envFrom, 2 projected volume
    roll_on_change: bool
    replicas: int
    image: int = 1
    rollouts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def resource(self) -> str:
        return f"{self.kind.lower()}/{self.name}"

    def manifest(self) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "app", "image": f"{IMAGE}:{self.image}"}
        volumes: list[dict[str, Any]] = []
        if self.style == 0:
            container["env"] = [
                {
                    "name": "PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": self.secret, "key": "value"}},
                }
            ]
            volumes = [{"name": "config", "configMap": {"name": self.config}}]
        elif self.style == 1:
            container["envFrom"] = [
                {"configMapRef": {"name": self.config}},
                {"secretRef": {"name": self.secret}},
            ]
        else:
            projected = [{"configMap": {"name": self.config}}, {"secret": {"name": self.secret}}]
            volumes = [{"name": "all", "projected": {"sources": projected}}]
        spec: dict[str, Any] = {
            "replicas": self.replicas,
            "revisionHistoryLimit": 3,  # old revisions go: their snapshots with them
            "selector": {"matchLabels": {"app": self.name}},
            "template": {
                "metadata": {"labels": {"app": self.name}},
                "spec": {"containers": [container], "volumes": volumes},
            },
        }
        if self.kind == "StatefulSet":
            spec |= {"serviceName": self.name, "podManagementPolicy": "Parallel"}
        annotations = {ROLLOUT_ON_CHANGE: "true"} if self.roll_on_change else {}
        return {
            "apiVersion": "apps/v1",
            "kind": self.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": annotations,
            },
            "spec": spec,
        }


@dataclass(frozen=True)
class Source:
    namespace: str
    kind: str  # ConfigMap or Secret
    name: str

    def data(self, version: int) -> dict[str, str]:
        """The whole `data` of this source at `version`, as stored (base64 for a Secret).
        The keys never change, so a merge patch of it leaves exactly this."""
        text = {"value": f"{self.name}-{version}", "version": str(version)}
        if self.kind == "Secret":
            return {k: base64.b64encode(v.encode()).decode() for k, v in text.items()}
        return text

    def manifest(self, version: int) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": self.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "data": self.data(version),
        }
        if self.kind == "Secret":
            obj["type"] = "Opaque"
        return obj


def layout(
    namespaces: Sequence[str], deployments: int, statefulsets: int, replicas: int
) -> tuple[list[Workload], list[Source]]:
    """Workloads spread over the namespaces; two workloads of a namespace share a ConfigMap
    and a Secret; every third one rolls on change."""
    workloads: list[Workload] = []
    sources: list[Source] = []
    kinds = ["Deployment"] * deployments + ["StatefulSet"] * statefulsets
    in_namespace: Counter[str] = Counter()
    for index, kind in enumerate(kinds):
        namespace = namespaces[index % len(namespaces)]
        local = in_namespace[namespace]
        in_namespace[namespace] += 1
        pair = local // 2
        config, secret = f"config-{pair}", f"secret-{pair}"
        if local % 2 == 0:
            sources += [Source(namespace, "ConfigMap", config), Source(namespace, "Secret", secret)]
        prefix = "web" if kind == "Deployment" else "db"
        workloads.append(
            Workload(
                namespace,
                kind,
                f"{prefix}-{index}",
                config,
                secret,
                style=index % 3,
                roll_on_change=index % 3 == 0,
                replicas=replicas,
            )
        )
    return workloads, sources


class Driver:
    """Types the workload's commands with kubectl, from several threads at once."""

    def __init__(
        self,
        kubeconfig: str,
        admin: RawApi,
        journal: Journal,
        workloads: Sequence[Workload],
        sources: Sequence[Source],
    ) -> None:
        self.kubeconfig = kubeconfig
        self.admin = admin
        self.journal = journal
        self.workloads = list(workloads)
        self.sources = list(sources)
        self.stop = threading.Event()
        self.rollouts: Counter[str] = Counter()  # done, by action
        self.edits = 0
        self.denials: Counter[str] = Counter()
        self.retries = 0
        self.errors: Counter[str] = Counter()  # commands given up on, by first error line
        self.unfinished = 0  # `rollout status` that timed out
        self.bursts: Counter[str] = Counter()  # burst creates by outcome
        self._versions: Counter[Source] = Counter()
        self._claimed = 0
        self._lock = threading.Lock()
        self._image = 1
        self._burst = 0

    # -- commands

    def type(self, *args: str, what: str, stdin: str | None = None) -> bool:
        """Run kubectl as a person would: typed again after a failure that may pass, each
        admission denial reported; False when it was given up."""
        give_up = time.monotonic() + GIVE_UP_SECONDS
        while True:
            try:
                result = kubectl(self.kubeconfig, *args, stdin=stdin, check=False, timeout=60)
                stderr = result.stderr
                if result.returncode == 0:
                    return True
            except subprocess.TimeoutExpired:
                stderr = "kubectl timed out"
            if denial := denial_of(stderr):
                self.journal.record_denial(*denial)
                with self._lock:
                    self.denials[denial[0]] += 1
            permanent = any(word in stderr for word in PERMANENT)
            if permanent or time.monotonic() > give_up or self.stop.is_set():
                first = (stderr.strip().splitlines() or ["?"])[0][:160]
                log.warning("gave up on kubectl %s: %s", what, first)
                with self._lock:
                    self.errors[f"{what}: {first}"] += 1
                return False
            with self._lock:
                self.retries += 1
            time.sleep(RETRY_SECONDS)

    def apply(self, objects: Sequence[dict[str, Any]]) -> None:
        manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
        if not self.type("apply", "-f", "-", stdin=manifest, what="apply"):
            raise RuntimeError("kubectl apply of the workload failed")

    # -- set-up

    def create(self, namespaces: Sequence[str]) -> None:
        for namespace in namespaces:
            create_namespace(self.admin, namespace, OPT_IN)
        for source in self.sources:
            self.journal.record_edit(source.namespace, source.kind, source.name, source.data(0))
        self.apply([s.manifest(0) for s in self.sources])
        self.apply([w.manifest() for w in self.workloads])
        self.settle(timeout=180)

    def settle(self, timeout: float) -> None:
        """Wait for every workload's rollout to finish, the slowest bounding the wait."""
        end = time.monotonic() + timeout
        for w in self.workloads:
            left = max(5, round(end - time.monotonic()))
            done = self.type(
                "-n", w.namespace, "rollout", "status", w.resource, f"--timeout={left}s",
                what="rollout status",
            )  # fmt: skip
            if not done:
                self.unfinished += 1

    # -- rollouts

    def _claim(self, target: int) -> bool:
        with self._lock:
            if self._claimed >= target:
                return False
            self._claimed += 1
            return True

    def _unclaim(self) -> None:
        with self._lock:
            self._claimed -= 1

    def roll(self, target: int, seed: int, pause: tuple[float, float]) -> None:
        """One worker: rollouts until `target` are done between all workers."""
        rng = random.Random(seed)
        while not self.stop.is_set() and self._claim(target):
            workload = self._free_workload(rng)
            try:
                action = rng.choice(ACTIONS if workload.rollouts else ACTIONS[:2])
                if self._rollout(workload, action):
                    workload.rollouts += 1
                    with self._lock:
                        self.rollouts[action] += 1
                else:
                    self._unclaim()
                    time.sleep(RETRY_SECONDS)
            finally:
                workload.lock.release()
            self.stop.wait(rng.uniform(*pause))

    def _free_workload(self, rng: random.Random) -> Workload:
        while True:
            workload = rng.choice(self.workloads)
            if workload.lock.acquire(blocking=False):
                return workload
            time.sleep(0.05)

    def _rollout(self, w: Workload, action: str) -> bool:
        where = ("-n", w.namespace)
        # Before the request: its admission, and so its pins, can only come after this.
        self.journal.record_rollout(w.namespace, w.kind, w.name)
        if action == "image":
            with self._lock:
                self._image += 1
                w.image = self._image
            done = self.type(
                *where, "set", "image", w.resource, f"app={IMAGE}:{w.image}", what="set image"
            )
        else:
            done = self.type(*where, "rollout", action, w.resource, what=f"rollout {action}")
        if done and not self.type(
            *where, "rollout", "status", w.resource, "--timeout=60s", what="rollout status"
        ):
            with self._lock:
                self.unfinished += 1
        return done

    # -- source edits

    def edit(self, interval: float, until: Callable[[], bool], seed: int) -> None:
        """Edit one source at a time, every `interval` seconds, until `until()`."""
        rng = random.Random(seed)
        while not self.stop.is_set() and not until():
            source = rng.choice(self.sources)
            self._versions[source] += 1
            data = source.data(self._versions[source])
            # Written down before it is sent: what the source's data may hold from now on.
            self.journal.record_edit(source.namespace, source.kind, source.name, data)
            patch = json.dumps({"data": data})
            if self.type(
                "-n", source.namespace, "patch", source.kind.lower(), source.name,
                "--type=merge", "-p", patch, what=f"patch {source.kind.lower()}",
            ):  # fmt: skip
                self.edits += 1
            self.stop.wait(rng.uniform(0.5 * interval, 1.5 * interval))

    # -- the burst

    def burst(self, namespace: str, count: int) -> str:
        """`count` Pods created at the same instant, each referencing one brand-new
        ConfigMap: every admission races to create its first snapshot."""
        self._burst += 1
        name = f"burst-{self._burst}"
        self.type(
            "delete", "pods", "-A", "-l", BURST_LABEL, "--wait=false", what="delete burst pods"
        )
        source = Source(namespace, "ConfigMap", name)
        self.journal.record_edit(namespace, "ConfigMap", name, source.data(0))
        self.apply([source.manifest(0)])
        clients = [RawApi(connect(self.kubeconfig), timeout_seconds=30) for _ in range(count)]
        start = threading.Barrier(count)
        outcomes: Counter[str] = Counter()

        def create(index: int) -> None:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{index}",
                    "namespace": namespace,
                    "labels": {BURST_LABEL: name},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"{IMAGE}:1",
                            "envFrom": [{"configMapRef": {"name": name}}],
                        }
                    ]
                },
            }
            start.wait()
            try:
                clients[index].create(collection("v1", "Pod", namespace), pod)
                outcome = "created"
            except ApiError as error:
                outcome = f"refused {error.status}"
                self.journal.record_denial(f"burst-{error.status}", str(error))
            except ApiUnreachableError as error:
                outcome = f"unreachable: {error}"
            with self._lock:
                outcomes[outcome] += 1

        threads = [threading.Thread(target=create, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.bursts.update(outcomes)
        return f"{count} Pods on ConfigMap {namespace}/{name}: " + ", ".join(
            f"{n} {outcome}" for outcome, n in sorted(outcomes.items())
        )

    def end_bursts(self) -> None:
        self.type(
            "delete", "pods", "-A", "-l", BURST_LABEL, "--wait=true", "--timeout=60s",
            what="delete burst pods",
        )  # fmt: skip
