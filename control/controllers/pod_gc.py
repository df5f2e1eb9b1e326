"""Pod garbage collection: removes the pods no agent will ever remove.

Every ``pod_gc_period`` one pass over the shared pod and node caches:

- Orphaned pods: a pod bound to a node that does not exist (deleted, or
  never registered) has no agent to stop it or confirm its deletion, so it
  is force-deleted. A node must have been missing for
  ``pod_gc_orphan_quarantine`` (Kubernetes: 40 s), and a live GET must
  confirm it, before its pods go: a node registering a moment after a pod
  was bound to it, or one the cache has not caught up with, keeps its pods.
- Terminated pods: when more than ``terminated_pod_gc_threshold`` pods have
  Succeeded or Failed, the oldest of them (by creation time) are deleted
  down to the threshold (0 turns this off).

A pod Terminating on a node that is only unreachable is left alone, as
Kubernetes does: the node may come back and stop it; deleting the Node
object is how an operator says it will not (the pod is then orphaned).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from google.protobuf.message import Message

from control.api import errors
from control.controllers.manager import ControllerContext
from control.controllers.pods import is_finished

log = logging.getLogger(__name__)


class PodGarbageCollector:
    """See the module docstring. Build it before the informers start."""

    def __init__(self, ctx: ControllerContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.api = ctx.api
        # The quarantine is real elapsed time (not ctx.clock, which tests move to drive schedules).
        self.clock = clock
        self.pods = ctx.informers.get("Pod")
        self.nodes = ctx.informers.get("Node")
        # node name -> when this collector first found it missing (its clock)
        self.missing_since: dict[str, float] = {}

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(["Pod", "Node"])
        while True:
            try:
                await self.collect()
            except errors.APIError as err:
                log.warning("pod garbage collection pass failed (next pass retries): %s", err)
            await asyncio.sleep(self.ctx.options.pod_gc_period)

    async def collect(self) -> int:
        """One pass; how many pods it deleted."""
        return await self.collect_orphaned() + await self.collect_terminated()

    async def collect_orphaned(self) -> int:
        now = self.clock()
        pods_by_node: dict[str, list[Message]] = {}
        for pod in self.pods.list():
            if pod.spec.node_name and self.nodes.get("", pod.spec.node_name) is None:
                pods_by_node.setdefault(pod.spec.node_name, []).append(pod)
        for name in [name for name in self.missing_since if name not in pods_by_node]:
            del self.missing_since[name]
        deleted = 0
        for node_name, pods in sorted(pods_by_node.items()):
            since = self.missing_since.setdefault(node_name, now)
            if now - since < self.ctx.options.pod_gc_orphan_quarantine or await self._node_exists(node_name):
                continue
            for pod in pods:
                deleted += await self._force_delete(pod, why=f"its node {node_name} does not exist")
        return deleted

    async def collect_terminated(self) -> int:
        threshold = self.ctx.options.terminated_pod_gc_threshold
        if threshold <= 0:
            return 0
        finished = [pod for pod in self.pods.list() if is_finished(pod)]
        excess = len(finished) - threshold
        if excess <= 0:
            return 0
        finished.sort(key=lambda pod: (pod.metadata.creation_timestamp, pod.metadata.namespace, pod.metadata.name))
        deleted = 0
        for pod in finished[:excess]:
            deleted += await self._force_delete(pod, why=f"more than {threshold} pods have terminated")
        return deleted

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.api.get("Node", name)
            return True
        except errors.NotFoundError:
            return False

    async def _force_delete(self, pod: Message, *, why: str) -> int:
        meta = pod.metadata
        log.info("deleting pod %s/%s: %s", meta.namespace, meta.name, why)
        try:
            await self.api.delete("Pod", meta.name, namespace=meta.namespace, uid=meta.uid,
                                  grace_period_seconds=0, force=True)
        except (errors.NotFoundError, errors.ConflictError):
            return 0
        self.pods.assume_deleted(pod)
        return 1


async def run_pod_gc(ctx: ControllerContext) -> None:
    """Run pod garbage collection until cancelled."""
    await PodGarbageCollector(ctx).run()
