"""The control service's monitoring port, served by a running service: ``/sd``
lists the service itself and each registered Node's agent and proxy;
``/metrics`` carries the leader's cluster-state gauges, following the API's
objects."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from control.api.metrics_endpoints import AGENT_METRICS, PROXY_METRICS
from control.client import Client
from control.service import ControlConfig, ControlService
from protos.api.v1 import core_pb2
from tests.server.test_api import make_pod


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def phases(text: str) -> dict[str, str]:
    """pod -> its phase, from sampan_pod_status_phase."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sampan_pod_status_phase" and sample.value == 1:
                found[sample.labels["pod"]] = sample.labels["phase"]
    return found


@pytest.fixture
async def monitored(tmp_path):
    svc = ControlService(ControlConfig(store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0",
                                       metrics_listen="127.0.0.1:0", shutdown_grace=0.5, leader_election=None))
    await svc.start()
    async with Client.connect(f"127.0.0.1:{svc.port}") as client:
        yield client, svc
    await svc.stop()


async def test_sd_lists_this_service_and_every_annotated_nodes_agent_and_proxy(monitored):
    api, service = monitored
    port = service.metrics_port
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = "n1"
    node.metadata.annotations.update({AGENT_METRICS: "0.0.0.0:10250", PROXY_METRICS: "127.0.0.1:10256"})
    node = await api.create(node)
    node.status.addresses.add(type="InternalIP", address="10.0.0.7")
    await api.update_status(node)

    groups = json.loads(await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/sd"))
    assert groups[0]["targets"] == [f"127.0.0.1:{port}"] and groups[0]["labels"]["role"] == "control"
    assert groups[1:] == [{"targets": ["10.0.0.7:10250"], "labels": {"role": "agent", "node": "n1"}},
                          {"targets": ["127.0.0.1:10256"], "labels": {"role": "proxy", "node": "n1"}}]


async def test_pod_phase_gauges_follow_the_pods(monitored):
    api, service = monitored
    port = service.metrics_port
    await api.create(make_pod("web"))
    running = await api.create(make_pod("api"))
    running.status.phase = "Running"
    await api.update_status(running)

    async def scraped_phases() -> dict[str, str]:
        return phases(await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics"))

    async with asyncio.timeout(15):
        while await scraped_phases() != {"web": "Pending", "api": "Running"}:
            await asyncio.sleep(0.05)
    await api.delete("Pod", "web", namespace="default", grace_period_seconds=0)
    async with asyncio.timeout(15):
        while await scraped_phases() != {"api": "Running"}:
            await asyncio.sleep(0.05)


async def test_the_registry_read_on_the_services_own_event_loop_has_the_gauges_too(monitored):
    api, service = monitored
    pod = await api.create(make_pod("web"))
    wanted = {"namespace": "default", "pod": "web", "uid": pod.metadata.uid, "phase": "Pending"}
    async with asyncio.timeout(15):
        while service.metrics.registry.get_sample_value("sampan_pod_status_phase", wanted) != 1:
            await asyncio.sleep(0.05)
