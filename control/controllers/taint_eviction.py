"""The taint eviction controller: deletes the pods a node's NoExecute taints no longer allow.

Kubernetes' taint manager. A pod on a node with a NoExecute taint it does not
tolerate is deleted at once; a pod that tolerates every such taint, some for
a limited ``tolerationSeconds``, is deleted once the shortest of those has
passed since this controller first saw it under the taints; a pod tolerating
them without a limit stays. Every pod gets five-minute tolerations of the
not-ready and unreachable taints by default (control/server/defaults.py), so
a node that goes silent loses its pods five minutes after the node lifecycle
controller taints it (control/controllers/node_lifecycle.py).

Deletion is an ordinary graceful delete: on a node that is really gone the
pod stays Terminating (its agent cannot confirm) but no longer counts as
active, so its ReplicaSet or Deployment replaces it elsewhere. Events:
TaintManagerEviction when a pod is marked for deletion, and when a pending
eviction is cancelled because the taints went away.

Handlers only queue pod keys: a pod's own change, and every pod of a node
whose taints changed. ``reconcile`` decides for one pod and, when its
eviction lies ahead, asks to be called again then. Before deleting, it reads
the node from the API: a cache that has not yet heard a taint was removed
must not evict for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Hashable

from google.protobuf.message import Message

from control.api import errors
from control.controllers.manager import ControllerContext
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from control.scheduler.plugins.taint_toleration import tolerates

log = logging.getLogger(__name__)

COMPONENT = "taint-eviction-controller"
Key = tuple[str, str]


def no_execute_taints(node: Message) -> list[Message]:
    return [taint for taint in node.spec.taints if taint.effect == "NoExecute"]


def toleration_limit(pod: Message, taints: list[Message]) -> float | None:
    """Seconds the pod may stay under taints: 0 when one is not tolerated, None when it may stay for good."""
    limit: float | None = None
    for taint in taints:
        matching = [t for t in pod.spec.tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        for toleration in matching:
            if toleration.HasField("toleration_seconds"):
                seconds = max(0.0, float(toleration.toleration_seconds))
                limit = seconds if limit is None else min(limit, seconds)
    return limit


class TaintEvictionController:
    """See the module docstring. Build it before the informers start."""

    def __init__(self, ctx: ControllerContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.api = ctx.api
        # Tolerations count real elapsed seconds (not ctx.clock, which tests move to drive schedules).
        self.clock = clock
        self.pods = ctx.informers.get("Pod")
        self.nodes = ctx.informers.get("Node")
        self.queue = WorkQueue()
        self.recorder = EventRecorder(ctx.api, component=COMPONENT)
        # node name -> keys of the pods bound to it
        self.pods_on: dict[str, set[Key]] = {}
        # pod uid -> when this controller first saw it under NoExecute taints it tolerates for a while
        self.tainted_since: dict[str, float] = {}
        self.pods.add_handler(self._pod_changed)
        self.nodes.add_handler(self._node_changed)

    def _pod_changed(self, old: Message | None, new: Message | None) -> None:
        for obj, present in ((old, False), (new, True)):
            if obj is not None and obj.spec.node_name:
                key = (obj.metadata.namespace, obj.metadata.name)
                if present:
                    self.pods_on.setdefault(obj.spec.node_name, set()).add(key)
                elif new is None or new.spec.node_name != obj.spec.node_name:
                    self.pods_on.get(obj.spec.node_name, set()).discard(key)
        if new is None and old is not None:
            self.tainted_since.pop(old.metadata.uid, None)
        if new is not None and new.spec.node_name:
            self.queue.add((new.metadata.namespace, new.metadata.name))

    def _node_changed(self, old: Message | None, new: Message | None) -> None:
        before = no_execute_taints(old) if old is not None else []
        after = no_execute_taints(new) if new is not None else []
        if before != after and new is not None:
            for key in self.pods_on.get(new.metadata.name, ()):
                self.queue.add(key)

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(["Pod", "Node"])
        recorder = asyncio.create_task(self.recorder.run())
        try:
            await run_workers(self.queue, self.reconcile, workers=self.ctx.options.workers)
        finally:
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            self.queue.close()

    async def reconcile(self, key: Hashable) -> float | None:
        """Evict the pod now, later (seconds returned), or not at all."""
        namespace, name = key  # type: ignore[misc]
        pod = self.pods.get(namespace, name)
        if pod is None or not pod.spec.node_name or pod.metadata.HasField("deletion_timestamp"):
            return None
        node = self.nodes.get("", pod.spec.node_name)
        taints = no_execute_taints(node) if node is not None else []
        uid = pod.metadata.uid
        if not taints:
            if self.tainted_since.pop(uid, None) is not None:
                self.recorder.normal(pod, "TaintManagerEviction", f"Cancelling deletion of Pod {namespace}/{name}")
            return None
        limit = toleration_limit(pod, taints)
        if limit is None:
            self.tainted_since.pop(uid, None)
            return None
        now = self.clock()
        since = self.tainted_since.setdefault(uid, now)
        remaining = since + limit - now
        if remaining > 0:
            return remaining
        if not await self._node_agrees(pod.spec.node_name, taints):
            # The taints changed (e.g. removed when every node went silent) and this cache has not heard yet:
            # the watch event on its way queues the node's pods again, and they are judged then.
            return None
        await self._evict(pod)
        return None

    async def _node_agrees(self, node_name: str, taints: list[Message]) -> bool:
        """Whether the live node still has exactly the NoExecute taints this cache decided on.

        A deletion cannot be undone, so it is not made on a cached taint that
        may already be gone; one GET per eviction is cheap.
        """
        try:
            live = await self.api.get("Node", node_name)
        except errors.NotFoundError:
            return False  # no node: the pod garbage collector's case, not a taint's
        return no_execute_taints(live) == taints

    async def _evict(self, pod: Message) -> None:
        meta = pod.metadata
        log.info("evicting pod %s/%s from node %s: NoExecute taint", meta.namespace, meta.name, pod.spec.node_name)
        self.recorder.normal(pod, "TaintManagerEviction", f"Marking for deletion Pod {meta.namespace}/{meta.name}")
        try:
            await self.api.delete("Pod", meta.name, namespace=meta.namespace, uid=meta.uid)
        except (errors.NotFoundError, errors.ConflictError):
            pass  # gone already, or the name is another pod's now
        self.tainted_since.pop(meta.uid, None)


async def run_taint_eviction_controller(ctx: ControllerContext) -> None:
    """Run the taint eviction controller until cancelled."""
    await TaintEvictionController(ctx).run()
