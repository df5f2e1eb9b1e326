"""The density benchmark's reading of a control service's log
(tests/bench/bench_density.py: leadership_losses): each "lost leadership"
line the leader elector writes, with its time and reason, in the log format
the control service configures."""

from __future__ import annotations

import io
import logging
import time

import pytest

from control import leaderelection
from tests.bench.bench_density import leadership_losses

SERVICE_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # control/service.py's


@pytest.fixture
def service_log():
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter(SERVICE_LOG_FORMAT))
    logger = leaderelection.log  # the leader elector's own logger
    logger.addHandler(handler)
    try:
        yield logger, text
    finally:
        logger.removeHandler(handler)


def test_each_lost_leadership_line_gives_its_time_and_reason(service_log):
    logger, text = service_log
    before = time.time()
    logger.warning("%s lost leadership: %s", "host-1", "no renewal within the renew deadline (10 s)")
    logger.warning("%s became leader (lease %s/%s)", "host-1", "kube-system", "sampan-control")
    logger.warning("%s lost leadership: %s", "host-1", "the work it led ended")
    after = time.time()

    losses = leadership_losses(text.getvalue())

    assert [reason for _, reason in losses] == [
        "no renewal within the renew deadline (10 s)", "the work it led ended"]
    assert all(before - 0.001 <= when <= after for when, _ in losses)  # asctime has milliseconds


def test_a_log_without_losses_gives_none():
    assert leadership_losses("2026-11-26 05:29:01,000 INFO sampan.control: control service listening\n") == []
