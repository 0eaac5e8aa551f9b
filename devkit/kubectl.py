"""Run the real kubectl, built at the control plane's version, as users type it, with the
kubectl-argo-rollouts plugin on its PATH."""

import os
import subprocess
import time
from collections.abc import Sequence
from functools import cache

from devkit.devcluster import DEV_CLUSTER


def _dev_cluster_says(command: str) -> str:
    """The path that `scripts/dev-cluster COMMAND` prints, building what it names if missing."""
    result = subprocess.run(
        [str(DEV_CLUSTER), command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@cache
def kubectl_path() -> str:
    """The kubectl that scripts/dev-cluster builds beside kube-apiserver."""
    return _dev_cluster_says("kubectl-path")


@cache
def kubectl_env() -> dict[str, str]:
    """Our environment with the plugins' directory first on PATH: kubectl finds
    `kubectl-argo-rollouts` there, so `kubectl argo rollouts ...` works."""
    plugins = _dev_cluster_says("plugin-dir")
    return {**os.environ, "PATH": os.pathsep.join([plugins, os.environ.get("PATH", "")])}


def kubectl(
    kubeconfig: str,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`kubectl --kubeconfig KUBECONFIG ARGS...`; raises with kubectl's stderr on failure."""
    # kubectl refuses flags before a plugin's name (`kubectl argo rollouts ...`): the
    # kubeconfig then goes through the environment, which plugins read as kubectl does.
    plugin = bool(args) and args[0] == "argo"
    command: Sequence[str] = [
        kubectl_path(),
        *([] if plugin else ["--kubeconfig", kubeconfig]),
        *args,
    ]
    env = {**kubectl_env(), "KUBECONFIG": kubeconfig}
    result = _run(command, stdin, timeout, env)
    if result.returncode != 0 and _RESTART_TOO_SOON in result.stderr:
        # `restartedAt` has one-second resolution, so kubectl refuses a second restart in
        # the same second; on a fast cluster a rollout can finish within it. A person
        # would wait a moment and type it again.
        time.sleep(1)
        result = _run(command, stdin, timeout, env)
    if check and result.returncode != 0:
        raise KubectlError(list(args), result.returncode, result.stderr.strip())
    return result


_RESTART_TOO_SOON = "restart has already been triggered within the past second"


def _run(
    command: Sequence[str], stdin: str | None, timeout: float, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class KubectlError(RuntimeError):
    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {returncode}: {stderr}")
        self.returncode = returncode
        self.stderr = stderr
