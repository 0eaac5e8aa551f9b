"""configpin's own processes in the chaos run: `configpin serve` replicas and `configpin
controller` processes, each under the chart's identity, restarted when they exit as their
Deployment would restart them, their counters scraped and summed over process lifetimes."""

import logging
import signal
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families

from devkit.controllerproc import Controller
from devkit.localwebhook import Webhook, free_port

log = logging.getLogger("chaos")

WEBHOOK_COUNTERS = (
    "configpin_admission_reviews_total",
    "configpin_snapshots_total",
    "configpin_api_errors_total",
)
CONTROLLER_COUNTERS = (
    "configpin_snapshots_owned_total",
    "configpin_snapshots_swept_total",
    "configpin_snapshot_releases_total",
    "configpin_rollouts_on_change_total",
)
SCRAPE_SECONDS = 3.0  # what an unforeseen exit can lose of a process's counts

# (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def counters(text: str, names: Iterable[str]) -> Samples:
    """The samples of the named counters in a Prometheus text exposition."""
    wanted = set(names)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted
    }


class Member:
    """One configpin process with a role name (serve-a, controller-1, ...)."""

    def __init__(self, role: str) -> None:
        self.role = role

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def scrape(self) -> Samples:
        raise NotImplementedError

    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a node dies."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        raise NotImplementedError


class ServeReplica(Member):
    def __init__(self, role: str, webhook: Webhook) -> None:
        super().__init__(role)
        self.webhook = webhook
        self._trust = ssl.create_default_context(cafile=str(webhook.certs / "ca.crt"))

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.webhook.process

    def start(self) -> None:
        self.webhook.start()  # returns once /readyz answers

    def scrape(self) -> Samples:
        url = f"{self.webhook.url}/metrics"
        text = httpx.get(url, verify=self._trust, timeout=2).text
        return counters(text, WEBHOOK_COUNTERS)

    def stop(self) -> None:
        self.webhook.stop()


class ControllerProcess(Member):
    def __init__(self, role: str, kubeconfig: str, workdir: Path, env: Mapping[str, str]) -> None:
        super().__init__(role)
        self.metrics_port = free_port()
        env = {**env, "CONFIGPIN_METRICS_PORT": str(self.metrics_port)}
        self.controller = Controller(kubeconfig, workdir, role, env)
        self.starts = 0

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.controller.process

    def start(self) -> None:
        # A new identity in the Lease each start, as a Deployment's new Pod has a new name:
        # a restarted leader does not simply resume its own Lease.
        self.starts += 1
        self.controller.env["CONFIGPIN_POD_NAME"] = f"{self.role}#{self.starts}"
        self.controller.start()

    def scrape(self) -> Samples:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        return counters(text, CONTROLLER_COUNTERS)

    def stop(self) -> None:
        self.controller.stop()


class Fleet:
    """The processes, a supervisor that restarts any that exits, and their counters summed
    over every lifetime (the last scrape of each ended lifetime, plus the current ones)."""

    def __init__(self, members: Iterable[Member], on_start: Callable[[str, int], None]) -> None:
        self.members = {m.role: m for m in members}
        self.on_start = on_start
        self.lock = threading.RLock()
        self.restarts: Counter[str] = Counter()  # exits nobody asked for
        self._ended: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._current: dict[str, Samples] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="fleet", daemon=True)

    def start(self) -> None:
        for member in self.members.values():
            self._start(member)
        self._thread.start()

    def _start(self, member: Member) -> None:
        member.start()
        pid = member.pid()
        assert pid is not None
        self.on_start(member.role, pid)

    def scrape(self, role: str) -> None:
        member = self.members[role]
        if member.exited():
            return
        try:
            self._current[role] = member.scrape()
        except httpx.HTTPError as error:
            log.info("could not scrape %s: %s", role, error)

    def kill(self, role: str) -> None:
        """Scrape, then SIGKILL `role`: its counts so far are kept."""
        with self.lock:
            self.scrape(role)
            self.members[role].kill()
            self._end_lifetime(role)

    def restart(self, role: str) -> None:
        with self.lock:
            self._start(self.members[role])

    def _end_lifetime(self, role: str) -> None:
        self._ended.update(self._current.pop(role, {}))

    def totals(self) -> Samples:
        with self.lock:
            for role in self.members:
                self.scrape(role)
            total = Counter(self._ended)
            for samples in self._current.values():
                total.update(samples)
            return dict(total)

    def _supervise(self) -> None:
        last_scrape = 0.0
        while not self._stop.wait(0.5):
            with self.lock:
                for role, member in self.members.items():
                    if self._stop.is_set():
                        return
                    if member.exited():
                        log.warning("%s exited on its own; starting it again", role)
                        self.restarts[role] += 1
                        self._end_lifetime(role)
                        try:
                            self._start(member)
                        except Exception as error:  # exited at once, or never ready: next round
                            log.warning("%s did not start: %s", role, error)
                if time.monotonic() - last_scrape >= SCRAPE_SECONDS:
                    for role in self.members:
                        self.scrape(role)
                    last_scrape = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)
        for member in self.members.values():
            member.stop()
