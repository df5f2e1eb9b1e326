"""The ReplicaSet controller: keeps spec.replicas pods of a ReplicaSet's template alive.

Level-triggered, as client-go controllers are: watch handlers only queue the
key of the ReplicaSet concerned (a pod's change queues its controlling
ReplicaSet, an orphan's every ReplicaSet whose selector matches it), and
``reconcile_replicaset`` makes one ReplicaSet right from the shared caches:

1. claim its pods (control/controllers/ownership.py): adopt matching orphans,
   release owned pods that no longer match;
2. count the active ones (not finished, not being deleted: a pod stuck
   Terminating on a dead node no longer counts, so it is replaced);
3. create the missing pods in slow-start batches of 1, 2, 4, ... (a template
   the API refuses costs one failed create, not hundreds), or delete the
   surplus, least valuable first (``deletion_order``);
4. write status (replicas, fullyLabeledReplicas, readyReplicas,
   availableReplicas, observedGeneration, the ReplicaFailure condition) when
   it changed, and ask to be looked at again when a ready pod will have been
   ready for minReadySeconds.

The caches lag behind the controller's own writes, so a second pass right
after the first could create the same pods again. Each created pod is
``assume``d into the pod cache at once; each deleted pod is remembered by uid
(``DeletedPods``) and never counted again, even if a stale watch event
briefly brings an older copy of it back into the cache.

Events SuccessfulCreate, SuccessfulDelete, FailedCreate and FailedDelete are
recorded as component ``replicaset-controller``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Hashable, Iterable

from google.protobuf.message import Message

from control.api import errors
from control.api.selectors import from_label_selector_message
from control.api.timestamps import format_time, parse_time
from control.client import Client
from control.controllers.informers import Informer, queue_key_of, queue_owner_of
from control.controllers.manager import ControllerContext
from control.controllers.ownership import claim_dependents
from control.controllers.pods import is_active, is_available, pod_from_template, ready_since
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from protos.api.v1 import apps_pb2, core_pb2

log = logging.getLogger(__name__)

# A pass that lost a write race looks again this soon (the cache catches up meanwhile).
CONFLICT_RETRY_SECONDS = 0.05
COMPONENT = "replicaset-controller"
# Pods created or deleted in one pass at most (Kubernetes' burstReplicas).
BURST_REPLICAS = 500
# A deleted pod's uid is remembered this long (Kubernetes' expectations expire after 5 minutes).
DELETED_MEMORY_SECONDS = 300.0
# Pods with a lower cost annotation are deleted first (Kubernetes' pod-deletion-cost).
POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
REPLICA_FAILURE = "ReplicaFailure"


class DeletedPods:
    """Uids of pods this controller deleted: whatever copy the cache shows, they are gone or going."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, memory: float = DELETED_MEMORY_SECONDS) -> None:
        self._clock = clock
        self._memory = memory
        self._deleted: dict[str, float] = {}

    def add(self, uid: str) -> None:
        self._deleted[uid] = self._clock()
        self._forget_old()

    def __contains__(self, uid: str) -> bool:
        return uid in self._deleted

    def _forget_old(self) -> None:
        cutoff = self._clock() - self._memory
        for uid in [uid for uid, at in self._deleted.items() if at < cutoff]:
            del self._deleted[uid]


def desired_replicas(obj: Message) -> int:
    """spec.replicas, which Kubernetes defaults to 1 when unset."""
    return obj.spec.replicas if obj.spec.HasField("replicas") else 1


def restart_count(pod: core_pb2.Pod) -> int:
    return sum(status.restart_count for status in pod.status.container_statuses)


def _deletion_cost(pod: core_pb2.Pod) -> int:
    try:
        return int(pod.metadata.annotations.get(POD_DELETION_COST_ANNOTATION, "0"))
    except ValueError:
        return 0


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order(pod: core_pb2.Pod) -> tuple:
    """Sort key putting the pod to delete first first, as Kubernetes ranks them:
    unscheduled before scheduled, Pending before Unknown before Running,
    not ready before ready, lower pod-deletion-cost first, ready for less
    time before ready for longer, more restarts before fewer, newer before
    older."""
    since = ready_since(pod)
    return (
        bool(pod.spec.node_name),
        _PHASE_RANK.get(pod.status.phase, 0),
        since is not None,
        _deletion_cost(pod),
        -(since or 0.0),
        -restart_count(pod),
        -parse_time(pod.metadata.creation_timestamp),
    )


def fully_labeled(pod: core_pb2.Pod, template_labels) -> bool:
    return all(pod.metadata.labels.get(key) == value for key, value in template_labels.items())


def slow_start_batches(count: int, *, initial: int = 1) -> list[int]:
    """Batch sizes 1, 2, 4, ... adding up to count."""
    batches = []
    size = initial
    while count > 0:
        batch = min(size, count)
        batches.append(batch)
        count -= batch
        size *= 2
    return batches


class ReplicaSetController:
    """Reconciles ReplicaSets from the shared ReplicaSet and Pod informers; see the module docstring."""

    def __init__(self, ctx: ControllerContext, *, recorder: EventRecorder) -> None:
        self.api: Client = ctx.api
        self.clock = ctx.clock
        self.replicasets: Informer = ctx.informers.get("ReplicaSet")
        self.pods: Informer = ctx.informers.get("Pod")
        self.recorder = recorder
        self.queue = WorkQueue()
        self.deleted = DeletedPods()
        self.replicasets.add_handler(queue_key_of(self.queue.add))
        self.pods.add_handler(queue_owner_of(self.queue.add, "ReplicaSet", owners=self.replicasets))

    # ------------------------------------------------------------ watch handlers

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: Hashable) -> float | None:
        """One pass for one key; a write that lost a race is retried soon, without a traceback."""
        try:
            return await self.reconcile_replicaset(key)
        except errors.ConflictError as err:
            log.info("replicaset %s/%s: %s; looking again", *key, err)  # type: ignore[misc]
            return CONFLICT_RETRY_SECONDS

    async def reconcile_replicaset(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        rs = self.replicasets.get(namespace, name)
        if rs is None:
            return None
        selector = from_label_selector_message(rs.spec.selector)
        if selector.empty:
            # Validation refuses this; never let an empty selector claim every pod.
            log.warning("replicaset %s/%s has an empty selector; ignoring it", namespace, name)
            return None
        active = self._active(await claim_dependents(self.api, self.pods, rs, selector))
        failure = ""
        if not rs.metadata.HasField("deletion_timestamp"):
            failure = await self._manage_replicas(rs, active)
            # What this pass created and deleted is in the cache already (assumed).
            active = self._active(pod for pod in self.pods.owned_by(rs.metadata.uid)
                                  if selector.matches(pod.metadata.labels))
        await self._write_status(rs, active, failure)
        if failure:
            raise RuntimeError(f"replicaset {namespace}/{name}: {failure}")
        return self._next_available_in(rs, active)

    def _active(self, pods: Iterable[core_pb2.Pod]) -> list[core_pb2.Pod]:
        """The pods that count towards replicas: active, and not deleted by this controller."""
        return [pod for pod in pods if is_active(pod) and pod.metadata.uid not in self.deleted]

    async def _manage_replicas(self, rs: apps_pb2.ReplicaSet, active: list[core_pb2.Pod]) -> str:
        """Create or delete pods to reach spec.replicas; the first failure's message, or ""."""
        diff = len(active) - desired_replicas(rs)
        if diff < 0:
            return await self._create_pods(rs, min(-diff, BURST_REPLICAS))
        if diff > 0:
            doomed = sorted(active, key=deletion_order)[:min(diff, BURST_REPLICAS)]
            return await self._delete_pods(rs, doomed)
        return ""

    async def _create_pods(self, rs: apps_pb2.ReplicaSet, count: int) -> str:
        for batch in slow_start_batches(count):
            results = await asyncio.gather(*(self._create_pod(rs) for _ in range(batch)), return_exceptions=True)
            failures = [result for result in results if isinstance(result, BaseException)]
            for failure in failures:
                if not isinstance(failure, errors.APIError):
                    raise failure
            if failures:
                return f"error creating pods: {failures[0]}"
        return ""

    async def _create_pod(self, rs: apps_pb2.ReplicaSet) -> None:
        pod = pod_from_template(rs.spec.template, rs, generate_name=f"{rs.metadata.name}-")
        try:
            created = await self.api.create(pod)
        except errors.APIError as err:
            self.recorder.warning(rs, "FailedCreate", f"Error creating: {err}")
            raise
        self.pods.assume(created)
        self.recorder.normal(rs, "SuccessfulCreate", f"Created pod: {created.metadata.name}")

    async def _delete_pods(self, rs: apps_pb2.ReplicaSet, doomed: list[core_pb2.Pod]) -> str:
        results = await asyncio.gather(*(self._delete_pod(rs, pod) for pod in doomed), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, errors.APIError):
                    raise result
                return f"error deleting pods: {result}"
        return ""

    async def _delete_pod(self, rs: apps_pb2.ReplicaSet, pod: core_pb2.Pod) -> None:
        try:
            marked, gone = await self.api.delete("Pod", pod.metadata.name, namespace=pod.metadata.namespace,
                                                 uid=pod.metadata.uid)
        except errors.NotFoundError:
            self.deleted.add(pod.metadata.uid)
            self.pods.assume_deleted(pod)
            return
        except errors.APIError as err:
            self.recorder.warning(rs, "FailedDelete", f"Error deleting: {err}")
            raise
        self.deleted.add(pod.metadata.uid)
        if gone:
            self.pods.assume_deleted(pod)
        else:
            self.pods.assume(marked)
        self.recorder.normal(rs, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

    # ------------------------------------------------------------ status

    def calculate_status(self, rs: apps_pb2.ReplicaSet, active: list[core_pb2.Pod],
                         failure: str) -> apps_pb2.ReplicaSetStatus:
        now = self.clock()
        min_ready = rs.spec.min_ready_seconds
        template_labels = rs.spec.template.metadata.labels
        status = apps_pb2.ReplicaSetStatus(
            replicas=len(active),
            fully_labeled_replicas=sum(1 for pod in active if fully_labeled(pod, template_labels)),
            ready_replicas=sum(1 for pod in active if ready_since(pod) is not None),
            available_replicas=sum(1 for pod in active if is_available(pod, min_ready, now)),
            observed_generation=rs.metadata.generation,
        )
        for condition in rs.status.conditions:
            if condition.type != REPLICA_FAILURE:
                status.conditions.add().CopyFrom(condition)
        if failure:
            previous = next((c for c in rs.status.conditions if c.type == REPLICA_FAILURE), None)
            condition = status.conditions.add(type=REPLICA_FAILURE, status="True", reason="FailedCreate"
                                              if failure.startswith("error creating") else "FailedDelete",
                                              message=failure)
            condition.last_transition_time = (previous.last_transition_time if previous is not None
                                              else format_time(now))
        return status

    async def _write_status(self, rs: apps_pb2.ReplicaSet, active: list[core_pb2.Pod], failure: str) -> None:
        status = self.calculate_status(rs, active, failure)
        if status == rs.status:
            return
        changed = apps_pb2.ReplicaSet()
        changed.CopyFrom(rs)
        changed.status.CopyFrom(status)
        # Status is recomputed from the pods on every pass, so the latest write
        # wins: no resourceVersion precondition.
        changed.metadata.ClearField("resource_version")
        try:
            written = await self.api.update_status(changed)
        except errors.NotFoundError:
            return
        self.replicasets.assume(written)

    def _next_available_in(self, rs: apps_pb2.ReplicaSet, active: list[core_pb2.Pod]) -> float | None:
        """Seconds until the next ready pod becomes available (minReadySeconds), or None."""
        min_ready = rs.spec.min_ready_seconds
        if min_ready <= 0:
            return None
        now = self.clock()
        waits = [since + min_ready - now for pod in active
                 if (since := ready_since(pod)) is not None and since + min_ready > now]
        return max(min(waits), 0.0) + 0.1 if waits else None


async def run_replicaset_controller(ctx: ControllerContext) -> None:
    """Run the ReplicaSet controller until cancelled."""
    recorder = EventRecorder(ctx.api, component=COMPONENT)
    controller = ReplicaSetController(ctx, recorder=recorder)
    await ctx.informers.wait_synced(["ReplicaSet", "Pod"])
    recording = asyncio.create_task(recorder.run())
    try:
        await run_workers(controller.queue, controller.reconcile, workers=ctx.options.workers)
    finally:
        recording.cancel()
        controller.queue.close()
        await asyncio.gather(recording, return_exceptions=True)
