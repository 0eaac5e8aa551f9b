"""Prometheus metrics. Labels carry kinds and outcomes only, never object content."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reviews = Counter(
            "configpin_admission_reviews",
            "Admission reviews answered, by object kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "configpin_admission_duration_seconds",
            "Time to answer one admission review.",
            ["kind"],
            # From 100 µs: a review the object alone decides takes tens of microseconds.
            buckets=(
                0.0001,
                0.00025,
                0.0005,
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
            ),
            registry=self.registry,
        )
        self.snapshots = Counter(
            "configpin_snapshots",
            "Snapshots needed by admissions: created, or reused because identical content existed.",
            ["result"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "configpin_api_errors",
            "Kubernetes API failures while pinning, by object kind.",
            ["kind"],
            registry=self.registry,
        )
        self.unpinned_pods = Counter(
            "configpin_unpinned_pods",
            "Pods admitted with live references because their controller's kind is not in "
            "the table of workload kinds, by that kind.",
            ["owner_kind"],
            registry=self.registry,
        )
        self.unpinned = Counter(
            "configpin_unpinned_references",
            "References admitted unpinned because their required source does not exist.",
            ["kind"],
            registry=self.registry,
        )
        self.bad_requests = Counter(
            "configpin_bad_requests",
            "Requests refused before review: too large, wrong content type, malformed.",
            ["status"],
            registry=self.registry,
        )
        self.kube_requests = Counter(
            "configpin_kube_requests",
            "Requests sent to the Kubernetes API, by verb and resource (answered or not).",
            ["verb", "resource"],
            registry=self.registry,
        )


class ControllerMetrics:
    """The lifecycle controller's: ownership, sweeping, in-use protection."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.owned = Counter(
            "configpin_snapshots_owned",
            "Snapshots given ownerReferences to what runs with them.",
            registry=self.registry,
        )
        self.swept = Counter(
            "configpin_snapshots_swept",
            "Orphan snapshots deleted after the grace period.",
            registry=self.registry,
        )
        self.orphans = Gauge(
            "configpin_snapshot_orphans",
            "Snapshots owned and used by nothing, seen in the last pass (swept once old enough).",
            registry=self.registry,
        )
        self.held = Gauge(
            "configpin_snapshots_held",
            "Snapshots being deleted that something still uses, in the last pass.",
            registry=self.registry,
        )
        self.releases = Counter(
            "configpin_snapshot_releases",
            "In-use finalizers removed from snapshots nothing uses any more.",
            registry=self.registry,
        )
        self.held_seconds = Histogram(
            "configpin_snapshot_held_seconds",
            "Time from a snapshot's deletion being asked for to its release.",
            buckets=(1, 5, 15, 30, 60, 300, 900, 3600, 21600, 86400, 604800),
            registry=self.registry,
        )
        self.passes = Counter(
            "configpin_controller_passes",
            "Controller passes, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.rollouts = Counter(
            "configpin_rollouts_on_change",
            "Workloads rolled because a source they use changed, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "configpin_controller_leader",
            "1 while this replica holds the Lease.",
            registry=self.registry,
        )
