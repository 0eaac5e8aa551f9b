"""Argo Rollouts' published CRD, from the `github.com/argoproj/argo-rollouts` Go module.

The module's `manifests/crds/rollout-crd.yaml` is the CRD that Argo Rollouts installs, so a
test that applies it sees the API server validate and default Rollouts exactly as a cluster
with Argo Rollouts does. The module comes through the Go module proxy with the ordinary `go`
client (checked against the checksum database); its go.mod asks for a newer Go than the
machine's, hence the toolchain named here, fetched the same way once.
"""

import json
import os
import subprocess
from functools import cache
from pathlib import Path

MODULE = "github.com/argoproj/argo-rollouts"
VERSION = "v1.10.2"
TOOLCHAIN = "go1.27.3"


@cache
def module_dir() -> Path:
    env = {**os.environ, "GOTOOLCHAIN": TOOLCHAIN, "GOFLAGS": "-mod=mod"}
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=600,
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"go mod download {MODULE}@{VERSION}: {info.get('Error') or result}")
    return Path(info["Dir"])


def rollout_crd() -> Path:
    """The Rollout CRD file as the module publishes it."""
    return module_dir() / "manifests" / "crds" / "rollout-crd.yaml"
