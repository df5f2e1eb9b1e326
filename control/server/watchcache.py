"""The watch cache: one store watch per kind, fanned out in memory.

Without it every API watch opens its own store watch, so 100 watchers of pods
make the store send (and the service decode) every pod change 100 times. With
it, as in Kubernetes' Cacher, each kind has one ``KindCache``: a single store
watch whose events are decoded once, kept in a bounded window of recent
events, and handed to every subscriber's queue. A subscriber asking for
events after revision R is served from the window when R is inside it, then
live; when R is older than the window it is told so (``subscribe`` returns
None) and the caller falls back to a direct store watch, which answers
"too old" if the store compacted R away. One difference from a store watch,
as in Kubernetes' cacher: a revision still inside the window is served even if
the store has compacted it since, because the cache still holds its events.

A subscriber whose queue fills (a client that stopped reading) is cut off
with ``SubscriberTooSlow``; a broken store watch ends every subscriber with
``CacheReset`` and the cache starts over from a fresh list. Either way the
client re-watches from the last revision it saw. So does any other failure in
the cache's task: it ends only by ``stop``, since a cache that ended would
leave its watchers waiting for events that never come.

A cache can also keep the current objects (``keep_objects``): the Namespace
cache does, so creates check their namespace without a store read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from google.protobuf.message import Message

from control.api import kinds
from control.store import EventType, KeyValue, Store, StoreError

log = logging.getLogger(__name__)

WINDOW_EVENTS = 10_000
SUBSCRIBER_QUEUE = 10_000
RESTART_DELAY = 0.5


@dataclass(frozen=True, slots=True)
class CachedEvent:
    revision: int
    key: str
    deleted: bool
    obj: Message  # the new object, or for a deletion the last one (shared: never mutate)
    prev: Message | None


class SubscriberTooSlow(Exception):
    """The subscriber's queue overflowed; it must re-watch."""


class CacheReset(Exception):
    """The cache's store watch broke; subscribers must re-watch."""


class _Subscriber:
    def __init__(self, prefix: str, after: int) -> None:
        self.prefix = prefix
        self.after = after
        self.queue: asyncio.Queue[CachedEvent | Exception] = asyncio.Queue(SUBSCRIBER_QUEUE + 1)
        self.closed = False

    def offer(self, event: CachedEvent) -> None:
        if self.closed or event.revision <= self.after or not event.key.startswith(self.prefix):
            return
        if self.queue.qsize() >= SUBSCRIBER_QUEUE:
            self.close(SubscriberTooSlow("the watcher fell behind; watch again from its last resourceVersion"))
            return
        self.queue.put_nowait(event)

    def close(self, reason: Exception) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(reason)


class KindCache:
    """The watch cache of one kind."""

    def __init__(
        self, store: Store, kind: kinds.Kind, decode: Callable[[kinds.Kind, KeyValue], Message],
        *, keep_objects: bool = False,
    ) -> None:
        self.store = store
        self.kind = kind
        self.decode = decode
        self.keep_objects = keep_objects
        self.objects: dict[str, Message] = {}
        self.window: deque[CachedEvent] = deque(maxlen=WINDOW_EVENTS)
        # Events after window_start are all in the window (or were, before it rolled).
        self.window_start = 0
        self.revision = 0
        self.ready = asyncio.Event()
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"watch-cache-{self.kind.plural}")

    async def stop(self) -> None:
        if self._task is not None:
            # Cancel until it has ended: a cancellation that lands as the etcd
            # client sets a watch up can be swallowed (asyncio.wait_for in Python
            # 3.11), which would leave the task waiting on that watch for ever.
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.5)
            await asyncio.gather(self._task, return_exceptions=True)
        for subscriber in list(self._subscribers):
            subscriber.close(CacheReset("the control service is stopping"))

    def oldest_servable(self) -> int:
        """Subscribers may start after any revision >= this."""
        if len(self.window) == self.window.maxlen:
            return self.window[0].revision
        return self.window_start

    async def subscribe(self, *, prefix: str, after: int) -> AsyncIterator[CachedEvent] | None:
        """Events under prefix with revision > after, or None if after is older
        than this cache can serve."""
        self.start()
        await self.ready.wait()
        if after < self.oldest_servable():
            return None
        subscriber = _Subscriber(prefix, after)
        for event in self.window:
            subscriber.offer(event)
        self._subscribers.add(subscriber)
        return self._drain(subscriber)

    async def _drain(self, subscriber: _Subscriber) -> AsyncIterator[CachedEvent]:
        try:
            while True:
                item = await subscriber.queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            subscriber.closed = True
            self._subscribers.discard(subscriber)

    async def _run(self) -> None:
        prefix = self.kind.storage_prefix()
        while True:
            try:
                kvs, revision = await self.store.list(prefix)
                self.objects = {kv.key: self.decode(self.kind, kv) for kv in kvs} if self.keep_objects else {}
                self.window.clear()
                self.window_start = self.revision = revision
                self.ready.set()
                async for event in self.store.watch(prefix, start_revision=revision + 1):
                    self._apply(event)
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise  # stop(), or the loop shutting down
                # Nobody cancelled this task: a call below was cut off (its connection closed).
                log.warning("watch cache for %s restarts: a store call was cancelled", self.kind.plural)
            except (StoreError, ValueError) as err:
                log.warning("watch cache for %s restarts: %s", self.kind.plural, err)
            except Exception:
                log.exception("watch cache for %s restarts after an unexpected error", self.kind.plural)
            self.ready.clear()
            for subscriber in list(self._subscribers):
                subscriber.close(CacheReset(f"the {self.kind.plural} watch cache restarted; watch again"))
            await asyncio.sleep(RESTART_DELAY)

    def _apply(self, event) -> None:
        deleted = event.type is EventType.DELETE
        cached = CachedEvent(
            revision=event.revision, key=event.kv.key, deleted=deleted,
            obj=self.decode(self.kind, event.kv),
            prev=self.decode(self.kind, event.prev) if event.prev is not None else None,
        )
        if self.keep_objects:
            if deleted:
                self.objects.pop(cached.key, None)
            else:
                self.objects[cached.key] = cached.obj
        self.window.append(cached)
        self.revision = cached.revision
        for subscriber in list(self._subscribers):
            subscriber.offer(cached)


class WatchCache:
    """The KindCaches of every kind, started on first use."""

    def __init__(self, store: Store, decode: Callable[[kinds.Kind, KeyValue], Message]) -> None:
        self._caches = {
            kind.kind: KindCache(store, kind, decode, keep_objects=kind.kind == "Namespace")
            for kind in kinds.all_kinds()
        }

    def of(self, kind: kinds.Kind) -> KindCache:
        return self._caches[kind.kind]

    async def stop(self) -> None:
        await asyncio.gather(*(cache.stop() for cache in self._caches.values()))
