"""A leader whose work dies gives up instead of holding the Lease doing nothing."""

import logging
import threading

import pytest

from app.kube.leader import run_or_stop


def test_work_that_dies_sets_stop_and_logs_only_the_type(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()

    def work(_stop: threading.Event) -> None:
        raise KeyError("s3cr3t-value")

    with caplog.at_level(logging.ERROR):
        run_or_stop(work, stop)
    assert stop.is_set()
    assert "KeyError" in caplog.text
    assert "s3cr3t-value" not in caplog.text


def test_work_that_returns_leaves_stop_to_the_caller() -> None:
    stop = threading.Event()
    ran: list[bool] = []
    run_or_stop(lambda _stop: ran.append(True), stop)
    assert ran == [True]
    assert not stop.is_set()
