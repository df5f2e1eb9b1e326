"""The pod lifecycle event generator (kubelet's PLEG) and the runtime cache.

``PodRelister`` lists the runtime's sandboxes and containers, compares the
result with the previous snapshot and emits one ``PodLifecycleEvent`` per
change (a container started, died or was removed; a sandbox appeared,
changed readiness or went). The manager turns each event into a sync of that
pod. It relists every ``interval`` seconds on its own, and whenever a pod
worker asks for state ``newer_than`` the moment its sync began, so a worker
never decides from state older than its own last action; concurrent askers
share one listing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from agent.runtime.base import LABEL_POD_UID, RUNNING, ContainerRuntime, ContainerStatus, SandboxStatus

log = logging.getLogger(__name__)

CONTAINER_STARTED = "ContainerStarted"
CONTAINER_DIED = "ContainerDied"
CONTAINER_REMOVED = "ContainerRemoved"
CONTAINER_CHANGED = "ContainerChanged"
SANDBOX_CHANGED = "SandboxChanged"


@dataclass(frozen=True)
class PodLifecycleEvent:
    pod_uid: str
    type: str
    id: str  # the container's or sandbox's id


@dataclass(frozen=True)
class RuntimeSnapshot:
    """Everything the runtime holds at one moment, grouped by pod uid."""

    sandboxes: dict[str, tuple[SandboxStatus, ...]] = field(default_factory=dict)
    containers: dict[str, tuple[ContainerStatus, ...]] = field(default_factory=dict)
    taken_at: float = 0.0

    @classmethod
    def build(cls, sandboxes: list[SandboxStatus], containers: list[ContainerStatus], taken_at: float
              ) -> "RuntimeSnapshot":
        uid_of_sandbox = {s.id: s.pod_uid for s in sandboxes}
        by_pod_sandboxes: dict[str, list[SandboxStatus]] = {}
        for sandbox in sandboxes:
            by_pod_sandboxes.setdefault(sandbox.pod_uid, []).append(sandbox)
        by_pod_containers: dict[str, list[ContainerStatus]] = {}
        for container in containers:
            uid = container.labels.get(LABEL_POD_UID) or uid_of_sandbox.get(container.sandbox_id)
            if uid:
                by_pod_containers.setdefault(uid, []).append(container)
        return cls({uid: tuple(s) for uid, s in by_pod_sandboxes.items()},
                   {uid: tuple(c) for uid, c in by_pod_containers.items()}, taken_at)

    def pod_uids(self) -> set[str]:
        return set(self.sandboxes) | set(self.containers)

    def sandboxes_of(self, uid: str) -> tuple[SandboxStatus, ...]:
        return self.sandboxes.get(uid, ())

    def containers_of(self, uid: str) -> tuple[ContainerStatus, ...]:
        return self.containers.get(uid, ())


def lifecycle_events(old: RuntimeSnapshot, new: RuntimeSnapshot) -> list[PodLifecycleEvent]:
    """What changed between two snapshots."""
    events = []
    for uid in old.pod_uids() | new.pod_uids():
        before = {c.id: c for c in old.containers_of(uid)}
        after = {c.id: c for c in new.containers_of(uid)}
        for cid, container in after.items():
            previous = before.get(cid)
            if previous is not None and previous.state == container.state:
                continue
            if container.state == RUNNING:
                events.append(PodLifecycleEvent(uid, CONTAINER_STARTED, cid))
            elif container.state == "exited":
                events.append(PodLifecycleEvent(uid, CONTAINER_DIED, cid))
            else:
                events.append(PodLifecycleEvent(uid, CONTAINER_CHANGED, cid))
        events.extend(PodLifecycleEvent(uid, CONTAINER_REMOVED, cid) for cid in before.keys() - after.keys())
        sandboxes_before = {s.id: s.ready for s in old.sandboxes_of(uid)}
        sandboxes_after = {s.id: s.ready for s in new.sandboxes_of(uid)}
        for sid in sandboxes_before.keys() | sandboxes_after.keys():
            if sandboxes_before.get(sid) != sandboxes_after.get(sid):
                events.append(PodLifecycleEvent(uid, SANDBOX_CHANGED, sid))
    return events


class PodRelister:
    def __init__(
        self, runtime: ContainerRuntime, *, interval: float, emit: Callable[[PodLifecycleEvent], None]
    ) -> None:
        self._runtime = runtime
        self.interval = interval
        self._emit = emit
        self._lock = asyncio.Lock()
        self._snapshot: RuntimeSnapshot | None = None
        self._started_at = 0.0  # when the current snapshot's listing began

    @property
    def snapshot(self) -> RuntimeSnapshot:
        return self._snapshot or RuntimeSnapshot()

    def prime(self, snapshot: RuntimeSnapshot) -> None:
        """Adopt a snapshot as the baseline without emitting events (recovery)."""
        self._snapshot = snapshot
        self._started_at = snapshot.taken_at

    async def list_now(self) -> RuntimeSnapshot:
        """A fresh listing, not compared with anything."""
        started = time.time()
        sandboxes = await self._runtime.list_sandboxes()
        containers = await self._runtime.list_containers()
        return RuntimeSnapshot.build(sandboxes, containers, started)

    async def newer_than(self, moment: float) -> RuntimeSnapshot:
        """A snapshot whose listing began at or after moment (epoch seconds)."""
        async with self._lock:
            if self._snapshot is not None and self._started_at >= moment:
                return self._snapshot
            return await self._relist_locked()

    async def relist(self) -> RuntimeSnapshot:
        async with self._lock:
            return await self._relist_locked()

    async def _relist_locked(self) -> RuntimeSnapshot:
        fresh = await self.list_now()
        old, self._snapshot, self._started_at = self._snapshot, fresh, fresh.taken_at
        for event in lifecycle_events(old or RuntimeSnapshot(), fresh):
            self._emit(event)
        return fresh

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except Exception as err:  # the runtime may be briefly unavailable; keep relisting
                log.warning("relisting the runtime failed: %s", err)
            await asyncio.sleep(self.interval)
