"""Asynchronous binding inside a running control service: the decision loop
goes on while a binding is being written, a binding that fails (the pod
changed, or went away, meanwhile) is forgotten and the pod decided again or
dropped, and each decision starts where the previous one stopped.

Each test runs its own Scheduler, with a profile named ``test-scheduler``
that the service's own scheduler does not serve, on a client that can act
just before a binding goes out (a real client: the failure comes from the
real API)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable

from control.client import Client
from control.scheduler.config import SchedulerConfiguration
from control.scheduler.plugins import default_profile
from control.scheduler.scheduler import Scheduler
from protos.api.v1 import core_pb2
from tests.scheduler.builders import make_pod
from tests.scheduler.test_scheduler_loop import add_node, eventually

TEST_SCHEDULER = "test-scheduler"


class BeforeBinding(Client):
    """The API client, running ``hook(pod)`` before the first binding of each pod is sent."""

    hook: Callable[[core_pb2.Pod], Awaitable[None]]
    attempts: dict[str, int]

    async def update(self, obj, *, subresource: str = ""):
        if isinstance(obj, core_pb2.Pod) and obj.spec.node_name and not subresource:
            name = obj.metadata.name
            self.attempts[name] = self.attempts.get(name, 0) + 1
            if self.attempts[name] == 1:
                await self.hook(obj)
        return await super().update(obj, subresource=subresource)


@contextlib.asynccontextmanager
async def running_scheduler(service, hook, **options):
    api = BeforeBinding.connect(f"127.0.0.1:{service.port}")
    api.hook, api.attempts = hook, {}
    config = SchedulerConfiguration(profiles=(default_profile(name=TEST_SCHEDULER),), **options)
    scheduler = Scheduler(api, config=config)
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler, api
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()


def our_pod(name: str, **spec) -> core_pb2.Pod:
    return make_pod(name, cpu="500m", schedulerName=TEST_SCHEDULER, **spec)


async def bound_node(api: Client, name: str) -> str:
    return (await api.get("Pod", name, namespace="default")).spec.node_name


async def test_decisions_go_on_while_a_binding_is_in_flight(service, api):
    await add_node(api, "n1")
    await add_node(api, "n2")
    first_held = asyncio.Event()
    release = asyncio.Event()

    async def hold_the_first(pod):
        if pod.metadata.name == "first":
            first_held.set()
            await release.wait()

    async with running_scheduler(service, hold_the_first):
        await api.create(our_pod("first"))
        await first_held.wait()
        await api.create(our_pod("second"))
        second = await eventually(lambda: bound_node(api, "second"))
        assert await bound_node(api, "first") == ""  # still on its way
        release.set()
        first = await eventually(lambda: bound_node(api, "first"))
    # The second decision counted the first pod on its node before the API had it: they spread.
    assert {first, second} == {"n1", "n2"}


async def test_a_binding_that_conflicts_is_forgotten_and_the_pod_decided_again(service, api):
    await add_node(api, "n1")

    async def change_the_pod(pod):
        await api.patch("Pod", pod.metadata.name, {"metadata": {"labels": {"touched": "yes"}}}, namespace="default")

    async with running_scheduler(service, change_the_pod) as (scheduler, client):
        await api.create(our_pod("web"))
        assert await eventually(lambda: bound_node(api, "web")) == "n1"
        assert client.attempts["web"] >= 2
        assert scheduler.bindings == 1
        (info,) = scheduler.cache.node_infos()
        assert len(info) == 1  # counted once: the failed assumption was undone
    pod = await api.get("Pod", "web", namespace="default")
    assert pod.metadata.labels["touched"] == "yes"  # the binding did not overwrite the change


async def test_a_binding_for_a_pod_deleted_meanwhile_is_dropped(service, api):
    await add_node(api, "n1")
    deleted = asyncio.Event()

    async def delete_the_pod(pod):
        if pod.metadata.name == "gone":
            await api.delete("Pod", "gone", namespace="default")
            deleted.set()

    async with running_scheduler(service, delete_the_pod) as (scheduler, client):
        await api.create(our_pod("gone"))
        await deleted.wait()

        async def assumption_undone():
            (info,) = scheduler.cache.node_infos()
            return len(info) == 0 and not scheduler.cache.is_assumed(("default", "gone"))

        await eventually(assumption_undone)
        await api.create(our_pod("next"))
        assert await eventually(lambda: bound_node(api, "next")) == "n1"
        assert client.attempts.get("gone") == 1 and scheduler.bindings == 1


async def test_each_decision_starts_where_the_previous_one_stopped(service, api):
    # 200 nodes: a decision looks for 100 feasible ones (the adaptive rule's floor).
    await asyncio.gather(*(add_node(api, f"n{index:03d}") for index in range(200)))

    async def nothing(pod):
        return None

    async with running_scheduler(service, nothing) as (scheduler, _client):
        await eventually(lambda: asyncio.sleep(0, len(scheduler.cache.node_infos()) == 200))
        await api.create(our_pod("first"))
        assert await eventually(lambda: bound_node(api, "first")) == "n000"
        await api.create(our_pod("second"))
        # Equal nodes tie and ties go to the first name among the nodes looked at: n100..n199 this time.
        assert await eventually(lambda: bound_node(api, "second")) == "n100"
