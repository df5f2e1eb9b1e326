"""Status and events reach the API: a status is written only when it changed,
never onto another pod that took the same name, and events are written by the
agent (repeats aggregated into one Event with a count)."""

from __future__ import annotations

import asyncio

from control.recorder import EventRecorder
from agent.pods.status_manager import StatusManager
from protos.api.v1 import core_pb2
from tests.agent.pods.support import NODE, container, eventually, pod_manifest


def status(phase: str) -> core_pb2.PodStatus:
    return core_pb2.PodStatus(phase=phase, host_ip="10.0.0.5")


async def run_until_written(manager: StatusManager) -> None:
    task = asyncio.create_task(manager.run())
    await eventually(manager.pending, lambda pending: not pending)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_status_is_written_through_the_status_subresource(api):
    pod = await api.create(pod_manifest("web", container("app")))
    manager = StatusManager(api, pod_of=lambda uid: pod if uid == pod.metadata.uid else None)
    manager.set(pod.metadata.uid, status("Running"))
    await run_until_written(manager)
    written = await api.get("Pod", "web", namespace="default")
    assert written.status.phase == "Running" and written.status.host_ip == "10.0.0.5"
    assert written.spec == pod.spec


async def test_an_unchanged_status_is_not_written_again(api):
    pod = await api.create(pod_manifest("web", container("app")))
    manager = StatusManager(api, pod_of=lambda uid: pod)
    manager.set(pod.metadata.uid, status("Running"))
    await run_until_written(manager)
    version = (await api.get("Pod", "web", namespace="default")).metadata.resource_version
    manager.set(pod.metadata.uid, status("Running"))
    assert not manager.pending()
    await run_until_written(manager)
    assert (await api.get("Pod", "web", namespace="default")).metadata.resource_version == version


async def test_a_status_never_lands_on_a_new_pod_with_the_same_name(api):
    old = await api.create(pod_manifest("web", container("app"), node=""))
    await api.delete("Pod", "web", namespace="default")
    new = await api.create(pod_manifest("web", container("app"), node=""))
    manager = StatusManager(api, pod_of=lambda uid: old)
    manager.set(old.metadata.uid, status("Failed"))
    await run_until_written(manager)
    current = await api.get("Pod", "web", namespace="default")
    assert current.metadata.uid == new.metadata.uid and current.status.phase == "Pending"


async def test_events_name_the_agent_and_repeats_are_counted(api):
    pod = await api.create(pod_manifest("web", container("app")))
    recorder = EventRecorder(api, node_name=NODE)
    task = asyncio.create_task(recorder.run())
    try:
        for _ in range(3):
            recorder.warning(pod, "BackOff", "Back-off restarting failed container app",
                            field_path="spec.containers{app}")

        async def backoffs():
            events, _ = await api.list("Event", namespace="default")
            return [e for e in events if e.reason == "BackOff"]

        [event] = await eventually(backoffs, lambda found: found and found[0].count == 3)
    finally:
        task.cancel()
    assert event.type == "Warning" and event.source.component == "sampan-agent" and event.source.host == NODE
    assert event.involved_object.uid == pod.metadata.uid and event.involved_object.kind == "Pod"
    assert event.involved_object.field_path == "spec.containers{app}"
    assert event.reporting_component == "sampan-agent" and event.reporting_instance == NODE


async def test_a_failing_event_write_is_dropped_and_the_next_one_written(api):
    pod = await api.create(pod_manifest("web", container("app")))
    ghost = pod_manifest("ghost", container("app"), namespace="no-such-namespace")
    recorder = EventRecorder(api, node_name=NODE)
    recorder.normal(ghost, "Pulled", "cannot be written: no such namespace")
    recorder.normal(pod, "Pulled", "written")
    task = asyncio.create_task(recorder.run())
    try:
        async def messages():
            events, _ = await api.list("Event")
            return [e.message for e in events if e.reason == "Pulled"]

        assert await eventually(messages, bool) == ["written"]
    finally:
        task.cancel()
