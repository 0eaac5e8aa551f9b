"""Find or start the local control plane (scripts/dev-cluster) for a test session.

A developer's running cluster is reused when the environment points at it
(``CONFIGPIN_CLUSTER_DIR``, or ``KUBECONFIG`` set to a dev-cluster's ``admin.kubeconfig``).
Otherwise a cluster is started in a state directory of its own, named after this process,
so ``teardown_cluster`` can never stop a developer's cluster.
"""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEV_CLUSTER = REPO_ROOT / "scripts" / "dev-cluster"
KUBECONFIG_NAME = "admin.kubeconfig"

# State directory of the cluster this process started, if any.
_started_dir: Path | None = None


def _cache_dir() -> Path:
    cache = os.environ.get("CONFIGPIN_CACHE")
    return Path(cache) if cache else Path.home() / ".cache" / "configpin"


def _run(command: str, cluster_dir: Path, *, check: bool) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/dev-cluster <command>`` for ``cluster_dir``.

    Its stdout (the export lines) is captured; its stderr (progress, build output)
    goes straight to ours so a long first build is visible.
    """
    env = dict(os.environ, CONFIGPIN_CLUSTER_DIR=str(cluster_dir))
    return subprocess.run(
        [str(DEV_CLUSTER), command],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        check=check,
    )


def _exports(stdout: str) -> dict[str, str]:
    """Parse the ``export NAME=value`` lines that dev-cluster prints."""
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            found[name] = value
    return found


def _kubeconfig_of(result: subprocess.CompletedProcess[str]) -> str:
    kubeconfig = _exports(result.stdout).get("KUBECONFIG")
    if not kubeconfig:
        raise RuntimeError(f"scripts/dev-cluster printed no KUBECONFIG: {result.stdout!r}")
    return kubeconfig


def _candidate_dirs() -> list[Path]:
    """State directories that the environment points at."""
    dirs: list[Path] = []
    if cluster_dir := os.environ.get("CONFIGPIN_CLUSTER_DIR"):
        dirs.append(Path(cluster_dir))
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig and Path(kubeconfig).name == KUBECONFIG_NAME:
        dirs.append(Path(kubeconfig).parent)
    return dirs


def ensure_cluster(state_name: str | None = None) -> tuple[str, bool]:
    """Return ``(kubeconfig_path, started_by_us)`` for a running dev cluster.

    Reuses the cluster that the environment points at when it is running; otherwise
    starts one in `state_name` under the cache (default: one named after this process),
    building the binaries first if they are missing, which takes long.
    """
    global _started_dir
    if _started_dir is not None:
        return _kubeconfig_of(_run("env", _started_dir, check=True)), True
    for cluster_dir in _candidate_dirs():
        result = _run("env", cluster_dir, check=False)
        if result.returncode == 0:
            return _kubeconfig_of(result), False

    cluster_dir = _cache_dir() / (state_name or f"cluster-test-{os.getpid()}")
    # Registered before starting: `up` stops what it started if it fails, and `down`
    # of a directory that is gone or half made is harmless.
    _started_dir = cluster_dir
    atexit.register(teardown_cluster)
    try:
        return start_cluster(cluster_dir), True
    except BaseException:
        teardown_cluster()
        raise


def own_cluster_dir(name: str) -> Path:
    """A state directory under the cache for a cluster of this process's own."""
    return _cache_dir() / f"{name}-{os.getpid()}"


def start_cluster(cluster_dir: Path) -> str:
    """Start a cluster in `cluster_dir` (whatever the environment points at); its kubeconfig.
    The caller stops it with ``stop_cluster``, also when this raises."""
    result = _run("up", cluster_dir, check=False)
    if result.returncode != 0:
        # Free ports are picked before the daemons bind them: another process can take
        # one in between. `up` cleaned up after itself; one more try settles it.
        result = _run("up", cluster_dir, check=True)
    return _kubeconfig_of(result)


def cluster_command(cluster_dir: Path, *command: str) -> str:
    """`scripts/dev-cluster COMMAND...` for the cluster in `cluster_dir`; its stdout. Raises
    on failure."""
    env = dict(os.environ, CONFIGPIN_CLUSTER_DIR=str(cluster_dir))
    return subprocess.run(
        [str(DEV_CLUSTER), *command],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout


def stop_cluster(cluster_dir: Path) -> None:
    _run("down", cluster_dir, check=True)


def teardown_cluster() -> None:
    """Stop the cluster that ``ensure_cluster`` started, if it started one."""
    global _started_dir
    if _started_dir is None:
        return
    cluster_dir, _started_dir = _started_dir, None
    stop_cluster(cluster_dir)
