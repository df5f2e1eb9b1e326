"""The density benchmark's reading of the control service's request-duration
histogram (tests/bench/server_metrics.py): a verb's p99 and share within a
bound between two scrapes, from the exposition the service's own
ControlMetrics writes (what ``/metrics`` serves)."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from control.server.metrics import ControlMetrics
from tests.bench.server_metrics import histogram_quantile, parse, verb_latency


def exposition(metrics: ControlMetrics):
    return parse(generate_latest(metrics.registry).decode())


def observe(metrics: ControlMetrics, kind: str, verb: str, seconds: float, times: int = 1) -> None:
    for _ in range(times):
        metrics.request_duration.labels(kind, verb).observe(seconds)


def test_p99_and_share_within_the_bound_count_only_requests_between_the_scrapes():
    metrics = ControlMetrics()
    observe(metrics, "Pod", "create", 7.0, times=50)  # before the first scrape: not counted
    before = exposition(metrics)
    observe(metrics, "Pod", "create", 0.003, times=97)
    observe(metrics, "Event", "create", 0.003, times=1)
    observe(metrics, "Event", "create", 2.0, times=2)
    observe(metrics, "Pod", "update", 0.2)  # another verb
    found = verb_latency(before, exposition(metrics), verb="create", bound=1.0)

    assert found.requests == 100
    assert found.within == pytest.approx(0.98)
    assert 1.0 < found.p99 <= 2.5  # rank 99 falls among the two 2 s requests: the (1, 2.5] bucket
    assert found.slowest_kind == "Event"
    assert 1.0 < found.slowest_p99 <= 2.5
    assert found.ceiling == 10.0  # the service's last finite bucket bound


def test_a_p99_beyond_the_last_bucket_is_infinite():
    metrics = ControlMetrics()
    observe(metrics, "Lease", "update", 0.004, times=98)
    observe(metrics, "Lease", "update", 12.0, times=2)
    found = verb_latency({}, exposition(metrics), verb="update", bound=1.0)
    assert found.p99 == math.inf and found.slowest_p99 == math.inf
    assert found.within == pytest.approx(0.98)


def test_a_verb_without_requests_has_no_percentile():
    metrics = ControlMetrics()
    observe(metrics, "Pod", "create", 0.01)
    found = verb_latency({}, exposition(metrics), verb="delete", bound=1.0)
    assert found.requests == 0 and math.isnan(found.p99)


def test_the_bound_must_be_a_bucket_bound():
    metrics = ControlMetrics()
    observe(metrics, "Pod", "patch", 0.01)
    with pytest.raises(ValueError, match="0.75 s is not a bucket bound"):
        verb_latency({}, exposition(metrics), verb="patch", bound=0.75)


def test_histogram_quantile_interpolates_within_the_bucket_and_is_infinite_beyond_the_last_bound():
    buckets = {0.1: 50.0, 0.2: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.99, {0.1: 0.0, 1.0: 1.0, math.inf: 100.0}) == math.inf
    assert math.isnan(histogram_quantile(0.99, {0.1: 0.0, math.inf: 0.0}))
