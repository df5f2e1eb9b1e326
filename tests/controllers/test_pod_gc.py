"""Pod garbage collection against a real control service: a pod bound to a
node that does not exist is force-deleted once the node has been missing for
the quarantine, never while a node of that name exists (even one the
collector's cache has not seen); terminated pods beyond the threshold go,
oldest first, running ones never. The collector is driven pass by pass with
its own clock; one test checks the running service does it by itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from control.api import errors
from control.client import Client
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext, ControllerOptions
from control.controllers.pod_gc import PodGarbageCollector
from control.service import ControlConfig, ControlService
from protos.api.v1 import core_pb2

QUARANTINE = 40.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bound_pod(name: str, node: str) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.spec.node_name = node
    pod.spec.containers.add(name="app", image="busybox:1.36")
    return pod


async def create_node(api: Client, name: str) -> core_pb2.Node:
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = name
    return await api.create(node)


async def pod_names(api: Client) -> list[str]:
    pods, _ = await api.list("Pod", namespace="default")
    return sorted(pod.metadata.name for pod in pods)


@pytest.fixture
async def collector(api):
    """A pod collector over its own synced informers, and the clock it goes by."""
    clock = Clock()
    informers = Informers(api)
    gc = PodGarbageCollector(ControllerContext(
        api, informers, ControllerOptions(pod_gc_orphan_quarantine=QUARANTINE, terminated_pod_gc_threshold=2)),
        clock=clock)
    informers.start()
    await informers.wait_synced()
    yield gc, clock
    await informers.stop()


async def seen(gc: PodGarbageCollector, kind: str, name: str, *, present: bool = True) -> None:
    informer = gc.pods if kind == "Pod" else gc.nodes
    namespace = "default" if kind == "Pod" else ""
    deadline = time.monotonic() + 10
    while (informer.get(namespace, name) is not None) != present:
        assert time.monotonic() < deadline, f"the collector's cache never saw {kind} {name}"
        await asyncio.sleep(0.02)


async def test_a_pod_of_a_missing_node_goes_after_the_quarantine(api, collector):
    gc, clock = collector
    await create_node(api, "present")
    await api.create(bound_pod("orphan", "gone-node"))
    await api.create(bound_pod("kept", "present"))
    await seen(gc, "Pod", "orphan")
    await seen(gc, "Pod", "kept")
    await seen(gc, "Node", "present")
    assert await gc.collect() == 0, "the quarantine has only begun"
    clock.now += QUARANTINE - 1
    assert await gc.collect() == 0
    clock.now += 2
    assert await gc.collect() == 1
    assert await pod_names(api) == ["kept"]


async def test_a_node_registering_during_the_quarantine_keeps_its_pods(api, collector):
    gc, clock = collector
    await api.create(bound_pod("early", "late-node"))
    await seen(gc, "Pod", "early")
    assert await gc.collect() == 0
    await create_node(api, "late-node")
    await seen(gc, "Node", "late-node")
    clock.now += QUARANTINE * 2
    assert await gc.collect() == 0
    assert await pod_names(api) == ["early"]


async def test_a_node_missing_only_from_the_cache_keeps_its_pods(api):
    """Informers never started: the cache has the pod (put there by hand) but no node; the API has both."""
    clock = Clock()
    informers = Informers(api)
    gc = PodGarbageCollector(ControllerContext(api, informers, ControllerOptions(pod_gc_orphan_quarantine=1.0)),
                             clock=clock)
    await create_node(api, "real-node")
    gc.pods.assume(await api.create(bound_pod("web", "real-node")))
    assert await gc.collect() == 0
    clock.now += 10
    assert await gc.collect() == 0
    assert await pod_names(api) == ["web"]


async def test_terminated_pods_beyond_the_threshold_go_oldest_first(api, collector):
    gc, _ = collector
    await create_node(api, "worker")
    for name, phase in (("z-oldest", "Succeeded"), ("a-done", "Succeeded"), ("b-failed", "Failed"),
                        ("c-running", "Running"), ("d-done", "Succeeded")):
        pod = await api.create(bound_pod(name, "worker"))
        pod.status.phase = phase
        await api.update_status(pod)
        if name == "z-oldest":
            await asyncio.sleep(1.1)  # creation times have whole seconds: z-oldest is older than its name says
    await seen(gc, "Node", "worker")

    async def phases_seen() -> bool:
        return sum(1 for pod in gc.pods.list() if pod.status.phase in ("Succeeded", "Failed")) == 4

    deadline = time.monotonic() + 10
    while not await phases_seen():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert await gc.collect() == 2
    assert await pod_names(api) == ["b-failed", "c-running", "d-done"]


async def test_the_service_collects_orphaned_pods_by_itself(tmp_path: Path):
    svc = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="", shutdown_grace=0.5,
        leader_election=None, controller_options={"pod_gc_period": 0.1, "pod_gc_orphan_quarantine": 0.5}))
    await svc.start()
    try:
        async with Client.connect(f"127.0.0.1:{svc.port}") as api:
            await api.create(bound_pod("orphan", "no-such-node"))
            deadline = time.monotonic() + 15
            while True:
                try:
                    await api.get("Pod", "orphan", namespace="default")
                except errors.NotFoundError:
                    break
                assert time.monotonic() < deadline, "the orphaned pod was never collected"
                await asyncio.sleep(0.1)
    finally:
        await svc.stop()
