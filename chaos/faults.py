"""The faults of a chaos run, planned from its seed so that a run can be replayed: their
order and the gaps between them, which replica is killed, how long etcd stays frozen."""

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("chaos")

WEBHOOK_KILL = "webhook-kill"
CONTROLLER_KILL = "controller-kill"
APISERVER_RESTART = "apiserver-restart"
ETCD_PAUSE = "etcd-pause"
SNAPSHOT_BURST = "snapshot-burst"
KINDS = (WEBHOOK_KILL, CONTROLLER_KILL, APISERVER_RESTART, ETCD_PAUSE, SNAPSHOT_BURST)


@dataclass(frozen=True)
class Fault:
    kind: str
    gap_seconds: float  # after the previous fault ended (or the workload started)
    target: int  # which replica a webhook-kill hits; the etcd pause in seconds


def plan(rng: random.Random, rounds: int, gap: tuple[float, float]) -> list[Fault]:
    """`rounds` rounds of every kind, each round in its own random order: every kind is
    injected as often as the others, at moments nobody chose."""
    faults = []
    for _ in range(rounds):
        for kind in rng.sample(KINDS, len(KINDS)):
            target = rng.randint(3, 6) if kind == ETCD_PAUSE else rng.randint(0, 1)
            faults.append(Fault(kind, round(rng.uniform(*gap), 1), target))
    return faults


@dataclass(frozen=True)
class Window:
    kind: str
    started: float  # time.time()
    ended: float
    detail: str


class Injector:
    """Runs a plan in its own thread; each fault is one call of its kind's action, which
    returns once the system is whole again (a replica ready, the API server answering)."""

    def __init__(
        self,
        faults: Sequence[Fault],
        actions: dict[str, Callable[[Fault], str]],
        on_window: Callable[[Window], None],
    ) -> None:
        self.faults = list(faults)
        self.actions = actions
        self.on_window = on_window
        self.windows: list[Window] = []
        self.failed: Counter[str] = Counter()
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for fault in self.faults:
                if self._stop.wait(fault.gap_seconds):
                    return
                started = time.time()
                log.info("fault: %s (target %s)", fault.kind, fault.target)
                try:
                    detail = self.actions[fault.kind](fault)
                except Exception:  # reported, and the run goes on
                    log.exception("fault %s failed", fault.kind)
                    self.failed[fault.kind] += 1
                    continue
                window = Window(fault.kind, started, time.time(), detail)
                self.windows.append(window)
                self.on_window(window)
                log.info(
                    "fault %s over after %.1fs: %s", fault.kind, window.ended - started, detail
                )
        finally:
            self.done.set()

    def injected(self) -> Counter[str]:
        return Counter(w.kind for w in self.windows)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)
