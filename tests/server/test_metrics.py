"""The control service's Prometheus endpoint counts requests by kind, verb and
code, times them, and reports open watches and store operations."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from control.api import errors
from control.client import Client
from control.service import ControlConfig, ControlService
from protos.api.v1 import core_pb2
from tests.server.test_api import make_pod
from tests.support.control import free_port


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture
async def metered(tmp_path):
    port = free_port()
    svc = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0",
        metrics_listen=f"127.0.0.1:{port}", shutdown_grace=0.5))
    await svc.start()
    async with Client.connect(f"127.0.0.1:{svc.port}") as client:
        yield client, port
    await svc.stop()


async def test_requests_are_counted_by_kind_verb_and_code(metered):
    api, port = metered
    await api.create(make_pod("web"))
    with pytest.raises(errors.NotFoundError):
        await api.get("Pod", "ghost", namespace="default")
    samples = await asyncio.to_thread(scrape, port)
    ok = (("code", "OK"), ("kind", "Pod"), ("verb", "create"))
    missing = (("code", "NOT_FOUND"), ("kind", "Pod"), ("verb", "get"))
    assert samples[("sampan_apiserver_requests_total", ok)] == 1
    assert samples[("sampan_apiserver_requests_total", missing)] == 1
    assert samples[("sampan_apiserver_request_duration_seconds_count", (("kind", "Pod"), ("verb", "create")))] == 1


async def _watches(port: int, kind: str) -> float:
    samples = await asyncio.to_thread(scrape, port)
    return samples.get(("sampan_apiserver_watches", (("kind", kind),)), 0.0)


async def test_open_watches_and_store_operations_are_reported(metered):
    api, port = metered
    # The garbage collector, once the service leads, watches every kind (ConfigMaps too): wait for its watch.
    deadline = asyncio.get_running_loop().time() + 10
    while await _watches(port, "ConfigMap") < 1:
        assert asyncio.get_running_loop().time() < deadline, "the service's own ConfigMap watch never opened"
        await asyncio.sleep(0.05)
    before = await _watches(port, "ConfigMap")
    stream = api.watch("ConfigMap", namespace="default")
    config_map = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data={"a": "b"})
    config_map.metadata.name, config_map.metadata.namespace = "settings", "default"
    await api.create(config_map)
    await asyncio.wait_for(anext(stream), 5)
    samples = await asyncio.to_thread(scrape, port)
    assert samples[("sampan_apiserver_watches", (("kind", "ConfigMap"),))] == before + 1
    assert samples[("sampan_store_operation_duration_seconds_count", (("operation", "create"),))] >= 1
    assert samples[("sampan_store_revision", ())] > 0
    await stream.aclose()
