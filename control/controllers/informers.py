"""Shared local copies of the cluster's objects, one per kind, for every controller.

client-go's SharedInformerFactory in miniature: ``Informers.get("Pod")``
returns the one ``Informer`` for pods, however many controllers ask. Each
keeps its objects by (namespace, name) through one list+watch
(``control.reflector.Reflector``), calls every registered handler with
``(old, new)`` on each change (None for "absent"), and keeps the index
controllers need most: the objects each owner controls (by the owner's uid,
from the ``controller: true`` ownerReference).

Handlers only record (queue a key); they must not block. Controllers read the
copies, never mutate them: a cached message is replaced, not changed.

A controller that writes an object can ``assume`` the result at once, so its
next pass sees the write before the watch reports it (otherwise a ReplicaSet
reconciled twice in a row would create its pods twice). A watch event still
in flight from before that write (an older resourceVersion of the same
object) then leaves the assumed copy in place. Likewise an object seen
deleted, by a controller (``assume_deleted``) or by the watch, is remembered
by uid for a while: neither an event from before, still in flight, nor the
late answer to a write made before brings it back.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Callable, Hashable, Iterable

from google.protobuf.message import Message

from control.api import selectors
from control.client import Client
from control.reflector import Reflector

# How long an object seen deleted is kept out of the cache, whatever stale event or answer comes.
GONE_MEMORY_SECONDS = 300.0

Handler = Callable[[Message | None, Message | None], None]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds


def controller_uid(obj: Message) -> str:
    """The uid of the object's controlling owner, or ""."""
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref.uid
    return ""


def version_of(obj: Message) -> int:
    """obj's resourceVersion as a number (0 when unset); revisions grow store-wide."""
    try:
        return int(obj.metadata.resource_version or 0)
    except ValueError:
        return 0


class Informer:
    """One kind's shared copy; see the module docstring."""

    def __init__(self, api: Client, kind: str) -> None:
        self.kind = kind
        self._handlers: list[Handler] = []
        self._owned: dict[str, dict[Key, Message]] = {}
        self._gone: OrderedDict[str, float] = OrderedDict()  # uid -> when it was seen deleted
        self.reflector: Reflector[Message] = Reflector(api, kind, on_change=self._changed)

    @property
    def synced(self) -> asyncio.Event:
        return self.reflector.synced

    def add_handler(self, handler: Handler) -> None:
        """Call handler(old, new) on every change from now on, and once for every object already held."""
        self._handlers.append(handler)
        for obj in list(self.reflector.items.values()):
            handler(None, obj)

    # ------------------------------------------------------------ reads

    def get(self, namespace: str, name: str) -> Message | None:
        return self.reflector.items.get((namespace, name))

    def list(self, namespace: str | None = None, *, selector: selectors.LabelSelector | None = None) -> list[Message]:
        """The objects held, in one namespace (or all), optionally those a label selector matches."""
        found = []
        for (ns, _name), obj in self.reflector.items.items():
            if namespace is not None and ns != namespace:
                continue
            if selector is not None and not selector.matches(obj.metadata.labels):
                continue
            found.append(obj)
        return found

    def owned_by(self, owner_uid: str) -> list[Message]:
        """The objects whose controlling ownerReference names owner_uid."""
        return list(self._owned.get(owner_uid, {}).values())

    def __len__(self) -> int:
        return len(self.reflector.items)

    # ------------------------------------------------------------ writes seen early

    def assume(self, obj: Message) -> None:
        """Hold obj (just written by a controller) now, unless a newer copy is already held.

        A write's answer can come after the watch has already reported the
        object deleted (a pod deleted gracefully whose node confirmed at
        once): an object known gone is never held again.
        """
        if obj.metadata.uid in self._gone:
            return
        key = (obj.metadata.namespace, obj.metadata.name)
        held = self.reflector.items.get(key)
        if held is not None and held.metadata.uid == obj.metadata.uid and version_of(held) >= version_of(obj):
            return
        self.reflector.items[key] = obj
        self._changed(held, obj)

    def assume_deleted(self, obj: Message) -> None:
        """Forget obj (seen deleted by a controller: gone from the store) before the watch says so."""
        self._remember_gone(obj.metadata.uid)
        key = (obj.metadata.namespace, obj.metadata.name)
        held = self.reflector.items.get(key)
        if held is not None and held.metadata.uid == obj.metadata.uid:
            del self.reflector.items[key]
            self._changed(held, None)

    # ------------------------------------------------------------ bookkeeping

    def _remember_gone(self, uid: str) -> None:
        now = time.monotonic()
        while self._gone:
            oldest, at = next(iter(self._gone.items()))
            if now - at <= GONE_MEMORY_SECONDS:
                break
            del self._gone[oldest]
        self._gone[uid] = now
        self._gone.move_to_end(uid)

    def _changed(self, old: Message | None, new: Message | None) -> None:
        if new is not None and new.metadata.uid in self._gone:
            # An event from before a deletion seen here: the object is gone, keep it out.
            key = (new.metadata.namespace, new.metadata.name)
            if old is None:
                self.reflector.items.pop(key, None)
            else:
                self.reflector.items[key] = old
            return
        if old is not None and (new is None or new.metadata.uid != old.metadata.uid):
            self._remember_gone(old.metadata.uid)  # deleted (or its name reused): uids are never reused
        if (old is not None and new is not None and old.metadata.uid == new.metadata.uid
                and version_of(new) < version_of(old)):
            # A watch event written before a copy assumed here: keep the newer copy.
            self.reflector.items[(new.metadata.namespace, new.metadata.name)] = old
            return
        if old is not None:
            self._unindex(old)
        if new is not None:
            self._index(new)
        for handler in self._handlers:
            handler(old, new)

    def _index(self, obj: Message) -> None:
        owner = controller_uid(obj)
        if owner:
            self._owned.setdefault(owner, {})[(obj.metadata.namespace, obj.metadata.name)] = obj

    def _unindex(self, obj: Message) -> None:
        owner = controller_uid(obj)
        if owner:
            owned = self._owned.get(owner)
            if owned is not None:
                owned.pop((obj.metadata.namespace, obj.metadata.name), None)
                if not owned:
                    del self._owned[owner]


class Informers:
    """The informers of one controller manager, created on first use and run together."""

    def __init__(self, api: Client) -> None:
        self._api = api
        self._informers: dict[str, Informer] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    def get(self, kind: str) -> Informer:
        informer = self._informers.get(kind)
        if informer is None:
            informer = self._informers[kind] = Informer(self._api, kind)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None and self._tasks:
                # Started after the others (a controller asked late): run it too.
                self._tasks[kind] = loop.create_task(informer.reflector.run())
        return informer

    def start(self) -> None:
        for kind, informer in self._informers.items():
            if kind not in self._tasks:
                self._tasks[kind] = asyncio.get_running_loop().create_task(informer.reflector.run())

    async def wait_synced(self, kinds: Iterable[str] | None = None) -> None:
        for kind in (kinds if kinds is not None else list(self._informers)):
            await self.get(kind).synced.wait()

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()


def queue_owner_of(enqueue: Callable[[Hashable], None], owner_kind: str, *,
                   owners: "Informer | None" = None) -> Handler:
    """A handler for dependents (pods, ReplicaSets, Jobs, revisions): queue (namespace, name) of their controller.

    A change to a dependent means its controlling owner of kind owner_kind
    should look again. Given the owners' informer, a dependent with no
    controller at all (an orphan) queues every owner whose selector matches
    its labels, so one of them can adopt it.
    """

    def handler(old: Message | None, new: Message | None) -> None:
        for obj in (old, new):
            if obj is None:
                continue
            controller = next((ref for ref in obj.metadata.owner_references if ref.controller), None)
            if controller is not None:
                if controller.kind == owner_kind:
                    enqueue((obj.metadata.namespace, controller.name))
                continue
            if owners is None:
                continue
            for owner in owners.list(obj.metadata.namespace):
                selector = selectors.from_label_selector_message(owner.spec.selector)
                if not selector.empty and selector.matches(obj.metadata.labels):
                    enqueue((owner.metadata.namespace, owner.metadata.name))

    return handler


def queue_key_of(enqueue: Callable[[Hashable], None]) -> Handler:
    """A handler that queues the changed object's own (namespace, name)."""

    def handler(old: Message | None, new: Message | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        enqueue((obj.metadata.namespace, obj.metadata.name))

    return handler
