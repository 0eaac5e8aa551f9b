"""`configpin controller` as child processes under the chart's controller identity, and a
stand-in kubelet for the chart's uninstall hook (nothing here runs containers)."""

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.kube.api import RawApi
from devkit.kubeobjects import create, delete, eventually, get
from devkit.localwebhook import (
    RELEASE,
    SYSTEM_NAMESPACE,
    helm_template,
    service_account_kubeconfig,
)

CONTROLLER_ACCOUNT = f"{RELEASE}-controller"  # the chart's names for release "configpin"
LEASE = CONTROLLER_ACCOUNT

# Fast enough for tests: a pass a second, takeover within 4 s.
FAST = {
    "CONFIGPIN_CONTROLLER_RESYNC_SECONDS": "1",
    "CONFIGPIN_RELEASE_SETTLE_SECONDS": "2",
    "CONFIGPIN_LEASE_DURATION_SECONDS": "4",
    "CONFIGPIN_LEASE_RENEW_DEADLINE_SECONDS": "3",
    "CONFIGPIN_LEASE_RETRY_SECONDS": "1",
    "CONFIGPIN_METRICS_PORT": "0",
}


def controller_identity(admin: RawApi, admin_kubeconfig: str, workdir: Path) -> str:
    """A kubeconfig of the chart's controller ServiceAccount, bound to the chart's controller
    RBAC (the chart's Deployment itself is not made: the processes run here)."""
    if get(admin, "v1", "Namespace", None, SYSTEM_NAMESPACE) is None:
        create(
            admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
        )
    for obj in helm_template(show_only=["templates/controller.yaml"]):
        if obj["kind"] != "Deployment":
            delete(admin, obj)
            create(admin, obj)
    return service_account_kubeconfig(
        admin,
        admin_kubeconfig,
        SYSTEM_NAMESPACE,
        CONTROLLER_ACCOUNT,
        workdir / "controller.kubeconfig",
    )


class Controller:
    """One `configpin controller` process; `identity` names it in the Lease."""

    def __init__(
        self, kubeconfig: str, workdir: Path, identity: str, env: Mapping[str, str]
    ) -> None:
        self.kubeconfig = kubeconfig
        self.identity = identity
        self.log = workdir / f"controller-{identity}.log"
        self.env = {
            **os.environ,
            **FAST,
            "CONFIGPIN_NAMESPACE": SYSTEM_NAMESPACE,
            "CONFIGPIN_LEASE_NAME": LEASE,
            "CONFIGPIN_POD_NAME": identity,
            **env,
        }
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "controller", "--kubeconfig", self.kubeconfig],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class ControllerGroup:
    """Controller processes started one after another with the same settings."""

    def __init__(self, kubeconfig: str, workdir: Path, env: Mapping[str, str]) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.env = dict(env)
        self.running: list[Controller] = []

    def add(self, identity: str) -> Controller:
        controller = Controller(self.kubeconfig, self.workdir, identity, self.env)
        controller.start()
        self.running.append(controller)
        return controller

    def stop_all(self) -> None:
        for controller in self.running:
            controller.stop()

    def __enter__(self) -> "ControllerGroup":
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def alive(self) -> list[Controller]:
        return [c for c in self.running if c.process is not None]


def roll_on_change_group(
    admin: RawApi, admin_kubeconfig: str, key_file: Path, workdir: Path, debounce_seconds: float
) -> ControllerGroup:
    """Controllers under the chart's controller identity that roll on change: the webhook's
    key, a pass every 0.5 s."""
    env = {
        "CONFIGPIN_HMAC_KEY_FILE": str(key_file),
        "CONFIGPIN_ROLLOUT_RESYNC_SECONDS": "0.5",
        "CONFIGPIN_ROLLOUT_DEBOUNCE_SECONDS": str(debounce_seconds),
        "CONFIGPIN_CONTROLLER_RESYNC_SECONDS": "5",
    }
    return ControllerGroup(controller_identity(admin, admin_kubeconfig, workdir), workdir, env)


def lease_holder(admin: RawApi) -> str | None:
    lease = admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM_NAMESPACE}/leases/{LEASE}")
    holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
    return holder if isinstance(holder, str) else None


class HookRunner:
    """Stands in for the job controller and a kubelet for one Helm hook Job: when the Job
    appears it runs the Job's container args with `python -m app` (the image's entrypoint),
    under a token of the Job's own ServiceAccount (so the hook's RBAC is what is tested),
    then records the outcome in the Job's status as the job controller would."""

    def __init__(self, admin: RawApi, admin_kubeconfig: str, namespace: str, job: str) -> None:
        self.admin = admin
        self.admin_kubeconfig = admin_kubeconfig
        self.namespace = namespace
        self.job = job
        self.result: subprocess.CompletedProcess[str] | None = None
        self.error: BaseException | None = None
        self._path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{job}"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, workdir: Path) -> None:
        self.workdir = workdir
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self.error:
            raise self.error

    def _run(self) -> None:
        try:
            found = eventually(
                lambda: self.admin.get(self._path),
                timeout=120,
                what=f"the hook Job {self.job}",
            )
            self._execute(found)
        except BaseException as error:  # reported by join()
            self.error = error

    def _execute(self, job: dict[str, Any]) -> None:
        pod_spec = job["spec"]["template"]["spec"]
        container = pod_spec["containers"][0]
        kubeconfig = service_account_kubeconfig(
            self.admin,
            self.admin_kubeconfig,
            self.namespace,
            pod_spec["serviceAccountName"],
            self.workdir / "hook.kubeconfig",
        )
        env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env", [])}}
        self.result = subprocess.run(
            [sys.executable, "-m", "app", *container["args"], "--kubeconfig", kubeconfig],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        now = job["metadata"]["creationTimestamp"]
        succeeded = self.result.returncode == 0
        final = "Complete" if succeeded else "Failed"
        conditions = [
            {"type": "SuccessCriteriaMet" if succeeded else "FailureTarget", "status": "True"},
            {"type": final, "status": "True"},
        ]
        status: dict[str, Any] = {
            "active": 0,  # a job controller may have counted the Pod no node will run
            "ready": 0,
            "terminating": 0,
            "startTime": now,
            "conditions": [
                {**c, "lastProbeTime": now, "lastTransitionTime": now} for c in conditions
            ],
            "succeeded" if succeeded else "failed": 1,
        }
        if succeeded:
            status["completionTime"] = now
        self.admin.request(
            "PATCH",
            f"{self._path}/status",
            {"status": status},
            "application/merge-patch+json",
        )
