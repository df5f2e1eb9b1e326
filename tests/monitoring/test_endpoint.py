"""The control service's monitoring HTTP server (control/monitoring/endpoint.py):
/metrics from the registry, /sd from the discovery function given the Host
the request was sent to, 503 naming the reason when discovery fails, 404
elsewhere."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from control.monitoring.endpoint import MonitoringServer


@pytest.fixture
def served() -> Iterator[tuple[MonitoringServer, list[str]]]:
    registry = CollectorRegistry()
    Counter("sampan_test_things", "Things.", registry=registry).inc(3)
    asked: list[str] = []

    def discover(host: str) -> list[dict]:
        asked.append(host)
        if host.startswith("localhost"):
            raise LookupError("the store is unreachable")
        return [{"targets": [host], "labels": {"role": "control"}}]

    server = MonitoringServer(host="127.0.0.1", port=0, registry=registry, discover=discover)
    yield server, asked
    server.stop()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_metrics_serves_the_registry(served):
    server, _ = served
    status, _, body = get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200 and "sampan_test_things_total 3.0" in body


def test_sd_answers_json_for_the_host_it_was_asked_at(served):
    server, asked = served
    status, content_type, body = get(f"http://127.0.0.1:{server.port}/sd")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == [{"targets": [f"127.0.0.1:{server.port}"], "labels": {"role": "control"}}]
    assert asked == [f"127.0.0.1:{server.port}"]


def test_a_failing_discovery_is_503_with_the_reason_and_the_server_keeps_serving(served):
    server, _ = served
    status, _, body = get(f"http://localhost:{server.port}/sd")
    assert status == 503 and "the store is unreachable" in body
    assert get(f"http://127.0.0.1:{server.port}/metrics")[0] == 200


def test_other_paths_are_404_naming_the_served_ones(served):
    server, _ = served
    status, _, body = get(f"http://127.0.0.1:{server.port}/targets")
    assert status == 404 and "/metrics" in body and "/sd" in body
