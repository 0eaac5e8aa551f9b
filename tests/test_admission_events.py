"""Warning Events from a review: one per failed-open admission, none on a dry-run (a
dry-run must leave nothing behind) and none when pinning went well."""

import json
from collections.abc import Mapping
from typing import Any

import pytest

from app.admission.pinner import Policy
from app.admission.review import parse_review
from app.admission.service import Admission
from app.metrics import Metrics
from tests.test_pinner import KEY, NS, bare_pod, world


class RecordingEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str, str]] = []

    def warn(self, namespace: str, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.recorded.append((namespace, obj["metadata"]["name"], reason, message))


def answer(events: RecordingEvents, fail: bool, dry_run: bool) -> dict[str, Any]:
    sources = world()
    if fail:
        sources.fail_next("read", "secret", NS, "db")
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f1e",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": NS,
            "name": "p",
            "object": bare_pod(),
            "dryRun": dry_run,
        },
    }
    admission = Admission(sources, Policy(key=KEY), Metrics(), events)
    parsed = parse_review(json.dumps(review).encode(), admission.kinds)
    response: dict[str, Any] = admission.review(parsed)["response"]
    return response


def test_a_pod_admitted_unpinned_gets_one_warning_event() -> None:
    events = RecordingEvents()
    response = answer(events, fail=True, dry_run=False)
    assert response["allowed"] is True and "patch" not in response
    [(namespace, name, reason, message)] = events.recorded
    assert (namespace, name, reason) == (NS, "p", "PinningFailed")
    assert "secret shop/db" in message and response["warnings"] == [message]


@pytest.mark.parametrize(("fail", "dry_run"), [(True, True), (False, False), (False, True)])
def test_no_event_on_a_dry_run_or_when_pinning_succeeded(fail: bool, dry_run: bool) -> None:
    events = RecordingEvents()
    response = answer(events, fail=fail, dry_run=dry_run)
    assert response["allowed"] is True
    assert events.recorded == []
