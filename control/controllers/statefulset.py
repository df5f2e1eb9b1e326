"""The StatefulSet controller: pods with a stable identity, started and stopped in order.

A StatefulSet of N replicas owns the pods ``NAME-<ordinal>`` for the
ordinals ``start .. start+N-1`` (``spec.ordinals.start``, default 0). Each
pod's hostname is its name and its subdomain the set's serviceName, so the
governing headless Service gives it a stable DNS name; the labels
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash`` (the name of the ControllerRevision it was made
from) say who it is. Because the name is the identity, two pods with one
ordinal never exist: a failed or deleted pod is replaced only once the old
one is gone from the API. (Kubernetes' volumeClaimTemplates are not part of
Sampan's StatefulSet yet, so there are no per-pod volume claims.)

Each pass of ``reconcile``, level-triggered, in Kubernetes' order:

0. claims (control/controllers/ownership.py): orphan pods and revisions
   the selector matches are adopted (an orphan ``NAME-<ordinal>`` takes
   its place in the set), those it no longer matches released; pods whose
   names are not the set's ordinals are then ignored;
1. revisions (control/controllers/history.py): the update revision is the
   one of the current template; the current revision is the one named in
   ``status.currentRevision`` (the update revision the first time);
2. pods in range, lowest ordinal first: a missing pod is created (from the
   current revision below the partition, else the update revision); a
   failed or succeeded pod is deleted, and created again on a later pass
   once it is gone. With ``podManagementPolicy: OrderedReady`` the pass
   stops at the first pod it created or that is terminating, not Running
   and Ready, or not yet available (minReadySeconds): pod i starts only
   when pods 0..i-1 run and are ready. ``Parallel`` goes on past them;
3. pods out of range (scale down), highest ordinal first: OrderedReady
   deletes one at a time, only while every lower pod is healthy (the first
   unhealthy pod itself may go); Parallel deletes them all;
4. RollingUpdate: from the highest position down to the partition, the
   first pod not at the update revision is deleted (pass 2 then recreates
   it from the update revision), waiting while a pod above it is not yet
   available. With ``maxUnavailable`` set, up to that many pods (counted
   over all pods in range, a percentage of replicas rounded up) are
   replaced at once. The partition counts positions from the start
   ordinal, as in Kubernetes. OnDelete replaces only pods someone deleted;
5. status: replicas (pods created), ready, available, current and updated
   replicas, the revisions and observedGeneration. When every pod is at
   the update revision and ready, the update revision becomes the current
   one (for OnDelete too, where Kubernetes leaves the old name).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Hashable

from control.api import errors
from control.api.deployments import scaled_value
from control.controllers.history import (
    REVISION_HASH_LABEL, claim_and_revise, history_limit, revision_template, truncate_history,
)
from control.controllers.informers import queue_key_of, queue_owner_of
from control.controllers.manager import ControllerContext
from control.controllers.pods import (
    is_available, is_controlled_by, is_ready, is_terminating, pod_from_template, ready_since,
)
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from protos.api.v1 import apps_pb2, core_pb2

log = logging.getLogger(__name__)

COMPONENT = "statefulset-controller"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.+)-(0|[1-9][0-9]*)$")


def ordinal_of(pod: core_pb2.Pod, set_name: str) -> int | None:
    """The ordinal in the pod's name NAME-<ordinal>, or None if it is not a pod name of set_name."""
    match = _ORDINAL.match(pod.metadata.name)
    if match is None or match.group(1) != set_name:
        return None
    return int(match.group(2))


def pod_revision(pod: core_pb2.Pod) -> str:
    return pod.metadata.labels.get(REVISION_HASH_LABEL, "")


def is_running_and_ready(pod: core_pb2.Pod) -> bool:
    return pod.status.phase == "Running" and is_ready(pod)


def stateful_pod(sts: apps_pb2.StatefulSet, revision: apps_pb2.ControllerRevision, ordinal: int) -> core_pb2.Pod:
    """Pod NAME-ordinal of sts, from revision's template, with its identity."""
    name = f"{sts.metadata.name}-{ordinal}"
    pod = pod_from_template(revision_template(revision), sts, name=name)
    pod.metadata.labels[POD_NAME_LABEL] = name
    pod.metadata.labels[POD_INDEX_LABEL] = str(ordinal)
    pod.metadata.labels[REVISION_HASH_LABEL] = revision.metadata.name
    pod.spec.hostname = name
    if sts.spec.service_name:
        pod.spec.subdomain = sts.spec.service_name
    return pod


def _replicas(sts: apps_pb2.StatefulSet) -> int:
    return sts.spec.replicas if sts.spec.HasField("replicas") else 1


def _partition(sts: apps_pb2.StatefulSet) -> int:
    return sts.spec.update_strategy.rolling_update.partition


@dataclass
class _Pass:
    """One reconcile pass: what it looks at, and when it wants to look again."""

    sts: apps_pb2.StatefulSet
    current: apps_pb2.ControllerRevision
    update: apps_pb2.ControllerRevision
    now: float
    again: float | None = None

    @property
    def monotonic(self) -> bool:
        return self.sts.spec.pod_management_policy != "Parallel"

    def available(self, pod: core_pb2.Pod) -> bool:
        """Running, ready for minReadySeconds and not terminating; notes when a ready pod becomes available."""
        if is_terminating(pod) or not is_running_and_ready(pod):
            return False
        if is_available(pod, self.sts.spec.min_ready_seconds, self.now):
            return True
        since = ready_since(pod) or self.now
        self.look_again_in(since + self.sts.spec.min_ready_seconds - self.now + 0.1)
        return False

    def look_again_in(self, seconds: float) -> None:
        self.again = seconds if self.again is None else min(self.again, seconds)


class StatefulSetController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.api = ctx.api
        self.statefulsets = ctx.informers.get("StatefulSet")
        self.pods = ctx.informers.get("Pod")
        self.revisions = ctx.informers.get("ControllerRevision")
        self.queue = WorkQueue()
        self.recorder = EventRecorder(ctx.api, component=COMPONENT)

    async def run(self) -> None:
        self.statefulsets.add_handler(queue_key_of(self.queue.add))
        self.pods.add_handler(queue_owner_of(self.queue.add, "StatefulSet", owners=self.statefulsets))
        self.revisions.add_handler(queue_owner_of(self.queue.add, "StatefulSet", owners=self.statefulsets))
        await self.ctx.informers.wait_synced(["StatefulSet", "Pod", "ControllerRevision"])
        recorder = asyncio.create_task(self.recorder.run())
        try:
            await run_workers(self.queue, self.reconcile, workers=self.ctx.options.workers)
        finally:
            recorder.cancel()
            self.queue.close()

    async def reconcile(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        sts = self.statefulsets.get(namespace, name)
        if sts is None or is_terminating(sts):
            return None  # the garbage collector removes its pods and revisions
        revisions = await claim_and_revise(self.api, self.pods, self.revisions, sts, self.recorder, noun="statefulset")
        if revisions is None:
            return None
        update = revisions.current
        current = revisions.named(sts.status.current_revision) or update
        step = _Pass(sts, current, update, self.ctx.clock())

        await self._update_pods(step)

        pods = self._pods(sts)
        live = {current.metadata.name, update.metadata.name} | {pod_revision(p) for p in pods.values()}
        await truncate_history(self.api, self.revisions, revisions.all, live=live, limit=history_limit(sts.spec))
        await self._write_status(step, pods, revisions.collision_count)
        return step.again

    def _pods(self, sts: apps_pb2.StatefulSet) -> dict[int, core_pb2.Pod]:
        """The set's pods by ordinal (pods it controls whose names are not NAME-<ordinal> are ignored)."""
        by_ordinal = {}
        for pod in self.pods.owned_by(sts.metadata.uid):
            ordinal = ordinal_of(pod, sts.metadata.name)
            if ordinal is not None:
                by_ordinal[ordinal] = pod
        return by_ordinal

    # ------------------------------------------------------------ steps 2-4

    async def _update_pods(self, step: _Pass) -> None:
        sts = step.sts
        start = sts.spec.ordinals.start
        in_range = range(start, start + _replicas(sts))
        pods = self._pods(sts)
        for position, ordinal in enumerate(in_range):
            if not await self._keep_replica(step, pods.get(ordinal), ordinal, position) and step.monotonic:
                return

        condemned = sorted((o for o in pods if o not in in_range), reverse=True)
        first_unhealthy = next((pods[o] for o in list(in_range) + condemned[::-1]
                                if o in pods and not step.available(pods[o])), None)
        for ordinal in condemned:
            pod = pods[ordinal]
            if is_terminating(pod):
                if step.monotonic:
                    return
                continue
            if step.monotonic and not step.available(pod) and pod is not first_unhealthy:
                return
            await self._delete(sts, pod)
            if step.monotonic:
                return

        if (sts.spec.update_strategy.type or "RollingUpdate") != "RollingUpdate":
            return
        pods = self._pods(sts)  # with this pass's own writes (Parallel goes on past them)
        replicas = [pods.get(ordinal) for ordinal in in_range]
        if sts.spec.update_strategy.rolling_update.HasField("max_unavailable"):
            await self._roll_within_max_unavailable(step, replicas)
        else:
            await self._roll_one_at_a_time(step, replicas)

    async def _keep_replica(self, step: _Pass, pod: core_pb2.Pod | None, ordinal: int, position: int) -> bool:
        """Step 2 for one ordinal; False when an OrderedReady pass must stop here."""
        sts = step.sts
        if pod is None:
            revision = step.current if position < _partition(sts) else step.update
            await self._create(sts, stateful_pod(sts, revision, ordinal))
            return False
        if pod.status.phase in ("Failed", "Succeeded"):
            if not is_terminating(pod):
                self.recorder.warning(sts, "RecreatingFailedPod", f"StatefulSet {sts.metadata.namespace}/"
                                      f"{sts.metadata.name} is recreating failed Pod {pod.metadata.name}")
                await self._delete(sts, pod)
            return False  # created again once the old one is gone
        return step.available(pod)

    async def _roll_one_at_a_time(self, step: _Pass, replicas: list[core_pb2.Pod | None]) -> None:
        for position in range(len(replicas) - 1, _partition(step.sts) - 1, -1):
            pod = replicas[position]
            if pod is not None and pod_revision(pod) != step.update.metadata.name and not is_terminating(pod):
                await self._delete(step.sts, pod)
                return
            if pod is None or not step.available(pod):
                return  # wait for the pod above to be updated and available

    async def _roll_within_max_unavailable(self, step: _Pass, replicas: list[core_pb2.Pod | None]) -> None:
        total = len(replicas)
        budget = max(1, scaled_value(step.sts.spec.update_strategy.rolling_update.max_unavailable, total,
                                     round_up=True))
        unavailable = sum(1 for pod in replicas if pod is None or not step.available(pod))
        if unavailable > budget:
            return
        to_delete = budget - unavailable
        for position in range(total - 1, _partition(step.sts) - 1, -1):
            if to_delete <= 0:
                return
            pod = replicas[position]
            if pod is not None and pod_revision(pod) != step.update.metadata.name and not is_terminating(pod):
                await self._delete(step.sts, pod)
                to_delete -= 1

    # ------------------------------------------------------------ writes

    async def _create(self, sts: apps_pb2.StatefulSet, pod: core_pb2.Pod) -> None:
        name = pod.metadata.name
        try:
            created = await self.api.create(pod)
        except errors.AlreadyExistsError:
            existing = await self.api.get("Pod", name, namespace=pod.metadata.namespace)
            if not is_controlled_by(existing, sts):
                self.recorder.warning(sts, "FailedCreate", f"create Pod {name} in StatefulSet {sts.metadata.name} "
                                                           f"failed error: a pod of that name exists and is not "
                                                           f"controlled by the StatefulSet")
                raise
            self.pods.assume(existing)  # ours, not yet in the cache: nothing to create
            return
        except errors.PreconditionError:
            return  # the namespace is being deleted
        except errors.APIError as err:
            self.recorder.warning(sts, "FailedCreate",
                                  f"create Pod {name} in StatefulSet {sts.metadata.name} failed error: {err}")
            raise
        self.pods.assume(created)
        self.recorder.normal(sts, "SuccessfulCreate",
                             f"create Pod {name} in StatefulSet {sts.metadata.name} successful")

    async def _delete(self, sts: apps_pb2.StatefulSet, pod: core_pb2.Pod) -> None:
        name = pod.metadata.name
        try:
            result, gone = await self.api.delete("Pod", name, namespace=pod.metadata.namespace, uid=pod.metadata.uid)
        except (errors.NotFoundError, errors.ConflictError):
            self.pods.assume_deleted(pod)
            return
        except errors.APIError as err:
            self.recorder.warning(sts, "FailedDelete",
                                  f"delete Pod {name} in StatefulSet {sts.metadata.name} failed error: {err}")
            raise
        if gone:
            self.pods.assume_deleted(pod)
        else:
            self.pods.assume(result)
        self.recorder.normal(sts, "SuccessfulDelete",
                             f"delete Pod {name} in StatefulSet {sts.metadata.name} successful")

    async def _write_status(self, step: _Pass, pods: dict[int, core_pb2.Pod], collision_count: int) -> None:
        sts = step.sts
        status = apps_pb2.StatefulSetStatus()
        status.CopyFrom(sts.status)
        status.observed_generation = sts.metadata.generation
        status.replicas = len(pods)
        status.ready_replicas = sum(1 for p in pods.values() if is_running_and_ready(p))
        status.available_replicas = sum(1 for p in pods.values() if step.available(p))
        active = [p for p in pods.values() if not is_terminating(p)]
        status.current_replicas = sum(1 for p in active if pod_revision(p) == step.current.metadata.name)
        status.updated_replicas = sum(1 for p in active if pod_revision(p) == step.update.metadata.name)
        status.current_revision = step.current.metadata.name
        status.update_revision = step.update.metadata.name
        if collision_count:
            status.collision_count = collision_count
        if status.updated_replicas == status.replicas == status.ready_replicas:
            status.current_revision = status.update_revision
            status.current_replicas = status.updated_replicas
        if status != sts.status:
            changed = apps_pb2.StatefulSet()
            changed.CopyFrom(sts)
            changed.status.CopyFrom(status)
            changed.metadata.ClearField("resource_version")  # status only: written over the latest object
            self.statefulsets.assume(await self.api.update_status(changed))


async def run_statefulset_controller(ctx: ControllerContext) -> None:
    """Run the StatefulSet controller until cancelled."""
    await StatefulSetController(ctx).run()
