"""Leader election on a coordination.k8s.io Lease, with the official client's
`kubernetes.leaderelection` (acquire, renew with the Lease's resourceVersion, take over an
expired Lease): nothing of it is written here but the wiring.

What that library does not do, and this module does: it talks through the client's global
default configuration (the lock is given ours), and when leadership is lost it only calls
back while the leading thread runs on; here the work is told to stop and the caller exits,
so a replica that lost the Lease never acts as leader again (as controller-runtime does).
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger("configpin.leader")


def run_or_stop(work: Callable[[threading.Event], None], stop: threading.Event) -> None:
    """Run `work(stop)`; if it dies, set `stop`. The election keeps renewing the Lease from
    its own thread, so a leader whose work died would otherwise hold it doing nothing: the
    replica exits instead and another one leads."""
    try:
        work(stop)
    except Exception as error:
        # The type only: a message could quote object content.
        log.error(
            "the leader's work failed (%s); stopping so another replica leads", type(error).__name__
        )
        stop.set()


@dataclass(frozen=True)
class LeaseTimes:
    duration: int = 15  # a follower takes over this long after the leader's last renewal
    renew_deadline: int = 10
    retry_period: int = 2


def lead(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    identity: str,
    times: LeaseTimes,
    work: Callable[[threading.Event], None],
    stop: threading.Event,
) -> None:
    """Wait for the Lease, then run `work(stop)` while it is held. Returns once leadership
    is lost (or never, while following); `stop` is set then."""
    lock = LeaseLock(name, namespace, identity)  # type: ignore[no-untyped-call]
    lock.api_instance = client.CoordinationV1Api(api_client)

    def started() -> None:
        log.info("%s leads (Lease %s/%s)", identity, namespace, name)
        run_or_stop(work, stop)

    def stopped() -> None:
        log.warning("%s lost the Lease %s/%s", identity, namespace, name)
        stop.set()

    config = electionconfig.Config(  # type: ignore[no-untyped-call]
        lock,
        lease_duration=times.duration,
        renew_deadline=times.renew_deadline,
        retry_period=times.retry_period,
        onstarted_leading=started,
        onstopped_leading=stopped,
    )
    leaderelection.LeaderElection(config).run()  # type: ignore[no-untyped-call]
    stop.set()
