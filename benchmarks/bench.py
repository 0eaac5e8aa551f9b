"""`make bench`: what configpin adds to admission, each figure beside a baseline measured in
the same run, on this machine.

1. Handler: wrk (a separate process) POSTs a steady-state review (a Pod of a pinned
   ReplicaSet, as the API server sent it) over TLS on loopback at 1, 10 and 50 connections,
   to `configpin serve` and to a no-op FastAPI app on uvicorn with uvloop + httptools, and
   on plain uvicorn (asyncio + h11).
2. End to end through the dev cluster's kube-apiserver: 10 clients (wrk's connections, with
   a ServiceAccount token, each pausing 100 ms between creates) create Pods of a pinned
   ReplicaSet with no webhook registered, with the chart's webhook configuration, with it
   less its matchConditions (configpin answers every Pod), and with no webhook again (the
   noise of the measurement).
3. Deployment CREATE with 5 new snapshots: round trip through the API server with the
   webhook against without it, and the API requests configpin made
   (configpin_kube_requests_total).
4. Resident memory of `configpin serve` idle and during steady load (--soak-seconds).

Every load is bounded in count and time and sent to 127.0.0.1 only. Prints one table and
writes the same figures as JSON (--out).

    .venv/bin/python benchmarks/bench.py [--seconds 5] [--rounds 3] [--soak-seconds 300] [--profile]
"""

import argparse
import copy
import json
import os
import platform
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.kube.api import RawApi, connect
from devkit.devcluster import ensure_cluster, teardown_cluster
from devkit.kubeobjects import (
    configmap,
    create,
    delete,
    eventually,
    items,
    secret,
    sources_deployment,
    unmanaged_owner,
)
from devkit.localwebhook import Webhook, free_port, service_account_token, webhook_identity

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 10, 50)
SERVERS = ("configpin", "no-op, uvloop + httptools", "no-op, plain uvicorn")
CLIENTS = 10
NEW_SNAPSHOTS = 5
MAX_REQUESTS_PER_RUN = 2_000_000  # wrk stops at this count or at --seconds, whichever first
MAX_PODS_PER_RUN = 5_000  # a bound on the Pods one round creates (2 cores make ~500/s)


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    baseline_name: str
    baseline: float | None
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


# --- load generators -------------------------------------------------------------------


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("make bench needs wrk (the HTTP load generator): apt-get install -y wrk")
    return wrk


def run_wrk(
    url: str,
    body_file: Path,
    connections: int,
    seconds: float,
    max_requests: int = MAX_REQUESTS_PER_RUN,
    authorization: str | None = None,
    delay_ms: int = 0,
) -> dict[str, Any]:
    """One bounded wrk run POSTing `body_file` to `url`; its figures (latencies in
    microseconds, and the errors it counted, answers other than 2xx and 3xx included)."""
    command = [
        require_wrk(),
        *("-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s"),
        *("-s", str(ROOT / "benchmarks" / "post.lua"), url),
    ]
    env = {**os.environ, "POST_BODY": str(body_file), "MAX_REQUESTS": str(max_requests)}
    if authorization is not None:
        env["AUTHORIZATION"] = authorization
    if delay_ms:
        env["DELAY_MS"] = str(delay_ms)
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    figures["rps"] = figures["requests"] / figures["seconds"]
    return figures


def run_wrk_clean(url: str, body_file: Path, connections: int, seconds: float) -> dict[str, Any]:
    """`run_wrk` against a server that must answer every request."""
    figures = run_wrk(url, body_file, connections, seconds)
    if any(figures["errors"].values()):
        raise RuntimeError(f"wrk saw errors against {url}: {figures['errors']}")
    return figures


@contextmanager
def noop_server(certs: Path, uvloop: bool) -> Iterator[str]:
    """The no-op app on its own uvicorn process, over TLS with the same certificate."""
    port = free_port()
    loop, http = ("uvloop", "httptools") if uvloop else ("asyncio", "h11")
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "uvicorn", "benchmarks.noop:app", "--host", "127.0.0.1", "--port", str(port)),
            *("--ssl-certfile", str(certs / "tls.crt"), "--ssl-keyfile", str(certs / "tls.key")),
            *("--loop", loop, "--http", http),
            *("--no-access-log", "--log-level", "warning"),
        ],
        cwd=ROOT,
    )
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    try:
        eventually(lambda: _answers(url, trust), timeout=30, what="the no-op app")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str, trust: ssl.SSLContext) -> bool | None:
    try:
        return httpx.post(f"{url}/mutate", content=b"{}", verify=trust, timeout=2).is_success
    except httpx.HTTPError:
        return None


# --- configpin's own figures ---------------------------------------------------------


def kube_requests(webhook: Webhook) -> dict[str, float]:
    """configpin_kube_requests_total as {"verb resource": count}."""
    found = webhook.metric("configpin_kube_requests_total")
    return {f"{dict(labels)['verb']} {dict(labels)['resource']}": n for labels, n in found.items()}


def reviews_answered(webhook: Webhook) -> float:
    return sum(webhook.metric("configpin_admission_reviews_total").values())


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- the cluster side ----------------------------------------------------------------


class Cluster:
    def __init__(self, admin: RawApi, kubeconfig: str, workdir: Path) -> None:
        self.admin = admin
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.namespace = f"bench-{os.getpid()}"
        create(
            admin,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": self.namespace,
                    "labels": {"configpin.io/inject": "enabled"},
                },
            },
        )
        self.server = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"][
            "server"
        ]
        self.token = self._load_token()

    def _load_token(self) -> str:
        """A token allowed to create Pods in the namespace, for the Pod-create load."""
        account = "bench-load"
        create(
            self.admin,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": self.namespace},
            },
        )
        create(
            self.admin,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": account, "namespace": self.namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "edit",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": account, "namespace": self.namespace}
                ],
            },
        )
        return service_account_token(self.admin, self.namespace, account)

    def pinned_pod(self) -> dict[str, Any]:
        """A Pod of a pinned ReplicaSet, read back as the API server stored it."""
        sources = [configmap(self.namespace, "app-config", {"color": "blue"})]
        sources.append(secret(self.namespace, "db", {"password": "bench"}))
        for source in sources:
            create(self.admin, source)
        create(self.admin, sources_deployment(self.namespace, "web", sources, replicas=1))
        pods = eventually(
            lambda: items(self.admin, "v1", "Pod", self.namespace, "app=web") or None,
            what="the pinned Deployment's Pod",
        )
        return pods[0]

    def delete_pods(self, selector: str) -> None:
        # At once (no grace period): the next round must not share the API server with them.
        self.admin.request(
            "DELETE",
            f"/api/v1/namespaces/{self.namespace}/pods"
            f"?labelSelector={selector}&gracePeriodSeconds=0",
        )
        eventually(
            lambda: not items(self.admin, "v1", "Pod", self.namespace, selector) or None,
            what="the load's Pods to be gone",
        )

    def create_pods(self, pod: dict[str, Any], seconds: float, delay_ms: int) -> dict[str, Any]:
        """Creates of `pod` (named by the API server after its generateName) for `seconds`
        over CLIENTS connections of wrk, straight to the API server; wrk's figures. A load
        generator in C: a Python client's own time, with ten threads sharing one interpreter,
        would be most of what it measured."""
        pod_file = self.workdir / "load-pod.json"
        pod_file.write_text(json.dumps(pod))
        figures = run_wrk(
            f"{self.server}/api/v1/namespaces/{self.namespace}/pods",
            pod_file,
            CLIENTS,
            seconds,
            max_requests=MAX_PODS_PER_RUN,
            authorization=f"Bearer {self.token}",
            delay_ms=delay_ms,
        )
        if figures["requests"] >= MAX_PODS_PER_RUN:
            # wrk then idles out the rest of the run, and the rate would be understated.
            raise RuntimeError(f"{MAX_PODS_PER_RUN} Pods in {seconds:g}s: shorten --pod-seconds")
        self.delete_pods("load=bench")
        # A failed create is a finding, printed and counted in the figures, not a crash that
        # loses the rest of the run; more than a few is a broken run.
        failed = sum(figures["errors"].values())
        if failed:
            print(f"bench: {failed} Pod creates failed: {figures['errors']}", file=sys.stderr)
        if failed > figures["requests"] // 10:
            raise RuntimeError(f"{failed} of {figures['requests']} Pod creates failed")
        return figures

    def deployment_creates(self, count: int, tag: str) -> list[float]:
        """Round trips of Deployment CREATEs each referencing NEW_SNAPSHOTS new sources."""
        latencies = []
        for i in range(count):
            sources = [
                (configmap if n % 2 else secret)(self.namespace, f"{tag}-{i}-{n}", {"n": f"{n}"})
                for n in range(NEW_SNAPSHOTS)
            ]
            for source in sources:
                create(self.admin, source)
            deployment = sources_deployment(self.namespace, f"{tag}-{i}", sources, replicas=0)
            started = time.perf_counter()
            create(self.admin, deployment)
            latencies.append(time.perf_counter() - started)
        return latencies


def load_pod(stored: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """A Pod to create again and again: the stored Pod's spec and pins, its controller
    `owner`; the labels keep it out of the ReplicaSet's selector. Bound to a node that does
    not exist, so that no scheduler or kubelet work on the Pods already made competes with
    the creates measured (at 2 cores it made the figures swing by a third between rounds)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "load-",
            "labels": {"load": "bench"},
            "annotations": dict(stored["metadata"].get("annotations") or {}),
            "ownerReferences": [owner],
        },
        "spec": {**stored["spec"], "nodeName": "bench-no-such-node"},
    }


def review_body(stored_pod: dict[str, Any]) -> bytes:
    """The AdmissionReview the API server sends for the Pod's CREATE."""
    pod = copy.deepcopy(stored_pod)
    pod.pop("status", None)
    for key in ("uid", "resourceVersion", "creationTimestamp", "name"):
        pod["metadata"].pop(key, None)
    namespace = pod["metadata"]["namespace"]
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "5d3c1e47-9a0b-4c8e-8f61-2d1b0a9c7e33",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "0f4d8c2a-6b1e-4f3a-9c7d-5e2b1a0c9d84",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
    return json.dumps(review).encode()


# --- the benchmark -------------------------------------------------------------------


def handler_figures(
    webhook: Webhook, body_file: Path, seconds: float, rounds: int, profile_dir: Path | None
) -> tuple[dict[str, dict[int, dict[str, Any]]], dict[str, float]]:
    """wrk against the three servers, interleaved (each concurrency, `rounds` times, every
    server in turn) so that the machine's background load falls on all three alike; each
    figure is the median of its rounds."""
    before = kube_requests(webhook)
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        name: {c: [] for c in CONCURRENCY} for name in SERVERS
    }
    with (
        noop_server(webhook.certs, uvloop=True) as fast,
        noop_server(webhook.certs, uvloop=False) as plain,
    ):
        urls = dict(zip(SERVERS, (webhook.url, fast, plain), strict=True))
        for url in urls.values():
            run_wrk_clean(f"{url}/mutate", body_file, 10, min(seconds, 3))  # warm up
        for connections in CONCURRENCY:
            for round_ in range(rounds):
                for name, url in urls.items():
                    profiler = None
                    if profile_dir is not None and name == SERVERS[0] and connections == 50:
                        profiler = start_profile(webhook, profile_dir, seconds, round_)
                    runs[name][connections].append(
                        run_wrk_clean(f"{url}/mutate", body_file, connections, seconds)
                    )
                    if profiler is not None:
                        profiler.wait(timeout=60)
    results = {name: {c: median_run(by_c[c]) for c in CONCURRENCY} for name, by_c in runs.items()}
    return results, delta(before, kube_requests(webhook))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    figures = {
        key: statistics.median(run[key] for run in runs) for key in ("rps", "p50_us", "p99_us")
    }
    return {**figures, "rounds": runs}


def start_profile(
    webhook: Webhook, out: Path, seconds: float, round_: int
) -> subprocess.Popen[bytes]:
    """py-spy samples configpin while wrk loads it: collapsed stacks, one line each."""
    assert webhook.process is not None
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(py_spy),
            *("record", "--pid", str(webhook.process.pid), "--duration", str(int(seconds))),
            *(
                "--format",
                "raw",
                "--output",
                str(out / f"configpin-c50-{round_}.txt"),
                "--nonblocking",
            ),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def top_frames(collapsed: list[Path], count: int = 12) -> list[tuple[str, float]]:
    """The functions on top of the sampled stacks (own time), as shares of all samples."""
    own: dict[str, int] = {}
    total = 0
    for path in collapsed:
        for line in path.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            frame = stack.rsplit(";", 1)[-1]
            own[frame] = own.get(frame, 0) + int(samples)
            total += int(samples)
    ranked = sorted(own.items(), key=lambda item: -item[1])[:count]
    return [(frame, n / total) for frame, n in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="wrk runs per server and level")
    parser.add_argument("--soak-seconds", type=float, default=300, help="steady load for memory")
    parser.add_argument("--pod-seconds", type=float, default=4, help="Pod creates per round")
    # Paced clients: as fast as answered, the 2 cores are saturated and the figures are
    # queueing, which swings by tens of milliseconds from one round to the next.
    parser.add_argument("--pod-pause-ms", type=int, default=100, help="per client, per create")
    parser.add_argument("--deployments", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="py-spy configpin at c=50")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args()
    require_wrk()

    kubeconfig, started = ensure_cluster()
    workdir = Path(tempfile.mkdtemp(prefix="configpin-bench-"))
    try:
        figures = run(args, kubeconfig, workdir)
    finally:
        # It holds the run's certificates, HMAC key and ServiceAccount tokens.
        shutil.rmtree(workdir, ignore_errors=True)
        if started:
            teardown_cluster()
    rows = table_rows(figures)
    print_table(rows, figures)
    args.out.write_text(
        json.dumps({**figures, "rows": [asdict(r) | {"ratio": r.ratio} for r in rows]}, indent=2)
    )
    print(f"\nfigures written to {args.out}")


def run(args: argparse.Namespace, kubeconfig: str, workdir: Path) -> dict[str, Any]:
    admin = RawApi(connect(kubeconfig), timeout_seconds=30)
    identity = webhook_identity(admin, kubeconfig, workdir)
    (workdir / "serve").mkdir()
    webhook = Webhook(identity, workdir / "serve")
    webhook.start()
    assert webhook.process is not None
    pid = webhook.process.pid
    figures: dict[str, Any] = {"machine": machine()}
    config = webhook.register(admin)
    cluster = Cluster(admin, kubeconfig, workdir)
    try:
        figures["rss_idle_bytes"] = rss_bytes(pid)
        stored = cluster.pinned_pod()
        body_file = workdir / "review.json"
        body_file.write_bytes(review_body(stored))
        figures["review_bytes"] = body_file.stat().st_size
        answer = httpx.post(
            f"{webhook.url}/mutate",
            content=body_file.read_bytes(),
            headers={"content-type": "application/json"},
            verify=ssl.create_default_context(cafile=str(webhook.certs / "ca.crt")),
        ).json()["response"]
        assert answer == {"uid": answer["uid"], "allowed": True}, answer
        profile_dir = workdir if args.profile else None
        figures["handler"], figures["handler_kube_requests"] = handler_figures(
            webhook, body_file, args.seconds, args.rounds, profile_dir
        )
        if profile_dir is not None:
            figures["profile_c50_top"] = top_frames(sorted(profile_dir.glob("configpin-c50-*.txt")))

        figures["pods"] = pod_figures(
            cluster,
            webhook,
            admin,
            config,
            load_pod(stored, unmanaged_owner(admin, cluster.namespace, "load-owner")),
            args,
        )
        figures["deployment"] = deployment_figures(cluster, webhook, admin, config, args)
        figures["memory"] = soak(webhook, body_file, pid, args.soak_seconds)
        figures["machine"]["load_average_at_end"] = os.getloadavg()
    finally:
        delete(admin, config)
        delete(
            admin,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.namespace}},
        )
        webhook.stop()
    return figures


def pod_figures(
    cluster: Cluster,
    webhook: Webhook,
    admin: RawApi,
    config: dict[str, Any],
    pod: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    without_conditions = copy.deepcopy(config)
    for hook in without_conditions["webhooks"]:
        hook.pop("matchConditions", None)
    # The baseline twice: how far apart two runs of the same thing land is the noise
    # against which the webhook's cost is read.
    phases: list[tuple[str, dict[str, Any] | None]] = [
        ("no webhook", None),
        ("webhook (chart)", config),
        ("webhook without matchConditions", without_conditions),
        ("no webhook, again", None),
    ]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in phases}
    answered = dict.fromkeys(runs, 0.0)
    # Phases interleaved, `rounds` times: the machine's background load falls on all alike.
    for _ in range(args.rounds):
        for name, registered in phases:
            delete(admin, config)
            if registered is not None:
                create(admin, registered)
            time.sleep(2)  # the API server's informer on webhook configurations catches up
            seen = reviews_answered(webhook)
            runs[name].append(cluster.create_pods(pod, args.pod_seconds, args.pod_pause_ms))
            answered[name] += reviews_answered(webhook) - seen
    results = {}
    for name, rounds in runs.items():
        failed = sum(sum(run["errors"].values()) for run in rounds)
        results[name] = {
            "pods": sum(run["requests"] for run in rounds) - failed,
            "failed_creates": failed,
            "creates_per_second": statistics.median(run["rps"] for run in rounds),
            # The median round's percentiles, as for the handler.
            "p50_ms": statistics.median(run["p50_us"] for run in rounds) / 1000,
            "p99_ms": statistics.median(run["p99_us"] for run in rounds) / 1000,
            "reviews_answered": answered[name],
            "rounds": rounds,
        }
    delete(admin, config)
    create(admin, config)
    time.sleep(2)
    return results


def deployment_figures(
    cluster: Cluster,
    webhook: Webhook,
    admin: RawApi,
    config: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    before = kube_requests(webhook)
    with_hook = cluster.deployment_creates(args.deployments, "with")
    requests = delta(before, kube_requests(webhook))
    server = server_times(webhook, f"CREATE Deployment {cluster.namespace}/with-")
    delete(admin, config)
    time.sleep(2)
    without_hook = cluster.deployment_creates(args.deployments, "without")
    create(admin, config)
    time.sleep(2)
    return {
        "count": args.deployments,
        "new_snapshots_each": NEW_SNAPSHOTS,
        "with_webhook_ms": {
            "p50": percentile(with_hook, 50) * 1000,
            "p99": percentile(with_hook, 99) * 1000,
        },
        "without_webhook_ms": {
            "p50": percentile(without_hook, 50) * 1000,
            "p99": percentile(without_hook, 99) * 1000,
        },
        # configpin's own time for each CREATE, from its log line.
        "server_ms": {"p50": percentile(server, 50), "p99": percentile(server, 99)},
        "kube_requests": requests,
        "kube_requests_per_create": {k: v / args.deployments for k, v in requests.items()},
    }


def server_times(webhook: Webhook, prefix: str) -> list[float]:
    """Milliseconds configpin took for each review whose log line starts with `prefix`."""
    found = re.findall(
        rf"{re.escape(prefix)}\S*: \S+, \d+ patch operations in ([\d.]+) ms",
        webhook.log.read_text(),
    )
    return [float(ms) for ms in found]


def soak(webhook: Webhook, body_file: Path, pid: int, seconds: float) -> dict[str, Any]:
    """RSS before, one minute into and at the end of `seconds` of steady load at c=10."""
    warm = min(60.0, seconds / 5)
    run_wrk_clean(f"{webhook.url}/mutate", body_file, 10, warm)
    rss_warm = rss_bytes(pid)
    samples = [rss_warm]
    remaining = seconds - warm
    while remaining > 0:
        step = min(60.0, remaining)
        run_wrk_clean(f"{webhook.url}/mutate", body_file, 10, step)
        samples.append(rss_bytes(pid))
        remaining -= step
    return {
        "seconds": seconds,
        "rss_after_first_load_bytes": rss_warm,
        "rss_end_bytes": samples[-1],
        "rss_samples_bytes": samples,
    }


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


# --- the table -----------------------------------------------------------------------


def table_rows(figures: dict[str, Any]) -> list[Row]:
    handler = figures["handler"]
    rows: list[Row] = []
    for c in CONCURRENCY:
        ours, fast, plain = (handler[name][c] for name in SERVERS)
        met = ours["rps"] >= 0.8 * fast["rps"] if c != 1 else None
        rows.append(
            Row(
                f"handler c={c} throughput",
                ours["rps"],
                "req/s",
                "no-op uvloop+httptools",
                fast["rps"],
                "≥ 0.8x" if c != 1 else "",
                met,
            )
        )
        p99_target, p99_met = (
            ("< 1 ms", ours["p99_us"] < 1000)
            if c == 1
            else ("≤ 1.25x", ours["p99_us"] <= 1.25 * fast["p99_us"])
        )
        rows.append(
            Row(
                f"handler c={c} p99",
                ours["p99_us"] / 1000,
                "ms",
                "no-op uvloop+httptools",
                fast["p99_us"] / 1000,
                p99_target,
                p99_met,
            )
        )
        rows.append(
            Row(
                f"handler c={c} throughput",
                ours["rps"],
                "req/s",
                "no-op plain uvicorn",
                plain["rps"],
            )
        )
    calls = sum(figures["handler_kube_requests"].values())
    rows.append(Row("API requests during the handler runs", calls, "", "", None, "0", calls == 0))
    pods = figures["pods"]
    base = pods["no webhook"]
    for q in ("p50", "p99"):
        rows.append(
            Row(
                f"Pod create, {CLIENTS} clients, {q}: no webhook, again (the noise)",
                pods["no webhook, again"][f"{q}_ms"],
                "ms",
                "no webhook",
                base[f"{q}_ms"],
            )
        )
    for name in ("webhook (chart)", "webhook without matchConditions"):
        for q, allowed in (("p50", 1.0), ("p99", 2.0)):
            value = pods[name][f"{q}_ms"]
            rows.append(
                Row(
                    f"Pod create, {CLIENTS} clients, {q}: {name}",
                    value,
                    "ms",
                    "no webhook",
                    base[f"{q}_ms"],
                    f"≤ +{allowed:g} ms",
                    value <= base[f"{q}_ms"] + allowed,
                )
            )
        rows.append(
            Row(
                f"Pod reviews configpin answered: {name}",
                pods[name]["reviews_answered"],
                "",
                "Pods created",
                pods[name]["pods"],
            )
        )
        rows.append(
            Row(
                f"Pod creates/s, {CLIENTS} clients: {name}",
                pods[name]["creates_per_second"],
                "/s",
                "no webhook",
                base["creates_per_second"],
            )
        )
    deployment = figures["deployment"]
    for q in ("p50", "p99"):
        rows.append(
            Row(
                f"Deployment CREATE, {NEW_SNAPSHOTS} new snapshots, {q}",
                deployment["with_webhook_ms"][q],
                "ms",
                "no webhook",
                deployment["without_webhook_ms"][q],
                "report",
            )
        )
    for q in ("p50", "p99"):
        rows.append(
            Row(
                f"  configpin's own time for it, {q}",
                deployment["server_ms"][q],
                "ms",
                "",
                None,
                "report",
            )
        )
    per_create = deployment["kube_requests_per_create"]
    reads = per_create.get("get configmaps", 0) + per_create.get("get secrets", 0)
    writes = per_create.get("create configmaps", 0) + per_create.get("create secrets", 0)
    rows.append(
        Row(
            "  API reads per Deployment CREATE",
            reads,
            "",
            "sources",
            NEW_SNAPSHOTS,
            "= sources",
            reads == NEW_SNAPSHOTS,
        )
    )
    rows.append(
        Row(
            "  API creates per Deployment CREATE",
            writes,
            "",
            "new snapshots",
            NEW_SNAPSHOTS,
            "= new snapshots",
            writes == NEW_SNAPSHOTS,
        )
    )
    memory = figures["memory"]
    mib = 2**20
    rows.append(
        Row(
            "RSS after the first load",
            memory["rss_after_first_load_bytes"] / mib,
            "MiB",
            "idle",
            figures["rss_idle_bytes"] / mib,
            "report",
        )
    )
    rows.append(
        Row(
            f"RSS after {memory['seconds']:g} s steady load",
            memory["rss_end_bytes"] / mib,
            "MiB",
            "after the first load",
            memory["rss_after_first_load_bytes"] / mib,
            "no growth (≤ 1.05x)",
            memory["rss_end_bytes"] <= 1.05 * memory["rss_after_first_load_bytes"],
        )
    )
    return rows


def print_table(rows: list[Row], figures: dict[str, Any]) -> None:
    m = figures["machine"]
    print(
        f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}; 1-minute load average "
        f"{m['load_average_at_start'][0]:.1f} at the start, "
        f"{m.get('load_average_at_end', [float('nan')])[0]:.1f} at the end (shared machine)"
    )
    print(f"steady-state review: a Pod of a pinned ReplicaSet, {figures['review_bytes']} bytes\n")
    print("| figure | configpin | baseline | ratio | target | met |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        baseline = f"{_num(r.baseline)} {r.unit} ({r.baseline_name})" if r.baseline_name else ""
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        print(
            f"| {r.figure} | {_num(r.value)} {r.unit} | {baseline} | {ratio} | {r.target} | {met} |"
        )
    if figures.get("profile_c50_top"):
        print("\nconfigpin at c=50, own time by function (py-spy):")
        for frame, share in figures["profile_c50_top"]:
            print(f"  {share * 100:5.1f}%  {frame}")


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"


if __name__ == "__main__":
    main()
