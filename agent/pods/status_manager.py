"""Writes pod statuses to the API in the background (kubelet's status manager).

Pod workers hand their freshly computed status to ``set``; a single task
writes each changed status with ``update_status``. Writing apart from the
syncs means a slow or unreachable control service never holds up a pod:
statuses that could not be written stay dirty and are retried with back-off,
and only the newest status of each pod is ever sent.

A write is conditional on the resourceVersion the agent last saw, so a
status never lands on a different pod that took the same name: on a
conflict the pod is read again and the write goes ahead only if its uid is
still the one the status belongs to.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)

_RETRY_INITIAL = 0.2
_RETRY_MAX = 10.0
_MAX_CONFLICTS = 5


class StatusManager:
    def __init__(
        self, api: Client, *, pod_of: Callable[[str], core_pb2.Pod | None],
        on_started: Callable[[core_pb2.Pod], None] | None = None,
    ) -> None:
        self._api = api
        self._pod_of = pod_of
        # Called once per pod, when a status saying Running is first written.
        self._on_started = on_started
        self._started: set[str] = set()
        self._latest: dict[str, core_pb2.PodStatus] = {}
        self._written: dict[str, core_pb2.PodStatus] = {}
        self._versions: dict[str, int] = {}  # the resourceVersion of the agent's own last write
        self._dirty: set[str] = set()
        self._writing = False
        self._wake = asyncio.Event()

    def latest(self, uid: str) -> core_pb2.PodStatus | None:
        """The newest status computed for the pod (written or not)."""
        return self._latest.get(uid)

    def set(self, uid: str, status: core_pb2.PodStatus) -> None:
        if self._latest.get(uid) == status:
            return
        self._latest[uid] = status
        self._dirty.add(uid)
        self._wake.set()

    def forget(self, uid: str) -> None:
        for table in (self._latest, self._written, self._versions):
            table.pop(uid, None)
        self._dirty.discard(uid)
        self._started.discard(uid)

    def pending(self) -> bool:
        """Whether some status is still to be written (or being written)."""
        return bool(self._dirty) or self._writing

    async def run(self) -> None:
        delay = _RETRY_INITIAL
        while True:
            await self._wake.wait()
            self._wake.clear()
            failed = False
            for uid in list(self._dirty):
                self._dirty.discard(uid)
                self._writing = True
                try:
                    await self._write(uid)
                except errors.APIError as err:
                    self._dirty.add(uid)
                    failed = True
                    log.warning("writing the status of pod %s failed, retrying in %.1fs: %s", uid, delay, err)
                    break
                finally:
                    self._writing = False
            if failed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                self._wake.set()
            else:
                delay = _RETRY_INITIAL

    def _precondition(self, uid: str, pod: core_pb2.Pod) -> str:
        cached = pod.metadata.resource_version
        own = self._versions.get(uid, 0)
        return str(own) if cached.isdigit() and own > int(cached) else cached

    async def _write(self, uid: str) -> None:
        status = self._latest.get(uid)
        pod = self._pod_of(uid)
        if status is None or pod is None or status == self._written.get(uid):
            return
        update = core_pb2.Pod()
        update.metadata.name = pod.metadata.name
        update.metadata.namespace = pod.metadata.namespace
        update.metadata.resource_version = self._precondition(uid, pod)
        update.status.CopyFrom(status)
        for _ in range(_MAX_CONFLICTS):
            try:
                written = await self._api.update_status(update)
            except errors.NotFoundError:
                return
            except errors.ConflictError:
                try:
                    current = await self._api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
                except errors.NotFoundError:
                    return
                if current.metadata.uid != uid:
                    return
                update.metadata.resource_version = current.metadata.resource_version
                continue
            self._written[uid] = status
            if status.phase == "Running" and uid not in self._started:
                self._started.add(uid)
                if self._on_started is not None:
                    self._on_started(pod)
            version = written.metadata.resource_version
            if version.isdigit():
                self._versions[uid] = int(version)
            return
        raise errors.ConflictError(f"pod {uid}: status write kept conflicting")
