"""The watch cache: one store watch per kind whatever the number of watchers,
the same answers as a direct store watch, and clean cut-offs."""

from __future__ import annotations

import asyncio

import pytest

from control.api import errors, kinds
from control.server import watchcache
from control.server.resources import ResourceService
from control.store import StoreUnavailableError, open_store
from tests.server.test_api import make_configmap

CONFIGMAP = kinds.by_kind("ConfigMap")


class CountingStore:
    """A store that counts the watches opened on it (everything else passes through)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.watches = 0

    def watch(self, prefix, *, start_revision):
        self.watches += 1
        return self.inner.watch(prefix, start_revision=start_revision)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
async def resources(tmp_path):
    store = CountingStore(await open_store(f"sqlite:///{tmp_path}/state.db"))
    service = ResourceService(store)
    from control.service import ensure_system_namespaces
    await ensure_system_namespaces(service)
    yield service
    await service.close()
    await store.close()


async def take(stream, count):
    return [item async for item in _limit(stream, count)]


async def _limit(stream, count):
    async for item in stream:
        yield item
        count -= 1
        if count == 0:
            return


async def started_cache(resources):
    """Start the ConfigMap cache before taking a revision, so the revision is in its window."""
    cache = resources.watch_cache.of(CONFIGMAP)
    cache.start()
    await cache.ready.wait()
    return cache


async def test_many_watchers_share_one_store_watch(resources):
    opened_before = resources.store.watches
    await started_cache(resources)
    _, revision = await resources.list(CONFIGMAP, namespace="default")
    streams = [resources.watch(CONFIGMAP, namespace="default", resource_version=str(revision)) for _ in range(20)]
    readers = [asyncio.create_task(take(s, 3)) for s in streams]
    await asyncio.sleep(0.1)
    for name in ("a", "b", "c"):
        await resources.create(make_configmap(name, {}))
    results = await asyncio.wait_for(asyncio.gather(*readers), 5)
    assert all([(t, o.metadata.name) for t, o in r] == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
               for r in results)
    assert resources.store.watches - opened_before == 1


async def test_a_revision_older_than_the_window_falls_back_to_the_store(resources, monkeypatch):
    first = await resources.create(make_configmap("a", {"v": "0"}))
    # Start the cache now, so its window begins after `first`.
    _, revision = await resources.list(CONFIGMAP, namespace="default")
    warm = resources.watch(CONFIGMAP, namespace="default", resource_version=str(revision))
    warming = asyncio.create_task(take(warm, 1))
    await asyncio.sleep(0.1)
    obj = first
    obj.data["v"] = "1"
    obj = await resources.update(obj)
    await warming
    opened_before = resources.store.watches
    old = resources.watch(CONFIGMAP, namespace="default", resource_version=str(int(first.metadata.resource_version) - 1))
    events = await asyncio.wait_for(take(old, 2), 5)
    assert [(t, o.metadata.resource_version) for t, o in events] == [
        ("ADDED", first.metadata.resource_version), ("MODIFIED", obj.metadata.resource_version)]
    assert resources.store.watches - opened_before == 1, "served by a direct store watch"


async def test_a_watcher_that_stops_reading_is_cut_off_with_expired(resources, monkeypatch):
    monkeypatch.setattr(watchcache, "SUBSCRIBER_QUEUE", 5)
    cache = await started_cache(resources)
    _, revision = await resources.list(CONFIGMAP, namespace="default")
    slow = resources.watch(CONFIGMAP, namespace="default", resource_version=str(revision))
    first = asyncio.create_task(take(slow, 1))
    await resources.create(make_configmap("first", {}))
    await asyncio.wait_for(first, 5)
    for i in range(10):
        last = await resources.create(make_configmap(f"cm-{i}", {}))
    for _ in range(500):  # until the cache has handed out every change
        if cache.revision >= int(last.metadata.resource_version):
            break
        await asyncio.sleep(0.01)
    with pytest.raises(errors.ExpiredError, match="fell behind"):
        await asyncio.wait_for(take(slow, 20), 5)


class CutOffStore:
    """A store whose watches of one prefix can be broken (StoreUnavailableError), after which
    its next list of that prefix is cut off the way gRPC cuts off a call whose channel is
    closed: with an asyncio.CancelledError that nobody asked for. Everything else passes through."""

    def __init__(self, inner, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self.broken = asyncio.Event()
        self.cut_off_lists = 0

    def break_watches(self) -> None:
        self.broken.set()

    async def list(self, prefix):
        if prefix == self.prefix and self.broken.is_set():
            self.broken.clear()
            self.cut_off_lists += 1
            raise asyncio.CancelledError()
        return await self.inner.list(prefix)

    async def watch(self, prefix, *, start_revision):
        events = self.inner.watch(prefix, start_revision=start_revision)
        try:
            while True:
                following = asyncio.ensure_future(anext(events))
                broken = asyncio.ensure_future(self.broken.wait())
                await asyncio.wait({following, broken}, return_when=asyncio.FIRST_COMPLETED)
                broken.cancel()
                if prefix == self.prefix and self.broken.is_set():
                    following.cancel()
                    raise StoreUnavailableError("the watch's connection broke")
                yield await following
        finally:
            await events.aclose()

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def test_a_cache_whose_store_call_is_cut_off_starts_over_and_its_watchers_relist(tmp_path):
    """A cancellation the cache's task did not ask for (a store call cut off under it) is a failure
    like any other: the watchers are told to relist (ExpiredError), the cache starts over, and
    watches opened after it get every change. Ending the cache instead would leave them all
    waiting for events that never come."""
    store = CutOffStore(await open_store(f"sqlite:///{tmp_path}/state.db"), CONFIGMAP.storage_prefix())
    service = ResourceService(store)
    from control.service import ensure_system_namespaces
    await ensure_system_namespaces(service)
    try:
        await started_cache(service)
        _, revision = await service.list(CONFIGMAP, namespace="default")
        watching = asyncio.create_task(take(service.watch(CONFIGMAP, namespace="default",
                                                          resource_version=str(revision)), 2))
        await service.create(make_configmap("before", {}))
        store.break_watches()
        with pytest.raises(errors.ExpiredError):
            await asyncio.wait_for(watching, 5)

        _, revision = await service.list(CONFIGMAP, namespace="default")
        after = asyncio.create_task(take(service.watch(CONFIGMAP, namespace="default",
                                                       resource_version=str(revision)), 1))
        await service.create(make_configmap("after", {}))
        events = await asyncio.wait_for(after, 5)
        assert [(t, o.metadata.name) for t, o in events] == [("ADDED", "after")]
        assert store.cut_off_lists == 1, "the cache's list was cut off once, and it started over"
    finally:
        await service.close()
        await store.close()
