"""Run the real kubectl, built at the control plane's version, as users type it."""

import subprocess
from collections.abc import Sequence
from functools import cache

from devkit.devcluster import DEV_CLUSTER


@cache
def kubectl_path() -> str:
    """The kubectl that scripts/dev-cluster builds beside kube-apiserver."""
    result = subprocess.run(
        [str(DEV_CLUSTER), "kubectl-path"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def kubectl(
    kubeconfig: str,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`kubectl --kubeconfig KUBECONFIG ARGS...`; raises with kubectl's stderr on failure."""
    command: Sequence[str] = [kubectl_path(), "--kubeconfig", kubeconfig, *args]
    result = subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise KubectlError(list(args), result.returncode, result.stderr.strip())
    return result


class KubectlError(RuntimeError):
    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {returncode}: {stderr}")
        self.returncode = returncode
        self.stderr = stderr
