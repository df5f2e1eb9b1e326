"""Events about objects, recorded through the API without ever holding up the recorder's caller.

Every component that reports Events uses one: the agent (component
``sampan-agent``, about its pods) and the controllers (about the workloads
they manage).

``EventRecorder.normal``/``warning`` only append to a bounded queue; ``run`` writes the
queue out. A write that fails (the control service is down, the namespace is
gone) is logged and dropped: events are best effort, as in Kubernetes. A
repeat of the same event about the same object within ``AGGREGATE_SECONDS``
bumps the existing Event's count and lastTimestamp instead of writing a new
one, as kubelet's event correlator does (a crash loop is one BackOff event
with a count, not hundreds).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass

from google.protobuf.message import Message

from control.api import errors, kinds
from control.api.timestamps import format_time
from control.client import Client
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)

AGENT_COMPONENT = "sampan-agent"
AGGREGATE_SECONDS = 600.0
_MAX_PENDING = 1000
_MAX_REMEMBERED = 4096


@dataclass(frozen=True)
class _Pending:
    obj: Message
    type: str
    reason: str
    message: str
    field_path: str
    at: float


class EventRecorder:
    """Queue Events about objects; ``run`` writes them. component/host fill the Event's source."""

    def __init__(self, api: Client, *, node_name: str = "", component: str = AGENT_COMPONENT) -> None:
        self._api = api
        self._node_name = node_name
        self._component = component
        self._queue: deque[_Pending] = deque(maxlen=_MAX_PENDING)
        self._wake = asyncio.Event()
        # (uid, field_path, reason, message) -> (event name, namespace, count, first write time)
        self._written: OrderedDict[tuple, tuple[str, str, int, float]] = OrderedDict()

    def normal(self, obj: Message, reason: str, message: str, *, field_path: str = "") -> None:
        """Queue a Normal event about obj. Never blocks, never raises."""
        self._record(obj, "Normal", reason, message, field_path)

    def warning(self, obj: Message, reason: str, message: str, *, field_path: str = "") -> None:
        """Queue a Warning event about obj. Never blocks, never raises."""
        self._record(obj, "Warning", reason, message, field_path)

    def _record(self, obj: Message, type_: str, reason: str, message: str, field_path: str) -> None:
        self._queue.append(_Pending(obj, type_, reason, message, field_path, time.time()))
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                pending = self._queue.popleft()
                try:
                    await self._write(pending)
                except errors.APIError as err:
                    log.info("event %s about %s/%s dropped: %s", pending.reason,
                             pending.obj.metadata.namespace, pending.obj.metadata.name, err)

    async def _write(self, pending: _Pending) -> None:
        meta = pending.obj.metadata
        key = (meta.uid, pending.field_path, pending.reason, pending.message)
        previous = self._written.get(key)
        if previous is not None and pending.at - previous[3] < AGGREGATE_SECONDS:
            name, namespace, count, first = previous
            try:
                await self._api.patch("Event", name, {"count": count + 1, "lastTimestamp": format_time(pending.at)},
                                      namespace=namespace)
                self._remember(key, (name, namespace, count + 1, first))
                return
            except errors.NotFoundError:
                pass
        event = core_pb2.Event(api_version="v1", kind="Event", reason=pending.reason, message=pending.message,
                               type=pending.type, count=1, reporting_component=self._component,
                               reporting_instance=self._node_name or self._component)
        event.metadata.name = f"{meta.name}.{uuid.uuid4().hex[:16]}"
        kind = kinds.by_type_url(kinds.TYPE_URL_PREFIX + pending.obj.DESCRIPTOR.full_name)
        # Events about cluster-scoped objects (Nodes) live in the default namespace, as in Kubernetes.
        event.metadata.namespace = meta.namespace or "default"
        ref = event.involved_object
        ref.kind, ref.api_version, ref.name, ref.uid = kind.kind, kind.api_version, meta.name, meta.uid
        if meta.namespace:
            ref.namespace = meta.namespace
        if pending.field_path:
            ref.field_path = pending.field_path
        event.source.component = self._component
        if self._node_name:
            event.source.host = self._node_name
        event.first_timestamp = event.last_timestamp = format_time(pending.at)
        await self._api.create(event)
        self._remember(key, (event.metadata.name, meta.namespace, 1, pending.at))

    def _remember(self, key: tuple, value: tuple[str, str, int, float]) -> None:
        self._written[key] = value
        self._written.move_to_end(key)
        while len(self._written) > _MAX_REMEMBERED:
            self._written.popitem(last=False)
