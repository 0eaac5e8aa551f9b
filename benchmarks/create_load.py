"""Load generator for the end-to-end figures: CLIENTS threads, each with its own connection,
create Pods through the API server as fast as they are answered. Bounded: each client stops
after COUNT Pods or at the deadline, whichever comes first. Prints one JSON line: the
latency of every create in seconds, and the wall time.

    create_load.py KUBECONFIG NAMESPACE POD_JSON CLIENTS COUNT DEADLINE_SECONDS
"""

import copy
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.kube.api import RawApi, connect


def client(
    kubeconfig: str,
    namespace: str,
    pod: dict[str, Any],
    number: int,
    count: int,
    deadline: float,
    latencies: list[float],
    failures: list[str],
) -> None:
    api = RawApi(connect(kubeconfig), timeout_seconds=30)
    collection = f"/api/v1/namespaces/{namespace}/pods"
    for i in range(count):
        if time.monotonic() > deadline:
            return
        body = copy.deepcopy(pod)
        body["metadata"]["name"] = f"load-{number}-{i}"
        started = time.perf_counter()
        try:
            api.create(collection, body)
        except Exception as error:  # counted and reported: a failed create is a finding
            failures.append(f"{type(error).__name__}: {error}")
            continue
        latencies.append(time.perf_counter() - started)


def main() -> None:
    kubeconfig, namespace, pod_file, clients, count, seconds = sys.argv[1:7]
    pod = json.loads(Path(pod_file).read_text())
    deadline = time.monotonic() + float(seconds)
    latencies: list[float] = []
    failures: list[str] = []
    threads = [
        threading.Thread(
            target=client,
            args=(kubeconfig, namespace, pod, n, int(count), deadline, latencies, failures),
        )
        for n in range(int(clients))
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    print(json.dumps({"latencies": latencies, "failures": failures, "seconds": wall}))


if __name__ == "__main__":
    main()
