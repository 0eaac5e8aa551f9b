"""How much configpin adds to one admission, against the bare cost of the review itself.

Runs the whole review path that does not wait on the network (envelope parsing, the
reference walk, snapshot naming and building, the JSON patch and the response) on a
Deployment with a realistic number of references, with sources served from memory. The
baseline, measured in the same run, is decoding and encoding the same AdmissionReview: the
cost any webhook pays before doing anything. Figures depend on the machine; the ratio is
what to compare between changes.

    .venv/bin/python benchmarks/admission.py
"""

import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.admission.pinner import Policy
from app.admission.review import parse_review
from app.admission.service import Admission
from app.metrics import Metrics
from app.render import ManifestSources

NAMESPACE = "shop"
SOURCES = 12  # distinct ConfigMaps and Secrets
CONTAINERS = 4


def workload() -> tuple[list[dict[str, Any]], bytes]:
    sources: list[dict[str, Any]] = []
    for i in range(SOURCES):
        kind = "ConfigMap" if i % 2 else "Secret"
        data = {f"key-{k}": "x" * 200 for k in range(20)}
        sources.append(
            {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {
                    "name": f"src-{i}",
                    "namespace": NAMESPACE,
                    "uid": f"u{i}",
                    "resourceVersion": str(i),
                },
                "data": data,
                **({"type": "Opaque"} if kind == "Secret" else {}),
            }
        )
    containers = []
    for c in range(CONTAINERS):
        env = [
            {
                "name": f"E{i}",
                "valueFrom": {
                    ("secretKeyRef" if i % 2 == 0 else "configMapKeyRef"): {
                        "name": f"src-{i}",
                        "key": "key-1",
                    }
                },
            }
            for i in range(SOURCES)
        ]
        containers.append(
            {
                "name": f"c{c}",
                "image": "registry.example/app:1",
                "env": env,
                "envFrom": [{"configMapRef": {"name": "src-1"}}, {"secretRef": {"name": "src-0"}}],
            }
        )
    volumes = [{"name": f"v{i}", "configMap": {"name": f"src-{i}"}} for i in range(1, SOURCES, 2)]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers, "volumes": volumes},
            },
        },
    }
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "operation": "CREATE",
            "namespace": NAMESPACE,
            "name": "web",
            "object": deployment,
            "dryRun": False,
        },
    }
    return sources, json.dumps(review).encode()


def per_call(function: Callable[[], object], repeat: int = 7, number: int = 200) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            function()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def peak_memory(function: Callable[[], object]) -> int:
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    sources, body = workload()
    store = ManifestSources(sources)
    admission = Admission(
        store, Policy(key=b"benchmark-key-0123456789", check_namespace_label=False), Metrics()
    )

    def baseline() -> object:
        return json.dumps(json.loads(body)).encode()

    def configpin() -> object:
        return json.dumps(admission.review(parse_review(body, admission.kinds))).encode()

    answer = json.loads(configpin())
    assert answer["response"]["allowed"] and answer["response"]["patch"], "the benchmark must pin"
    base, full = per_call(baseline), per_call(configpin)
    base_peak, full_peak = peak_memory(baseline), peak_memory(configpin)
    references = CONTAINERS * (SOURCES + 2) + SOURCES // 2
    print(f"review: {len(body) / 1024:.1f} KiB, {references} references to {SOURCES} sources")
    for label, seconds, peak in (
        ("baseline (decode + encode the review)", base, base_peak),
        ("configpin review path", full, full_peak),
    ):
        print(f"{label:40} {seconds * 1e6:8.1f} us  peak {peak / 1024:8.1f} KiB")
    print(f"ratio: {full / base:.1f}x time, {full_peak / base_peak:.1f}x peak memory")


if __name__ == "__main__":
    main()
