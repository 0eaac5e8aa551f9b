"""What one review leaves for an operator: the log lines, the outcome counted in metrics and
the time taken, and how an internal error is answered and located."""

import base64
import json
import logging
import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from app.admission import service
from app.admission.pinner import OnFailure, Policy
from app.admission.review import parse_review
from app.admission.service import Admission
from app.metrics import Metrics
from tests.fakes import MemorySources
from tests.test_pinner import KEY, NS, bare_pod, deployment, world


def review(obj: dict[str, Any], dry_run: bool = False, **request: Any) -> dict[str, Any]:
    group = "apps" if obj["kind"] == "Deployment" else ""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7a1c",
            "kind": {"group": group, "version": "v1", "kind": obj["kind"]},
            "operation": "CREATE",
            "namespace": NS,
            "name": obj["metadata"].get("name", ""),
            "object": obj,
            "dryRun": dry_run,
            **request,
        },
    }


def answer(
    body: dict[str, Any], sources: MemorySources | None = None, policy: Policy | None = None
) -> tuple[dict[str, Any], Metrics]:
    metrics = Metrics()
    admission = Admission(sources or world(), policy or Policy(key=KEY), metrics)
    parsed = parse_review(json.dumps(body).encode(), admission.kinds)
    response: dict[str, Any] = admission.review(parsed)
    return response["response"], metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    value: float | None = metrics.registry.get_sample_value(name, labels)
    return value


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The review log lines at `level`, less the time each review took (it varies)."""
    return [
        re.sub(r" in \d+\.\d ms\b", "", r.getMessage())
        for r in caplog.records
        if r.name == "configpin.admission" and r.levelno == level
    ]


class TestLogLines:
    def test_each_review_logs_operation_kind_object_outcome_and_patch_size(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, "configpin.admission")
        response, _ = answer(review(deployment()))
        operations = len(json.loads(base64.b64decode(response["patch"])))
        assert messages(caplog, logging.INFO) == [
            f"CREATE Deployment {NS}/web: pinned, {operations} patch operations"
        ]

    def test_a_dry_run_says_so(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, "configpin.admission")
        answer(review(deployment(), dry_run=True))
        [line] = messages(caplog, logging.INFO)
        assert line.startswith(f"CREATE Deployment {NS}/web: pinned, ")
        assert line.endswith(" patch operations (dry run)")

    def test_a_pod_without_a_name_yet_is_logged_by_its_generate_name(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, "configpin.admission")
        pod = bare_pod()
        del pod["metadata"]["name"]
        pod["metadata"]["generateName"] = "web-7d9f-"
        answer(review(pod, name=""))
        assert messages(caplog, logging.INFO)[0].startswith(f"CREATE Pod {NS}/web-7d9f-: pinned")

    def test_a_pod_with_neither_name_nor_generate_name_is_logged_without_one(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Webhooks run before validation, which refuses such a Pod later.
        caplog.set_level(logging.INFO, "configpin.admission")
        pod = bare_pod()
        del pod["metadata"]["name"]
        answer(review(pod, name=""))
        assert messages(caplog, logging.INFO)[0].startswith(f"CREATE Pod {NS}/: pinned")

    def test_a_review_that_changes_nothing_is_logged_at_debug_only(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Without any namespace, in the review or the object: skipped, and said so.
        caplog.set_level(logging.DEBUG, "configpin.admission")
        pod = bare_pod()
        del pod["metadata"]["namespace"]
        answer(review(pod, namespace=""))
        assert messages(caplog, logging.DEBUG) == ["CREATE Pod /p: skipped, 0 patch operations"]
        assert messages(caplog, logging.INFO) == []

    def test_the_time_taken_is_logged_in_milliseconds_and_counted_in_seconds(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        caplog.set_level(logging.INFO, "configpin.admission")
        ticks = iter([10.0, 10.25])  # the review starts, then ends a quarter second later
        monkeypatch.setattr(service, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
        _, metrics = answer(review(deployment()))
        [line] = [r.getMessage() for r in caplog.records if r.name == "configpin.admission"]
        assert line.endswith(" patch operations in 250.0 ms")
        kind = {"kind": "Deployment"}
        assert sample(metrics, "configpin_admission_duration_seconds_sum", **kind) == 0.25

    def test_every_warning_is_logged_as_it_was_answered(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, "configpin.admission")
        response, _ = answer(review(deployment()), sources=world())
        assert messages(caplog, logging.WARNING) == []
        sources = MemorySources({NS: {"configpin.io/inject": "enabled"}})
        response, _ = answer(review(deployment()), sources=sources)
        assert messages(caplog, logging.WARNING) == [
            "configpin: required source not found, left unpinned: "
            f"secret {NS}/db, configmap {NS}/app-config"
        ]
        assert response["warnings"][0].startswith("configpin: required source not found")


class Broken(MemorySources):
    def read(self, namespace: str, kind: Any, name: str) -> Mapping[str, Any] | None:
        raise RuntimeError("a bug, quoting content: s3cr3t")


class TestInternalError:
    @pytest.mark.parametrize(
        ("kind_failure", "allowed"), [(OnFailure.ALLOW, True), (OnFailure.DENY, False)]
    )
    def test_is_answered_per_the_kind_setting_and_counted_as_error(
        self, kind_failure: OnFailure, allowed: bool
    ) -> None:
        sources = Broken({NS: {"configpin.io/inject": "enabled"}})
        policy = Policy(key=KEY, pod_failure=kind_failure)
        response, metrics = answer(review(bare_pod()), sources=sources, policy=policy)
        assert response["allowed"] is allowed
        if allowed:
            assert response["warnings"] == ["configpin: internal error, Pod admitted unpinned"]
        else:
            assert response["status"] == {
                "code": 500,
                # Not "nothing was changed": an error can come after a snapshot was made.
                "message": "configpin failed (internal error); retry the request",
            }
        assert sample(metrics, "configpin_admission_reviews_total", kind="Pod", outcome="error")

    def test_is_logged_with_its_type_and_where_it_happened_not_its_message(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        sources = Broken({NS: {"configpin.io/inject": "enabled"}})
        answer(review(bare_pod()), sources=sources)
        [line] = messages(caplog, logging.ERROR)
        head, _, where = line.partition(" at ")
        assert head == f"internal error while pinning Pod {NS}/p: RuntimeError"
        frames = where.split(" <- ")
        assert frames[0].startswith("test_admission_service.py:") and frames[0].endswith(" read")
        assert len(frames) > 2 and all("/" not in frame for frame in frames)
        assert any(frame.startswith("pinner.py:") for frame in frames)
        assert "s3cr3t" not in caplog.text


class TestMetrics:
    @pytest.mark.parametrize(
        ("body", "outcome"),
        [
            (review(deployment()), "pinned"),
            (review(deployment(), namespace="other"), "skipped"),
        ],
    )
    def test_the_outcome_and_the_time_taken_are_recorded(
        self, body: dict[str, Any], outcome: str
    ) -> None:
        _, metrics = answer(body)
        kind = {"kind": "Deployment"}
        assert sample(metrics, "configpin_admission_reviews_total", **kind, outcome=outcome) == 1
        seconds = sample(metrics, "configpin_admission_duration_seconds_sum", **kind)
        assert seconds is not None and 0 < seconds < 30
