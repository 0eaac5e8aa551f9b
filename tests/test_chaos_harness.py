"""The chaos harness's own parts that need no cluster: the loopback load balancer, the
seeded fault plan, the workload's layout and sources, kubectl's denials, counters summed
over process lifetimes."""

import base64
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chaos import faults, report
from chaos.lb import LoadBalancer
from chaos.processes import Fleet, Member, Samples, counters
from chaos.workload import Source, denial_of, layout


@contextmanager
def named_server() -> Iterator[tuple[int, socket.socket]]:
    """A TCP server on loopback that answers each connection's first line with its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                if conn.recv(100):
                    conn.sendall(str(port).encode())

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield port, server
    finally:
        server.close()


def ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"which?\n")
        return conn.recv(100).decode()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def two_backends() -> Iterator[tuple[int, int]]:
    with named_server() as (a, _), named_server() as (b, _):
        yield a, b


def test_connections_take_turns_between_backends(two_backends: tuple[int, int]) -> None:
    lb = LoadBalancer(two_backends)
    port = lb.start()
    try:
        answers = [ask(port) for _ in range(4)]
    finally:
        lb.stop()
    a, b = two_backends
    assert answers == [str(a), str(b), str(a), str(b)]
    assert lb.connections == {a: 2, b: 2}


def test_stopping_with_a_connection_in_flight_logs_no_error(
    two_backends: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    lb = LoadBalancer(two_backends)
    port = lb.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        time.sleep(0.3)  # relayed to a backend that waits for a first line
        lb.stop()
    assert "Exception" not in caplog.text


def test_a_backend_that_is_down_is_skipped() -> None:
    down = closed_port()
    with named_server() as (up, _):
        lb = LoadBalancer([down, up])
        port = lb.start()
        try:
            answers = {ask(port) for _ in range(3)}
        finally:
            lb.stop()
    assert answers == {str(up)}
    assert lb.connections == {up: 3}


def test_with_every_backend_down_the_connection_is_closed() -> None:
    lb = LoadBalancer([closed_port()])
    port = lb.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"anyone?\n")
            assert conn.recv(100) == b""
    finally:
        lb.stop()
    assert lb.refused == 1


def test_the_plan_is_the_seeds() -> None:
    first = faults.plan(random.Random(7), rounds=3, gap=(10, 25))
    assert first == faults.plan(random.Random(7), rounds=3, gap=(10, 25))
    assert first != faults.plan(random.Random(8), rounds=3, gap=(10, 25))


def test_every_round_injects_every_kind_once() -> None:
    plan = faults.plan(random.Random(1), rounds=3, gap=(10, 25))
    for start in range(0, 15, 5):
        assert sorted(f.kind for f in plan[start : start + 5]) == sorted(faults.KINDS)
    for fault in plan:
        assert 10 <= fault.gap_seconds <= 25
        if fault.kind == faults.ETCD_PAUSE:
            assert 3 <= fault.target <= 6  # seconds: "a few"
        else:
            assert fault.target in (0, 1)


def test_the_full_layout() -> None:
    workloads, sources = layout(["a", "b", "c"], deployments=20, statefulsets=5, replicas=2)
    assert [w.kind for w in workloads].count("Deployment") == 20
    assert [w.kind for w in workloads].count("StatefulSet") == 5
    assert {w.namespace for w in workloads} == {"a", "b", "c"}
    assert len({w.name for w in workloads}) == 25
    assert any(w.roll_on_change for w in workloads)
    assert not all(w.roll_on_change for w in workloads)
    named = {(s.namespace, s.kind, s.name) for s in sources}
    for w in workloads:  # every source a workload references is created
        assert (w.namespace, "ConfigMap", w.config) in named
        assert (w.namespace, "Secret", w.secret) in named
    assert len(named) == len(sources)


def test_a_workload_references_its_sources_in_its_style() -> None:
    workloads, _ = layout(["a"], deployments=3, statefulsets=0, replicas=1)
    texts = [str(w.manifest()["spec"]["template"]["spec"]) for w in workloads]
    assert "secretKeyRef" in texts[0] and "'configMap'" in texts[0]
    assert "configMapRef" in texts[1] and "secretRef" in texts[1]
    assert "projected" in texts[2]
    statefulset = layout(["a"], deployments=0, statefulsets=1, replicas=1)[0][0].manifest()
    assert statefulset["spec"]["serviceName"] == statefulset["metadata"]["name"]


def test_a_secrets_data_is_recorded_as_stored() -> None:
    secret = Source("a", "Secret", "db").data(3)
    assert {k: base64.b64decode(v).decode() for k, v in secret.items()} == {
        "value": "db-3",
        "version": "3",
    }
    assert Source("a", "ConfigMap", "app").manifest(3)["data"] == {
        "value": "app-3",
        "version": "3",
    }


def test_only_admission_denials_are_reported() -> None:
    denied = (
        'Error from server (InternalError): admission webhook "workloads.configpin.io" denied '
        "the request: configpin failed (internal error); retry the request\n"
    )
    assert denial_of(denied) == ("internal-error", denied.strip())
    unreachable = (
        'Internal error occurred: failed calling webhook "workloads.configpin.io": '
        "failed to call webhook: Post ...: EOF"
    )
    assert denial_of(unreachable) == ("webhook-unreachable", unreachable)
    assert denial_of("The connection to the server 127.0.0.1:1 was refused") is None
    assert denial_of("Error from server: etcdserver: request timed out") is None


def test_counters_of_an_exposition() -> None:
    text = (
        "# TYPE configpin_snapshots counter\n"
        'configpin_snapshots_total{result="created"} 3.0\n'
        'configpin_snapshots_created{result="created"} 1.7e9\n'
        "# TYPE other counter\nother_total 5.0\n"
    )
    assert counters(text, ["configpin_snapshots_total"]) == {
        ("configpin_snapshots_total", (("result", "created"),)): 3.0
    }


class Counting(Member):
    """A stand-in process whose counter is set by the test: what Fleet sums."""

    def __init__(self) -> None:
        super().__init__("counting")
        self.count = 0.0
        self.running = False

    @property
    def process(self) -> None:
        return None

    def pid(self) -> int | None:
        return 1

    def exited(self) -> bool:
        return not self.running

    def start(self) -> None:
        self.running, self.count = True, 0.0

    def kill(self) -> None:
        self.running = False

    def stop(self) -> None:
        self.running = False

    def scrape(self) -> Samples:
        return {("n_total", ()): self.count}


def test_counts_are_summed_over_process_lifetimes() -> None:
    member = Counting()
    fleet = Fleet([member], lambda role, pid: None)
    member.start()
    member.count = 5
    fleet.kill("counting")  # scraped before the kill: its 5 are kept
    fleet.restart("counting")
    member.count = 2
    assert fleet.totals() == {("n_total", ()): 7}


def test_a_run_passes_only_with_no_violation_and_every_fault_injected() -> None:
    clean = {
        "invariants": {"a": {"violations": 0}},
        "faults": {"failed": {}},
        "observer": {"errors": []},
    }
    assert report.passed(clean)
    assert not report.passed({**clean, "observer": {"errors": ["watch of pods: KeyError"]}})
    assert not report.passed({**clean, "invariants": {"a": {"violations": 1}}})
    assert not report.passed({**clean, "faults": {"failed": {faults.APISERVER_RESTART: 1}}})
