"""`make chaos` (`python -m chaos`): configpin under faults on a throwaway dev cluster.

Two `configpin serve` replicas behind a loopback load balancer (chaos/lb.py) and two
`configpin controller` processes under leader election, all under the chart's identities;
a bounded workload typed with kubectl (chaos/workload.py); faults planned from a seed
(chaos/faults.py); the observer (chaos/observer.py) checks the invariants throughout and at
the end. Prints a table and writes the same figures as JSON; exits 1 on any violation or on
a fault that could not be injected."""

import argparse
import logging
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from app.kube.api import ApiError, ApiUnreachableError, RawApi, connect
from chaos import faults, report
from chaos.faults import Fault, Injector, Window
from chaos.lb import LoadBalancer
from chaos.observer import Observer
from chaos.processes import ControllerProcess, Fleet, Samples, ServeReplica
from chaos.workload import Driver, layout
from devkit.controllerproc import controller_identity, lease_holder
from devkit.devcluster import cluster_command, own_cluster_dir, start_cluster, stop_cluster
from devkit.localwebhook import Webhook, register_url, webhook_identity

log = logging.getLogger("chaos")
ROOT = Path(__file__).resolve().parents[1]
NAMESPACES = ("chaos-a", "chaos-b", "chaos-c")
BURST_SIZE = 20


@dataclass(frozen=True)
class Profile:
    deployments: int
    statefulsets: int
    replicas: int
    rollouts: int
    workers: int  # kubectl typists at once
    pause: tuple[float, float]  # seconds a typist waits between rollouts
    edit_interval: float  # seconds between source edits (on average)
    fault_rounds: int  # each round: every kind of fault once, in random order
    fault_gap: tuple[float, float]  # seconds between faults
    sweep_grace_seconds: float
    sweep_interval_seconds: float  # the controller's resync: one sweep pass
    budget_seconds: float  # the workload phase stops here whatever is left


FULL = Profile(
    deployments=20,
    statefulsets=5,
    replicas=2,
    rollouts=300,
    workers=3,
    pause=(0.5, 2.0),
    edit_interval=1.5,
    fault_rounds=3,
    fault_gap=(10, 25),
    sweep_grace_seconds=20,
    sweep_interval_seconds=2,
    budget_seconds=600,
)
# The same run, smaller: a few minutes, one fault of each kind.
SHORT = replace(
    FULL,
    deployments=4,
    statefulsets=1,
    rollouts=30,
    workers=2,
    pause=(0.5, 1.5),
    edit_interval=2.0,
    fault_rounds=1,
    fault_gap=(4, 8),
    sweep_grace_seconds=15,
    budget_seconds=240,
)
PROFILES = {"full": FULL, "short": SHORT}


class Run:
    """One chaos run; `close` stops everything it started, whatever happened."""

    def __init__(self, profile_name: str, seed: int, workdir: Path) -> None:
        self.name = profile_name
        self.profile = PROFILES[profile_name]
        self.seed = seed
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.cluster_dir = own_cluster_dir("cluster-chaos")
        self.cluster_started = False
        self.lb: LoadBalancer | None = None
        self.fleet: Fleet | None = None
        self.observer: Observer | None = None
        self.injector: Injector | None = None
        self.driver: Driver | None = None
        self.threads: list[threading.Thread] = []
        self.phases: dict[str, float] = {}
        self.revived: Counter[str] = Counter()  # cluster components started again
        self.closing = threading.Event()

    # -- the run

    def execute(self) -> dict[str, Any]:
        started = time.monotonic()
        p = self.profile
        fault_plan = faults.plan(self.rng, p.fault_rounds, p.fault_gap)
        log.info("fault plan: %s", ", ".join(f"+{f.gap_seconds:g}s {f.kind}" for f in fault_plan))

        with self._phase("cluster up"):
            self.cluster_started = True
            kubeconfig = start_cluster(self.cluster_dir)
            threading.Thread(target=self._revive, name="revive", daemon=True).start()
            admin = RawApi(connect(kubeconfig), timeout_seconds=30)
            self.observer = observer = Observer(admin, NAMESPACES)
            observer.start()
        with self._phase("configpin up"):
            fleet, lb = self._configpin(admin, kubeconfig, observer)
        with self._phase("workload created"):
            workloads, sources = layout(NAMESPACES, p.deployments, p.statefulsets, p.replicas)
            self.driver = driver = Driver(kubeconfig, admin, observer, workloads, sources)
            driver.create(NAMESPACES)

        with self._phase("rollouts under faults"):
            self.injector = injector = Injector(
                fault_plan, self._actions(admin, fleet, driver), self._record_fault
            )
            injector.start()
            typists_done = threading.Event()
            typists = [
                self._thread(driver.roll, p.rollouts, self.rng.getrandbits(64), p.pause)
                for _ in range(p.workers)
            ]

            def both_done() -> bool:
                return typists_done.is_set() and injector.done.is_set()

            self._thread(driver.edit, p.edit_interval, both_done, self.rng.getrandbits(64))
            deadline = time.monotonic() + p.budget_seconds
            for typist in typists:
                typist.join(max(0, deadline - time.monotonic()))
            typists_done.set()
            injector.done.wait(max(0, deadline - time.monotonic()))
            driver.stop.set()
            injector.stop()
            for thread in self.threads:
                thread.join(timeout=120)

        with self._phase("settle and sweep"):
            driver.end_bursts()
            driver.settle(timeout=180)
            # Everything made orphan by now is past the grace period and one sweep after
            # this: invariant 4 is checked within the run.
            time.sleep(p.sweep_grace_seconds + 3 * p.sweep_interval_seconds)
        with self._phase("final checks"):
            checked = observer.report(
                grace_seconds=p.sweep_grace_seconds,
                sweep_interval_seconds=p.sweep_interval_seconds,
            )
        counts = fleet.totals()
        return self._results(checked, counts, lb, started)

    def _configpin(
        self, admin: RawApi, kubeconfig: str, observer: Observer
    ) -> tuple[Fleet, LoadBalancer]:
        """Two webhook replicas serving one certificate behind the load balancer, the chart's
        webhook configuration pointed at it, two controllers under one Lease."""
        p = self.profile
        webhook_kubeconfig = webhook_identity(admin, kubeconfig, self.workdir)
        controller_kubeconfig = controller_identity(admin, kubeconfig, self.workdir)
        serve_a = Webhook(webhook_kubeconfig, self._dir("serve-a"))
        serve_b = Webhook(webhook_kubeconfig, self._dir("serve-b"), certs=serve_a.certs)
        controller_env = {
            "CONFIGPIN_HMAC_KEY_FILE": str(serve_a.certs / "hmac.key"),
            "CONFIGPIN_SWEEP_GRACE_SECONDS": str(p.sweep_grace_seconds),
            "CONFIGPIN_CONTROLLER_RESYNC_SECONDS": str(p.sweep_interval_seconds),
            "CONFIGPIN_ROLLOUT_RESYNC_SECONDS": "1",
            "CONFIGPIN_ROLLOUT_DEBOUNCE_SECONDS": "2",
        }
        members = [
            ServeReplica("serve-a", serve_a),
            ServeReplica("serve-b", serve_b),
            *(
                ControllerProcess(role, controller_kubeconfig, self._dir(role), controller_env)
                for role in ("controller-1", "controller-2")
            ),
        ]
        self.fleet = fleet = Fleet(members, observer.track_process)
        fleet.start()
        self.lb = lb = LoadBalancer([serve_a.port, serve_b.port])
        lb.start()
        register_url(admin, f"https://127.0.0.1:{lb.port}", serve_a.ca_bundle)
        return fleet, lb

    # -- faults

    def _actions(
        self, admin: RawApi, fleet: Fleet, driver: Driver
    ) -> dict[str, Callable[[Fault], str]]:
        def kill_and_restart(role: str) -> str:
            with fleet.lock:
                pid = fleet.members[role].pid()
                fleet.kill(role)
                time.sleep(1)  # a kubelet restarts a container after a moment
                fleet.restart(role)
            return f"{role} (pid {pid}) killed and restarted"

        def webhook_kill(fault: Fault) -> str:
            return kill_and_restart(("serve-a", "serve-b")[fault.target])

        def controller_kill(fault: Fault) -> str:
            holder = _leader(admin) or ""
            role = holder.rpartition("#")[0]  # the identity is "<role>#<start>"
            if role not in fleet.members:
                raise RuntimeError(f"no controller of this run holds the Lease ({holder!r})")
            return f"leader {kill_and_restart(role)}"

        def apiserver_restart(fault: Fault) -> str:
            cluster_command(self.cluster_dir, "restart-apiserver")
            return "kube-apiserver stopped and started"

        def etcd_pause(fault: Fault) -> str:
            cluster_command(self.cluster_dir, "pause-etcd", str(fault.target))
            return f"etcd frozen for {fault.target}s"

        def snapshot_burst(fault: Fault) -> str:
            return driver.burst(NAMESPACES[fault.target % len(NAMESPACES)], BURST_SIZE)

        return {
            faults.WEBHOOK_KILL: webhook_kill,
            faults.CONTROLLER_KILL: controller_kill,
            faults.APISERVER_RESTART: apiserver_restart,
            faults.ETCD_PAUSE: etcd_pause,
            faults.SNAPSHOT_BURST: snapshot_burst,
        }

    def _revive(self) -> None:
        """A kubelet's part for the cluster's own components: start again what exited."""
        while not self.closing.wait(5):
            try:
                revived = cluster_command(self.cluster_dir, "revive").split()
            except subprocess.CalledProcessError:
                continue
            self.revived.update(revived)
            for name in revived:
                log.warning("%s had exited; started again", name)

    def _record_fault(self, window: Window) -> None:
        assert self.observer is not None
        self.observer.record_fault(window.kind, window.started, window.ended)

    # -- results

    def _results(
        self, checked: dict[str, Any], counts: Samples, lb: LoadBalancer, started: float
    ) -> dict[str, Any]:
        assert self.driver is not None and self.injector is not None and self.fleet is not None
        driver, injector, fleet = self.driver, self.injector, self.fleet
        observed = checked.get("snapshots", {})
        return {
            "seed": self.seed,
            "profile": self.name,
            "settings": asdict(self.profile),
            "seconds": round(time.monotonic() - started, 1),
            "phases": self.phases,
            "rollouts": {
                "target": self.profile.rollouts,
                "done": sum(driver.rollouts.values()),
                "by_action": dict(sorted(driver.rollouts.items())),
                "on_change": report.total(counts, "configpin_rollouts_on_change_total"),
                "status_timeouts": driver.unfinished,
            },
            "edits": driver.edits,
            "faults": {
                "injected": {k: injector.injected().get(k, 0) for k in faults.KINDS},
                "failed": dict(injector.failed),
                "windows": [
                    {
                        "kind": w.kind,
                        "seconds": round(w.ended - w.started, 1),
                        "detail": w.detail,
                    }
                    for w in injector.windows
                ],
            },
            "admissions": report.by_label(counts, "configpin_admission_reviews_total", "outcome"),
            "admissions_by_kind": report.by_label(
                counts, "configpin_admission_reviews_total", "kind"
            ),
            "snapshots": {
                "created (admissions)": report.by_label(
                    counts, "configpin_snapshots_total", "result"
                ).get("created", 0),
                "reused (admissions)": report.by_label(
                    counts, "configpin_snapshots_total", "result"
                ).get("reused", 0),
                "owned (controller)": report.total(counts, "configpin_snapshots_owned_total"),
                "swept (controller)": report.total(counts, "configpin_snapshots_swept_total"),
                "created (watched)": observed.get("created", 0),
                "deleted (watched)": observed.get("deleted", 0),
            },
            "invariants": checked["invariants"],
            # What the observer checked, and any watch thread of it that died: its invariants
            # then went unwatched, so such a run proves less and does not pass.
            "observer": {
                "checked": checked.get("checked", {}),
                "errors": checked.get("observer_errors", []),
            },
            "denials": dict(sorted(driver.denials.items())),
            "denials_observed": checked.get("denials", {}),
            "memory": checked.get("memory", {}),
            "restarts": dict(fleet.restarts),
            "cluster_components_restarted": dict(self.revived),
            "burst_creates": dict(driver.bursts),
            "kubectl": {"retries": driver.retries, "given_up": dict(driver.errors)},
            "load_balancer": {
                "connections": {str(k): v for k, v in lb.connections.items()},
                "refused": lb.refused,
            },
            "api_errors_while_pinning": report.total(counts, "configpin_api_errors_total"),
        }

    # -- plumbing

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _thread(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    class _Timer:
        def __init__(self, phases: dict[str, float], name: str) -> None:
            self.phases, self.name = phases, name

        def __enter__(self) -> None:
            log.info("== %s", self.name)
            self.started = time.monotonic()

        def __exit__(self, *_: object) -> None:
            self.phases[self.name] = round(time.monotonic() - self.started, 1)

    def _phase(self, name: str) -> "Run._Timer":
        return Run._Timer(self.phases, name)

    def close(self) -> None:
        """Stop everything this run started, in reverse order; each step on its own."""
        self.closing.set()
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.driver is not None:
            steps.append(("workload", self.driver.stop.set))
        if self.injector is not None:
            steps.append(("faults", self.injector.stop))
        if self.observer is not None:
            steps.append(("observer", self.observer.stop))
        if self.lb is not None:
            steps.append(("load balancer", self.lb.stop))
        if self.fleet is not None:
            steps.append(("configpin processes", self.fleet.stop))
        if self.cluster_started:
            steps.append(("cluster", lambda: stop_cluster(self.cluster_dir)))
        for what, step in steps:
            try:
                step()
            except Exception:
                log.exception("stopping the %s failed", what)


def _leader(admin: RawApi) -> str | None:
    """The Lease's holder; None while the API cannot say."""
    for _ in range(20):
        try:
            return lease_holder(admin)
        except (ApiError, ApiUnreachableError):
            time.sleep(0.5)
    return None


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seed", type=int, help="replays the run of that seed (default: new)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--out", type=Path, default=ROOT / "chaos" / "results.json")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per scrape otherwise
    print(f"chaos: seed {seed} (replay: make chaos SEED={seed})", flush=True)
    signal.signal(signal.SIGTERM, _interrupted)
    workdir = Path(tempfile.mkdtemp(prefix=f"configpin-chaos-{seed}-"))
    log.info("logs of the configpin processes in %s", workdir)
    run = Run(args.profile, seed, workdir)
    try:
        results = run.execute()
    finally:
        run.close()
    results["logs"] = str(workdir)
    report.write(results, args.out)
    print(report.table(results), flush=True)
    print(f"results: {args.out}", flush=True)
    return 0 if report.passed(results) else 1
