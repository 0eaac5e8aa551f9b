"""Answer one AdmissionReview: envelope in, pinning sequence, response out, metrics."""

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from prometheus_client import Counter, Histogram

from app.admission.pinner import (
    OnFailure,
    Outcome,
    PinRequest,
    Policy,
    pin,
    pin_offline,
    pin_online,
)
from app.admission.review import AdmissionReview, response
from app.admission.sources import Sources
from app.domain.workloads import WorkloadKind, Workloads
from app.metrics import Metrics

log = logging.getLogger("configpin.admission")
QUIET_RESULTS = frozenset({"unchanged", "skipped"})


class EventSink(Protocol):
    def warn(self, namespace: str, obj: Mapping[str, Any], reason: str, message: str) -> None:
        """Record a Warning Event about `obj`; best effort, never raises."""


class Admission:
    def __init__(
        self, sources: Sources, policy: Policy, metrics: Metrics, events: EventSink | None = None
    ) -> None:
        self._sources = sources
        self._policy = policy
        self._metrics = metrics
        self._events = events
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    @property
    def kinds(self) -> Workloads:
        return self._policy.kinds

    def review(self, review: AdmissionReview) -> dict[str, Any]:
        """The answer, asking the cluster where needed: blocking, keep it off the event loop."""
        answer = self._answer(review, lambda request: pin(request, self._sources, self._policy))
        assert answer is not None  # pin always decides
        return answer

    def review_offline(self, review: AdmissionReview) -> dict[str, Any] | None:
        """The answer when the object alone decides it (no API call, safe on the event
        loop); None when the review needs `review_online`."""
        return self._answer(review, lambda request: pin_offline(request, self._policy))

    def review_online(self, review: AdmissionReview) -> dict[str, Any]:
        """`review` for a review that `review_offline` left undecided, without deciding
        offline again: blocking, keep it off the event loop."""
        answer = self._answer(
            review, lambda request: pin_online(request, self._sources, self._policy)
        )
        assert answer is not None  # pin_online always decides
        return answer

    def _answer(
        self, review: AdmissionReview, decide: Callable[[PinRequest], Outcome | None]
    ) -> dict[str, Any] | None:
        request = review.request
        kind = request.workload
        started = time.perf_counter()
        pin_request = PinRequest(
            kind=kind,
            operation=request.operation,
            namespace=request.namespace
            or (request.object.get("metadata") or {}).get("namespace", ""),
            obj=request.object,
            old=request.old_object,
            dry_run=request.dry_run,
        )
        try:
            decided = decide(pin_request)
            if decided is None:
                return None
            outcome = decided
        except Exception as error:
            # A bug must not become an accidental denial: the kind's failure setting decides.
            # Logged without the exception's message, which could quote object content.
            log.error(
                "internal error while pinning %s %s/%s: %s at %s",
                kind.kind,
                pin_request.namespace,
                request.name,
                type(error).__name__,
                _where(error),
            )
            outcome = _internal_error(kind, self._policy)
        if outcome.event and self._events is not None and not request.dry_run:
            self._events.warn(
                pin_request.namespace, request.object, outcome.event_reason, outcome.event
            )
        seconds = time.perf_counter() - started
        self._record(kind.kind, outcome, seconds)
        # Reviews that change nothing (every Pod of a pinned ReplicaSet) are the bulk: one
        # line each at INFO would drown the ones that pinned, warned or denied.
        quiet = outcome.allowed and not outcome.patch and outcome.result in QUIET_RESULTS
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s %s/%s: %s, %d patch operations in %.1f ms%s",
            request.operation,
            kind.kind,
            pin_request.namespace,
            request.name or (request.object.get("metadata") or {}).get("generateName", ""),
            outcome.result,
            len(outcome.patch),
            seconds * 1000,
            " (dry run)" if request.dry_run else "",
        )
        for warning in outcome.warnings:
            log.warning("%s", warning)
        return response(request.uid, outcome)

    def _record(self, kind: str, outcome: Outcome, seconds: float) -> None:
        key = (kind, outcome.result)
        children = self._children.get(key)
        if children is None:  # finding a labelled child costs more than counting with it
            children = self._children[key] = (
                self._metrics.reviews.labels(kind=kind, outcome=outcome.result),
                self._metrics.latency.labels(kind=kind),
            )
        reviewed, timed = children
        reviewed.inc()
        timed.observe(seconds)
        if outcome.created:
            self._metrics.snapshots.labels(result="created").inc(outcome.created)
        if outcome.reused:
            self._metrics.snapshots.labels(result="reused").inc(outcome.reused)
        if outcome.api_failure:
            self._metrics.api_errors.labels(kind=kind).inc()
        if outcome.unpinned_owner is not None:
            self._metrics.unpinned_pods.labels(owner_kind=outcome.unpinned_owner).inc()
        if outcome.unpinned:
            self._metrics.unpinned.labels(kind=kind).inc(outcome.unpinned)


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return " <- ".join(
        f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames)
    )


def _internal_error(kind: WorkloadKind, policy: Policy) -> Outcome:
    if policy.on_failure(kind) == OnFailure.DENY:
        return Outcome(
            "error",
            allowed=False,
            denial="configpin failed (internal error); retry the request",
            status_code=500,
        )
    return Outcome("error", warnings=(f"configpin: internal error, {kind.kind} admitted unpinned",))
