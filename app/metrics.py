"""Prometheus metrics. Labels carry kinds and outcomes only, never object content."""

from prometheus_client import CollectorRegistry, Counter, Histogram


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
