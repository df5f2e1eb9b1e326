"""The scheduler inside a running control service: it binds pending pods to
Ready nodes, records Scheduled and FailedScheduling events, marks an
unschedulable pod PodScheduled=False, places it once a fitting node
appears, and places each pod by the profile its schedulerName picks (pods
for no profile are left alone). Nodes are plain API objects here: no agent
runs."""

from __future__ import annotations

import asyncio
import time

from control.api import errors
from control.client import Client
from tests.scheduler.builders import make_node, make_pod


async def add_node(api: Client, name: str, **resources: str):
    node = make_node(name, **resources)
    created = await api.create(node)
    if not created.status.conditions:  # the status may only be written through its subresource
        created.status.CopyFrom(node.status)
        created = await api.update_status(created)
    return created


async def eventually(check, *, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except (AssertionError, errors.NotFoundError):
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.05)


async def bound_node(api: Client, name: str) -> str:
    return (await api.get("Pod", name, namespace="default")).spec.node_name


async def events_for(api: Client, name: str, reason: str) -> list:
    items, _ = await api.list("Event", namespace="default")
    return [e for e in items if e.involved_object.name == name and e.reason == reason]


async def test_pending_pods_are_bound_across_ready_nodes_and_recorded(api):
    await add_node(api, "n1", cpu="2")
    await add_node(api, "n2", cpu="2")
    for index in range(3):
        await api.create(make_pod(f"web-{index}", cpu="500m", memory="128Mi"))

    nodes = [await eventually(lambda i=i: bound_node(api, f"web-{i}")) for i in range(3)]

    assert set(nodes) == {"n1", "n2"}  # LeastAllocated spreads them
    scheduled = await eventually(lambda: events_for(api, "web-0", "Scheduled"))
    assert scheduled[0].message == f"Successfully assigned default/web-0 to {nodes[0]}"
    assert scheduled[0].source.component == "sampan-scheduler"


async def test_an_impossible_pod_waits_with_a_reason_until_a_fitting_node_appears(api):
    await add_node(api, "small-1", cpu="1")
    await add_node(api, "small-2", cpu="1")
    await api.create(make_pod("big", cpu="3"))

    async def failed_for_cpu():
        # An earlier attempt may have seen fewer nodes: the Node and Pod watches race.
        return [e for e in await events_for(api, "big", "FailedScheduling")
                if e.message == "0/2 nodes are available: 2 Insufficient cpu."]

    failed = await eventually(failed_for_cpu)
    assert failed[0].type == "Warning"

    async def unschedulable_condition():
        pod = await api.get("Pod", "big", namespace="default")
        return [c for c in pod.status.conditions
                if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"]

    await eventually(unschedulable_condition)
    assert await bound_node(api, "big") == ""

    await add_node(api, "large", cpu="4")

    assert await eventually(lambda: bound_node(api, "big")) == "large"

    async def scheduled_condition():
        pod = await api.get("Pod", "big", namespace="default")
        return [c.status for c in pod.status.conditions if c.type == "PodScheduled"] == ["True"]

    await eventually(scheduled_condition)


async def test_without_any_node_only_an_event_explains_the_wait(api):
    pod = await api.create(make_pod("lonely"))

    failed = await eventually(lambda: events_for(api, "lonely", "FailedScheduling"))

    assert failed[0].message == "0/0 nodes are available."
    current = await api.get("Pod", "lonely", namespace="default")
    assert current.metadata.resource_version == pod.metadata.resource_version


async def test_pods_are_placed_by_the_profile_their_scheduler_name_picks(tmp_path):
    from control.scheduler.config import parse_config
    from control.service import ControlConfig, ControlService

    config = parse_config({"profiles": [
        {"schedulerName": "default-scheduler"},
        {"schedulerName": "packer", "pluginConfig": [
            {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]},
    ]})
    service = ControlService(ControlConfig(store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0",
                                           metrics_listen="", shutdown_grace=0.5, scheduler_config=config))
    await service.start()
    try:
        async with Client.connect(f"127.0.0.1:{service.port}") as api:
            await add_node(api, "n1")
            await add_node(api, "n2")
            for index in range(3):
                await api.create(make_pod(f"packed-{index}", cpu="500m", schedulerName="packer"))
            packed = {await eventually(lambda i=i: bound_node(api, f"packed-{i}")) for i in range(3)}
            for index in range(2):
                await api.create(make_pod(f"spread-{index}", cpu="500m"))
            spread = {await eventually(lambda i=i: bound_node(api, f"spread-{i}")) for i in range(2)}
            stranger = await api.create(make_pod("stranger", schedulerName="gpu-scheduler"))
            await asyncio.sleep(0.5)
            assert await bound_node(api, "stranger") == ""
            assert await events_for(api, "stranger", "FailedScheduling") == []
            assert (await api.get("Pod", "stranger", namespace="default")).metadata.resource_version == \
                stranger.metadata.resource_version
    finally:
        await service.stop()
    assert len(packed) == 1  # MostAllocated: one node takes them all
    assert spread == {"n1", "n2"} - packed  # LeastAllocated: the emptier node
