"""A local copy of one kind's objects, kept by list+watch (client-go's Reflector).

``Reflector.run`` lists, then watches from the list's resourceVersion,
resuming from the last version it saw after a broken stream. An expired
version (the API compacted it) means list again; the difference between the
new list and the copy is reported as deletions and updates, so nothing is
missed. While the control service is unreachable it retries with back-off
and the copy stays as it was: the agent keeps running what it knows.

Handlers only record: ``on_change(old, new)`` (None for "absent") is called
synchronously for every change and must not block.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Generic, Hashable, TypeVar

from google.protobuf.message import Message

from control.api import errors
from control.client import Client

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Message)
ChangeHandler = Callable[[Message | None, Message | None], None]


def namespaced_name(obj: Message) -> tuple[str, str]:
    return obj.metadata.namespace, obj.metadata.name


class Reflector(Generic[T]):
    def __init__(
        self,
        api: Client,
        kind: str,
        *,
        namespace: str = "",
        field_selector: str = "",
        key: Callable[[Message], Hashable] = namespaced_name,
        on_change: ChangeHandler | None = None,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
    ) -> None:
        self._api = api
        self.kind = kind
        self._namespace = namespace
        self._field_selector = field_selector
        self._key = key
        self._on_change = on_change or (lambda old, new: None)
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self.items: dict[Hashable, T] = {}
        self.synced = asyncio.Event()  # set after the first successful list
        self.resource_version = ""

    def get(self, key: Hashable) -> T | None:
        return self.items.get(key)

    async def run(self) -> None:
        delay = self._retry_initial
        while True:
            try:
                if not self.resource_version:
                    items, self.resource_version = await self._api.list(self.kind, namespace=self._namespace,
                                                                         field_selector=self._field_selector)
                    self._replace(items)
                    self.synced.set()
                    delay = self._retry_initial
                async for event in self._api.watch(self.kind, namespace=self._namespace,
                                                   field_selector=self._field_selector,
                                                   resource_version=self.resource_version):
                    self._apply(event.type, event.object)
                    self.resource_version = event.object.metadata.resource_version or self.resource_version
                    delay = self._retry_initial
                await asyncio.sleep(self._retry_initial)  # the server ended the stream: watch again
            except errors.ExpiredError:
                log.info("%s watch expired at resourceVersion %s; listing again", self.kind, self.resource_version)
                self.resource_version = ""
            except asyncio.CancelledError:
                raise
            except Exception as err:  # unreachable, restarting, or a broken stream: retry, keep the copy
                log.warning("%s list/watch failed, retrying in %.1fs: %s", self.kind, delay, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    def _replace(self, items: list[T]) -> None:
        fresh = {self._key(item): item for item in items}
        for key in self.items.keys() - fresh.keys():
            old = self.items.pop(key)
            self._on_change(old, None)
        for key, item in fresh.items():
            old = self.items.get(key)
            self.items[key] = item
            if old is None or old.metadata.resource_version != item.metadata.resource_version:
                self._on_change(old, item)

    def _apply(self, event_type: str, obj: T) -> None:
        key = self._key(obj)
        old = self.items.get(key)
        if event_type == "DELETED":
            if old is not None and old.metadata.uid and old.metadata.uid != obj.metadata.uid:
                return  # the name holds a newer object already (one a controller assumed): keep it
            if old is not None:
                del self.items[key]
            self._on_change(old or obj, None)
        else:
            self.items[key] = obj
            self._on_change(old, obj)
