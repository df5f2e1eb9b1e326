"""Watch through the API: initial state, resuming from a resourceVersion,
ordering without gaps or duplicates across random disconnects, selector
transitions, and the Expired ("too old") error after compaction."""

from __future__ import annotations

import asyncio
import random

import pytest

from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2
from tests.server.test_api import make_configmap, make_pod


async def next_events(stream, count: int, *, timeout: float = 5.0):
    events = []
    async def take():
        async for event in stream:
            events.append(event)
            if len(events) == count:
                return
    await asyncio.wait_for(take(), timeout)
    return events


async def test_watch_without_revision_sends_current_objects_then_changes(api: Client):
    await api.create(make_configmap("a", {"v": "1"}))
    stream = api.watch("ConfigMap", namespace="default")
    first = await next_events(stream, 1)
    assert [(e.type, e.object.metadata.name) for e in first] == [("ADDED", "a")]
    await api.create(make_configmap("b", {"v": "1"}))
    await api.delete("ConfigMap", "a", namespace="default")
    later = await next_events(stream, 2)
    assert [(e.type, e.object.metadata.name) for e in later] == [("ADDED", "b"), ("DELETED", "a")]
    await stream.aclose()


async def test_watch_from_a_revision_sends_only_later_changes(api: Client):
    created = await api.create(make_configmap("a", {"v": "1"}))
    created.data["v"] = "2"
    await api.update(created)
    stream = api.watch("ConfigMap", namespace="default", resource_version=created.metadata.resource_version)
    events = await next_events(stream, 1)
    assert events[0].type == "MODIFIED" and events[0].object.data["v"] == "2"
    await stream.aclose()


async def test_selector_watch_turns_leaving_the_selection_into_deleted(api: Client):
    pod = await api.create(make_pod("web", labels={"app": "web"}))
    stream = api.watch("Pod", namespace="default", label_selector="app=web",
                       resource_version=pod.metadata.resource_version)
    pod.metadata.labels["app"] = "other"
    pod = await api.update(pod)
    pod.metadata.labels["app"] = "web"
    await api.update(pod)
    events = await next_events(stream, 2)
    assert [e.type for e in events] == ["DELETED", "ADDED"]
    await stream.aclose()


async def test_watch_resumes_across_random_disconnects_without_gaps_or_duplicates(any_api: Client):
    """Writers change objects while a watcher disconnects at random points and
    resumes from the last resourceVersion it saw; what it saw equals the
    store's history. Runs on both stores."""
    api = any_api
    rng = random.Random(7)
    start = (await api.list("ConfigMap", namespace="default"))[1]
    written: list[tuple[str, int]] = []

    async def writer():
        for i in range(150):
            name = f"cm-{i % 10}"
            try:
                obj = await api.get("ConfigMap", name, namespace="default")
                obj.data["i"] = str(i)
                obj = await api.update(obj)
            except errors.NotFoundError:
                obj = await api.create(make_configmap(name, {"i": str(i)}))
            written.append((name, int(obj.metadata.resource_version)))

    seen: list[tuple[str, int]] = []
    writing = asyncio.create_task(writer())
    last = start
    finished = False
    while not finished:
        stream = api.watch("ConfigMap", namespace="default", resource_version=last)
        budget = rng.randint(1, 25)
        try:
            while budget:
                try:
                    event = await asyncio.wait_for(anext(stream), 0.5)
                except asyncio.TimeoutError:
                    # Quiet for a while (the timeout also ends this stream):
                    # done if the writer is, else reconnect.
                    finished = writing.done()
                    break
                revision = int(event.object.metadata.resource_version)
                seen.append((event.object.metadata.name, revision))
                last = str(revision)
                budget -= 1
        finally:
            await stream.aclose()
    await writing
    assert seen == sorted(written, key=lambda item: item[1])


async def test_watch_from_a_compacted_revision_fails_with_expired(any_api: Client, any_service):
    api, service = any_api, any_service
    first = await api.create(make_configmap("a", {"v": "0"}))
    obj = first
    for i in range(5):
        obj.data["v"] = str(i + 1)
        obj = await api.update(obj)
    store = service._store
    await store.compact(int(obj.metadata.resource_version))
    with pytest.raises(errors.ExpiredError, match="too old resource version"):
        await next_events(api.watch("ConfigMap", namespace="default",
                                    resource_version=first.metadata.resource_version), 1)
    # Relisting and watching from the list's revision works again.
    _, revision = await api.list("ConfigMap", namespace="default")
    stream = api.watch("ConfigMap", namespace="default", resource_version=revision)
    await api.create(make_configmap("b", {}))
    assert [e.object.metadata.name for e in await next_events(stream, 1)] == ["b"]
    await stream.aclose()


async def test_an_invalid_resource_version_is_a_bad_request(api: Client):
    with pytest.raises(errors.BadRequestError):
        await next_events(api.watch("Pod", resource_version="yesterday"), 1)
