"""The proxy's ``sampan.io/proxy-metrics`` annotation (proxy/metrics_annotation.py):
written once its Node exists, put back when removed, and nothing else of the
Node touched."""

from __future__ import annotations

import asyncio
import contextlib

from control.api.metrics_endpoints import AGENT_METRICS, PROXY_METRICS
from protos.api.v1 import core_pb2
from proxy.metrics_annotation import ensure_annotation, keep_metrics_annotation


def node_object(name: str) -> core_pb2.Node:
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = name
    node.metadata.labels["disk"] = "ssd"
    node.metadata.annotations[AGENT_METRICS] = "0.0.0.0:10250"
    return node


async def annotation(api, name: str) -> str | None:
    return (await api.get("Node", name)).metadata.annotations.get(PROXY_METRICS)


async def test_without_its_node_nothing_is_written(api):
    assert await ensure_annotation(api, node_name="absent", address="0.0.0.0:10256") is False


async def test_the_annotation_appears_once_the_node_registers_and_comes_back_when_removed(api):
    keeper = asyncio.create_task(keep_metrics_annotation(api, node_name="n1", address="0.0.0.0:10256", recheck=0.05))
    try:
        await asyncio.sleep(0.1)  # the proxy started before the agent registered the Node
        await api.create(node_object("n1"))
        async with asyncio.timeout(10):
            while await annotation(api, "n1") != "0.0.0.0:10256":
                await asyncio.sleep(0.05)
        node = await api.get("Node", "n1")
        assert node.metadata.labels["disk"] == "ssd" and node.metadata.annotations[AGENT_METRICS] == "0.0.0.0:10250"

        await api.patch("Node", "n1", {"metadata": {"annotations": {PROXY_METRICS: None}}})
        async with asyncio.timeout(10):
            while await annotation(api, "n1") != "0.0.0.0:10256":
                await asyncio.sleep(0.05)
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
