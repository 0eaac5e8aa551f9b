"""The lifecycle controller's resident memory with 5,000 ReplicaSets and 20,000 snapshots.

Starts a throwaway dev cluster, creates the objects with the admin client (ReplicaSets with
no replicas whose pod templates pin four snapshots each, and the snapshots themselves,
owned by their ReplicaSet as the controller leaves them), then runs `configpin controller`
for a few passes and reports its peak resident set (VmHWM) and its resident set at the end.

    .venv/bin/python benchmarks/controller_memory.py [--replica-sets 5000] [--per-set 4]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain import labels
from app.domain.snapshots import build_snapshot
from app.kube.api import ApiError, RawApi, connect
from devkit.devcluster import ensure_cluster, teardown_cluster

NAMESPACES = 10
KEY = b"b" * 32


def replica_set(namespace: str, index: int, pins: dict[str, str]) -> dict[str, Any]:
    name = f"web-{index}"
    volumes = [{"name": f"v{i}", "configMap": {"name": n}} for i, n in enumerate(pins.values())]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {labels.PINS: json.dumps(pins)},
                },
                "spec": {
                    "containers": [{"name": "app", "image": "registry.example/app:1"}],
                    "volumes": volumes,
                },
            },
        },
    }


def make_set(api: RawApi, index: int, per_set: int) -> None:
    namespace = f"bench-{index % NAMESPACES}"
    made = [
        build_snapshot(
            KEY,
            "configmap",
            {
                "metadata": {"name": f"cfg-{index}-{i}", "namespace": namespace},
                "data": {"config.yaml": "x" * 400},
            },
        )
        for i in range(per_set)
    ]
    pins = {f"configmap/cfg-{index}-{i}": s["metadata"]["name"] for i, s in enumerate(made)}
    rs = api.create(
        f"/apis/apps/v1/namespaces/{namespace}/replicasets", replica_set(namespace, index, pins)
    )
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": rs["metadata"]["name"],
        "uid": rs["metadata"]["uid"],
    }
    for snapshot in made:
        snapshot["metadata"]["ownerReferences"] = [owner]
        try:
            api.create(f"/api/v1/namespaces/{namespace}/configmaps", snapshot)
        except ApiError as error:
            if error.status != 409:
                raise


def rss_kib(pid: int) -> tuple[int, int]:
    """(peak, current) resident set of `pid`, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replica-sets", type=int, default=5000)
    parser.add_argument("--per-set", type=int, default=4)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    kubeconfig, started = ensure_cluster(f"cluster-bench-{os.getpid()}")
    try:
        api = RawApi(connect(kubeconfig), timeout_seconds=60)
        for i in range(NAMESPACES):
            try:
                api.create("/api/v1/namespaces", {"metadata": {"name": f"bench-{i}"}})
            except ApiError as error:
                if error.status != 409:
                    raise
        begin = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: make_set(api, i, args.per_set), range(args.replica_sets)))
        print(
            f"created {args.replica_sets} ReplicaSets and {args.replica_sets * args.per_set} "
            f"snapshots in {time.monotonic() - begin:.0f}s",
            flush=True,
        )
        measure(kubeconfig, args.passes)
    finally:
        if started:
            teardown_cluster()


def measure(kubeconfig: str, passes: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        log_path = Path(workdir) / "controller.log"
        env = {
            **os.environ,
            "CONFIGPIN_NAMESPACE": "default",
            "CONFIGPIN_CONTROLLER_RESYNC_SECONDS": "1",
            "CONFIGPIN_METRICS_PORT": "0",
            "CONFIGPIN_API_TIMEOUT_SECONDS": "30",
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "app", "controller", "--kubeconfig", kubeconfig],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=Path(__file__).resolve().parents[1],
            )
        try:
            begin = time.monotonic()
            while log_path.read_text().count(" pass: ") < passes:
                if process.poll() is not None:
                    raise SystemExit(log_path.read_text())
                time.sleep(0.5)
            took = (time.monotonic() - begin) / passes
            peak, current = rss_kib(process.pid)
        finally:
            process.terminate()
            process.wait()
        last = [line for line in log_path.read_text().splitlines() if " pass: " in line][-1]
        print(last.split(" pass: ")[1])
        print(
            f"controller resident memory: peak {peak / 1024:.0f} MiB, after {passes} passes "
            f"{current / 1024:.0f} MiB; about {took:.1f}s per pass (start included)"
        )


if __name__ == "__main__":
    main()
