"""The scheduler loop: watch pods and nodes, decide, bind.

Shaped like kube-scheduler: informers (the controllers' shared ones when the
scheduler runs beside them, else its own reflectors: list, then watch from
the last resourceVersion seen) keep a cache (control.scheduler.cache) of
Nodes and Pods in all namespaces; watch handlers only update the cache and
queue pod keys; one decision loop takes one pod key at a time and runs
``schedule_pod``:

- the pod must still be ours: unbound (spec.nodeName empty), for one of our
  profiles (spec.schedulerName; empty means default-scheduler), not being
  deleted and not held back by schedulingGates;
- its profile picks a node among the Ready ones (framework.find_node),
  looking for ``feasible_nodes_to_find`` feasible nodes and starting where
  the previous decision stopped;
- the pod is assumed on that node in the cache at once, and the binding (an
  update of the pod with spec.nodeName set, preconditioned on the
  resourceVersion the decision saw) is written in the background: the loop
  goes on deciding while up to ``max_bindings_in_flight`` bindings are on
  their way, as kube-scheduler binds asynchronously. A binding that fails
  undoes the assumption; a conflict (the pod changed) or an error requeues
  the pod, a pod gone is dropped;
- a ``Scheduled`` Event records each binding. Events go through an
  EventRecorder, off the binding path: a bounded queue written by one task,
  its oldest entries dropped when a burst outruns it (events are best
  effort, as Kubernetes' event broadcaster drops them when its queue is
  full);
- when nothing fits, a ``FailedScheduling`` Warning Event and the
  PodScheduled=False condition (reason Unschedulable) say why, both written
  in the background, and the pod waits among the unschedulable ones until a
  Node is added or changes in a way that matters, a pod goes away or
  finishes, or 30 s pass.

Decisions run one at a time, each seeing the previous one's assumption; a
decision never awaits, and the loop yields to the event loop after each
one, so the API service sharing the process keeps answering.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Collection, Hashable

from control.api import errors
from control.client import Client
from control.controllers.informers import Informers
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from control.reflector import Reflector
from control.scheduler.cache import SchedulerCache, counts_on_node, is_ready, pod_key
from control.scheduler.config import SchedulerConfiguration
from control.scheduler.framework import FitError, PodKey, Profile, feasible_nodes_to_find, find_node
from control.scheduler.plugins import DEFAULT_SCHEDULER
from protos.api.v1 import core_pb2

__all__ = ["Scheduler", "SchedulerCache", "run_scheduler", "wants_scheduling"]

log = logging.getLogger(__name__)
UNSCHEDULABLE_RETRY_SECONDS = 30.0
CONFLICT_RETRY_SECONDS = 0.05
CONDITION_WRITE_ATTEMPTS = 3
# Bindings written concurrently while decisions go on.
MAX_BINDINGS_IN_FLIGHT = 64
# PodScheduled condition writes at once (a burst of unschedulable pods queues behind these).
MAX_CONDITION_WRITES_IN_FLIGHT = 8
# Events name their source as Sampan's other components do (sampan-agent).
EVENT_COMPONENT = "sampan-scheduler"


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def wants_scheduling(pod: core_pb2.Pod, *, scheduler_names: Collection[str] = (DEFAULT_SCHEDULER,)) -> bool:
    """Whether a scheduler with these profiles should place pod now."""
    return (not pod.spec.node_name
            and (pod.spec.scheduler_name or DEFAULT_SCHEDULER) in scheduler_names
            and not pod.metadata.HasField("deletion_timestamp")
            and not pod.spec.scheduling_gates
            and pod.status.phase not in ("Succeeded", "Failed"))


def _same_for_scheduling(old: core_pb2.Pod, new: core_pb2.Pod) -> bool:
    """Whether a pod update leaves what scheduling looks at as it was (a status write)."""
    return old.spec == new.spec and old.metadata.labels == new.metadata.labels


def _node_change_matters(old: core_pb2.Node | None, new: core_pb2.Node) -> bool:
    """Whether a node update could make a waiting pod fit (not a heartbeat)."""
    return (old is None or is_ready(old) != is_ready(new) or old.spec != new.spec
            or old.metadata.labels != new.metadata.labels or old.status.allocatable != new.status.allocatable)


def _with_scheduled_condition(pod: core_pb2.Pod, *, status: str, reason: str,
                              message: str) -> core_pb2.Pod | None:
    """A copy of pod whose PodScheduled condition is as given; None when it already is."""
    current = next((c for c in pod.status.conditions if c.type == "PodScheduled"), None)
    if current is not None and (current.status, current.reason, current.message) == (status, reason, message):
        return None
    updated = core_pb2.Pod()
    updated.CopyFrom(pod)
    condition = core_pb2.PodCondition(type="PodScheduled", status=status, reason=reason, message=message,
                                      last_transition_time=format_time(time.time()))
    if current is not None and current.status == status and current.last_transition_time:
        condition.last_transition_time = current.last_transition_time
    if not reason:
        condition.ClearField("reason")
    if not message:
        condition.ClearField("message")
    kept = [c for c in updated.status.conditions if c.type != "PodScheduled"]
    del updated.status.conditions[:]
    updated.status.conditions.extend(kept + [condition])
    if not updated.status.phase:
        updated.status.phase = "Pending"
    return updated


class Scheduler:
    """One scheduler: a cache, a queue of pod keys, a profile per schedulerName."""

    def __init__(self, api: Client, *, profile: Profile | None = None,
                 config: SchedulerConfiguration | None = None,
                 unschedulable_retry: float = UNSCHEDULABLE_RETRY_SECONDS,
                 max_bindings_in_flight: int = MAX_BINDINGS_IN_FLIGHT,
                 informers: Informers | None = None) -> None:
        self.api = api
        self.informers = informers
        if config is None:
            config = SchedulerConfiguration() if profile is None else SchedulerConfiguration(profiles=(profile,))
        self.config = config
        self.profiles = {p.name: p for p in config.profiles}
        self.unschedulable_retry = unschedulable_retry
        self.cache = SchedulerCache()
        self.queue = WorkQueue()
        self.unschedulable: set[PodKey] = set()
        self.recorder = EventRecorder(api, component=EVENT_COMPONENT)
        self.bindings = 0  # written successfully, since start
        self._binding_slots = asyncio.Semaphore(max_bindings_in_flight)
        self._condition_slots = asyncio.Semaphore(MAX_CONDITION_WRITES_IN_FLIGHT)
        self._background: set[asyncio.Task] = set()
        self._next_start = 0

    def wants(self, pod: core_pb2.Pod) -> bool:
        return wants_scheduling(pod, scheduler_names=self.profiles)

    # ------------------------------------------------------------ watch handlers

    def pod_changed(self, event_type: str, pod: core_pb2.Pod) -> None:
        key = pod_key(pod)
        old = self.cache.pods.get(key)
        if event_type == "DELETED":
            self.cache.remove_pod(key)
            self.unschedulable.discard(key)
            self.retry_unschedulable()
            return
        self.cache.set_pod(pod)
        if old is not None and counts_on_node(old) and not counts_on_node(pod) and old.spec.node_name:
            self.retry_unschedulable()  # it finished: its node has room again
        if key in self.unschedulable:
            if old is not None and _same_for_scheduling(old, pod):
                return  # only its status changed (our own PodScheduled write, say): nothing new to try
            self.unschedulable.discard(key)
        current = self.cache.pods.get(key)
        if current is not None and self.wants(current):
            self.queue.add(key)

    def node_changed(self, event_type: str, node: core_pb2.Node) -> None:
        if event_type == "DELETED":
            self.cache.remove_node(node.metadata.name)
            return
        old = self.cache.nodes.get(node.metadata.name)
        self.cache.set_node(node)
        if _node_change_matters(old, node):
            self.retry_unschedulable()

    def retry_unschedulable(self) -> None:
        """Move every unschedulable pod back to the active queue."""
        for key in self.unschedulable:
            self.queue.add(key)
        self.unschedulable.clear()

    # ----------------------------------------------------------- one decision

    def _percentage(self, profile: Profile) -> int:
        if profile.percentage_of_nodes_to_score is not None:
            return profile.percentage_of_nodes_to_score
        return self.config.percentage_of_nodes_to_score

    async def schedule_pod(self, key: Hashable) -> float | None:
        """Place the pod at key; seconds after which to look again, or None."""
        pod = self.cache.pods.get(key)  # type: ignore[arg-type]
        if pod is None or not self.wants(pod):
            return None
        profile = self.profiles[pod.spec.scheduler_name or DEFAULT_SCHEDULER]
        nodes = self.cache.node_infos()
        decision = find_node(pod, nodes, profile, start=self._next_start,
                             feasible_wanted=feasible_nodes_to_find(len(nodes), self._percentage(profile)),
                             nodes_with_required_anti_affinity=self.cache.nodes_with_required_anti_affinity())
        if nodes:
            self._next_start = (self._next_start + decision.evaluated) % len(nodes)
        if decision.node_name is None:
            assert decision.failure is not None
            self._record_failure(pod, decision.failure, mark_pod=bool(nodes))
            self.unschedulable.add(key)  # type: ignore[arg-type]
            await asyncio.sleep(0)
            return self.unschedulable_retry
        bound = core_pb2.Pod()
        bound.CopyFrom(pod)
        bound.spec.node_name = decision.node_name
        self.cache.assume(bound)
        await self._binding_slots.acquire()
        self._spawn(self._bind(bound))
        await asyncio.sleep(0)  # let the bindings, the watches and the API service run
        return None

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _bind(self, bound: core_pb2.Pod) -> None:
        """Write one binding (holding a binding slot); see the module docstring."""
        key = pod_key(bound)
        try:
            written = await self.api.update(bound)
        except errors.NotFoundError:
            self.cache.forget(key)
            return
        except errors.ConflictError:
            # The pod changed since the decision: the watch brings the newer one; decide again.
            self.cache.forget(key)
            self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
            return
        except errors.APIError as err:
            log.warning("binding pod %s/%s to %s failed, retrying: %s", *key, bound.spec.node_name, err)
            self.cache.forget(key)
            self.queue.requeue_with_backoff(key)
            return
        except Exception:
            log.exception("binding pod %s/%s to %s failed, retrying", *key, bound.spec.node_name)
            self.cache.forget(key)
            self.queue.requeue_with_backoff(key)
            return
        finally:
            self._binding_slots.release()
        self.cache.confirm(key, written)
        self.bindings += 1
        log.debug("bound pod %s/%s to %s", *key, bound.spec.node_name)
        self.recorder.normal(written, "Scheduled",
                             f"Successfully assigned {key[0]}/{key[1]} to {bound.spec.node_name}")
        if any(c.type == "PodScheduled" and c.status != "True" for c in written.status.conditions):
            await self._set_scheduled_condition(written, status="True", reason="", message="")

    def _record_failure(self, pod: core_pb2.Pod, failure: FitError, *, mark_pod: bool) -> None:
        """A FailedScheduling event and, when mark_pod, PodScheduled=False on the pod.

        The same failure again is counted on the earlier event (the
        recorder aggregates). With no Ready node at all (a control service
        on its own) the event alone tells why: the pod itself is left
        untouched, so clients working with pending pods there never race
        the scheduler's writes.
        """
        self.recorder.warning(pod, "FailedScheduling", failure.message)
        if mark_pod:
            self._spawn(self._set_scheduled_condition(pod, status="False", reason="Unschedulable",
                                                      message=failure.message))

    async def _set_scheduled_condition(self, pod: core_pb2.Pod, *, status: str, reason: str, message: str) -> None:
        """Make the pod's PodScheduled condition say status/reason/message.

        Written only when it differs, preconditioned on the pod's
        resourceVersion so it never overwrites an agent's concurrent status
        write; after a conflict it reads the pod again and retries, unless
        the pod has been bound meanwhile (then "False" no longer holds).
        """
        async with self._condition_slots:
            await self._write_scheduled_condition(pod, status=status, reason=reason, message=message)

    async def _write_scheduled_condition(self, pod: core_pb2.Pod, *, status: str, reason: str,
                                         message: str) -> None:
        for _attempt in range(CONDITION_WRITE_ATTEMPTS):
            updated = _with_scheduled_condition(pod, status=status, reason=reason, message=message)
            if updated is None:
                return
            try:
                written = await self.api.update_status(updated)
            except errors.ConflictError:
                try:
                    pod = await self.api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
                except errors.APIError:
                    return
                if status == "False" and pod.spec.node_name:
                    return
                continue
            except errors.APIError as err:
                log.info("PodScheduled condition of %s/%s not written: %s", *pod_key(pod), err)
                return
            self.cache.set_pod(written)
            return

    # ------------------------------------------------------------------ loop

    def _pod_event(self, old: core_pb2.Pod | None, new: core_pb2.Pod | None) -> None:
        if new is None:
            assert old is not None
            self.pod_changed("DELETED", old)
        else:
            self.pod_changed("ADDED" if old is None else "MODIFIED", new)

    def _node_event(self, old: core_pb2.Node | None, new: core_pb2.Node | None) -> None:
        if new is None:
            assert old is not None
            self.node_changed("DELETED", old)
        else:
            self.node_changed("ADDED" if old is None else "MODIFIED", new)

    async def run(self) -> None:
        """Schedule until cancelled. The decision loop starts once both caches have synced."""
        helpers = [asyncio.create_task(self.recorder.run())]
        if self.informers is not None:
            nodes, pods = self.informers.get("Node"), self.informers.get("Pod")
            nodes.add_handler(self._node_event)
            pods.add_handler(self._pod_event)
            self.informers.start()  # those not running yet; the controllers' manager stops them
            synced = [nodes.synced, pods.synced]
        else:
            own = [Reflector(self.api, "Node", on_change=self._node_event),
                   Reflector(self.api, "Pod", on_change=self._pod_event)]
            helpers += [asyncio.create_task(reflector.run()) for reflector in own]
            synced = [reflector.synced for reflector in own]
        try:
            for event in synced:
                await event.wait()
            await run_workers(self.queue, self.schedule_pod, workers=1)
        finally:
            for task in [*helpers, *self._background]:
                task.cancel()
            await asyncio.gather(*helpers, *self._background, return_exceptions=True)
            self.queue.close()


async def run_scheduler(api: Client, *, profile: Profile | None = None, config: SchedulerConfiguration | None = None,
                        informers: Informers | None = None) -> None:
    """The scheduler (the default profile unless config says otherwise), until cancelled."""
    await Scheduler(api, profile=profile, config=config, informers=informers).run()
