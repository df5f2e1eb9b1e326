"""The scheduler loop: watch pods and nodes, decide, bind.

Shaped like kube-scheduler: reflectors keep a cache of Nodes and Pods (all
namespaces) from list+watch; watch handlers only update the cache and queue
pod keys; one worker takes a pod key at a time and runs ``schedule_pod``:

- the pod must still be ours: unbound (spec.nodeName empty), for this
  scheduler (schedulerName empty or default-scheduler), not being deleted and
  not held back by schedulingGates;
- the framework picks a node from NodeInfos built out of the cache;
- binding is an update of the pod with spec.nodeName set, preconditioned on
  the resourceVersion the decision saw (a ConflictError requeues the pod);
  the bound pod is put in the cache at once ("assumed"), so the next decision
  counts it on its node before the watch reports it;
- a ``Scheduled`` Event records the decision; when nothing fits, a
  ``FailedScheduling`` Warning Event and the PodScheduled=False condition
  (reason Unschedulable) say why, and the pod waits among the unschedulable
  ones until a Node is added or changes, a pod goes away, or 30 s pass.

Decisions run one at a time: each must see the previous one's assumption.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Awaitable, Callable, Hashable

from control.api import errors
from control.client import Client
from control.controllers.queue import WorkQueue, run_workers
from control.scheduler.framework import FitError, NodeInfo, Profile, schedule_one
from control.scheduler.plugins import DEFAULT_SCHEDULER, default_profile
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)
UNSCHEDULABLE_RETRY_SECONDS = 30.0
CONFLICT_RETRY_SECONDS = 0.05
WATCH_RESTART_SECONDS = 1.0
CONDITION_WRITE_ATTEMPTS = 3
# Events name their source as Sampan's other components do (sampan-agent).
EVENT_COMPONENT = "sampan-scheduler"
PodKey = tuple[str, str]  # (namespace, name)


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def pod_key(pod: core_pb2.Pod) -> PodKey:
    return pod.metadata.namespace, pod.metadata.name


def is_ready(node: core_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def wants_scheduling(pod: core_pb2.Pod, *, scheduler_name: str = DEFAULT_SCHEDULER) -> bool:
    """Whether this scheduler should place pod now."""
    return (not pod.spec.node_name
            and pod.spec.scheduler_name in ("", scheduler_name)
            and not pod.metadata.HasField("deletion_timestamp")
            and not pod.spec.scheduling_gates
            and pod.status.phase not in ("Succeeded", "Failed"))


def _counts_on_node(pod: core_pb2.Pod) -> bool:
    # Finished pods hold no resources on their node.
    return bool(pod.spec.node_name) and pod.status.phase not in ("Succeeded", "Failed")


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


class SchedulerCache:
    """Nodes and pods as the watches (and this scheduler's own bindings) report them.

    Cached messages are never mutated; replacing one replaces the object.
    Each node's NodeInfo is built once and kept until the node or the pods
    on it change, so a decision costs a pass over the nodes, not the pods.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, core_pb2.Node] = {}
        self.pods: dict[PodKey, core_pb2.Pod] = {}
        self._on_node: dict[str, dict[PodKey, core_pb2.Pod]] = {}
        self._infos: dict[str, NodeInfo] = {}

    def set_node(self, node: core_pb2.Node) -> None:
        self.nodes[node.metadata.name] = node
        self._infos.pop(node.metadata.name, None)

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self._infos.pop(name, None)

    def replace_nodes(self, nodes: list[core_pb2.Node]) -> None:
        self.nodes = {node.metadata.name: node for node in nodes}
        self._infos.clear()

    def set_pod(self, pod: core_pb2.Pod) -> None:
        key = pod_key(pod)
        cached = self.pods.get(key)
        # A binding is permanent: an older, unbound view of an assumed pod
        # (a watch lagging behind our own write) must not undo it.
        if (cached is not None and cached.spec.node_name and not pod.spec.node_name
                and cached.metadata.uid == pod.metadata.uid):
            return
        self._unplace(key)
        self.pods[key] = pod
        if _counts_on_node(pod):
            self._on_node.setdefault(pod.spec.node_name, {})[key] = pod
            self._infos.pop(pod.spec.node_name, None)

    def remove_pod(self, key: PodKey) -> None:
        self._unplace(key)
        self.pods.pop(key, None)

    def replace_pods(self, pods: list[core_pb2.Pod]) -> None:
        self.pods, self._on_node = {}, {}
        self._infos.clear()
        for pod in pods:
            self.set_pod(pod)

    def _unplace(self, key: PodKey) -> None:
        old = self.pods.get(key)
        if old is not None and _counts_on_node(old):
            self._on_node.get(old.spec.node_name, {}).pop(key, None)
            self._infos.pop(old.spec.node_name, None)

    def node_infos(self) -> list[NodeInfo]:
        """The Ready nodes with their pods, sorted by name."""
        infos = []
        for name in sorted(self.nodes):
            node = self.nodes[name]
            if not is_ready(node):
                continue
            info = self._infos.get(name)
            if info is None:
                info = self._infos[name] = NodeInfo(node, list(self._on_node.get(name, {}).values()))
            infos.append(info)
        return infos


class Scheduler:
    """One scheduler: a cache, a queue of pod keys, a profile."""

    def __init__(self, api: Client, *, profile: Profile | None = None,
                 unschedulable_retry: float = UNSCHEDULABLE_RETRY_SECONDS) -> None:
        self.api = api
        self.profile = profile or default_profile()
        self.unschedulable_retry = unschedulable_retry
        self.cache = SchedulerCache()
        self.queue = WorkQueue()
        self.unschedulable: set[PodKey] = set()
        # The last FailedScheduling event per pod uid: (event name, message, count).
        self._failure_events: dict[str, tuple[str, str, int]] = {}

    # ------------------------------------------------------------ watch handlers

    def pod_changed(self, event_type: str, pod: core_pb2.Pod) -> None:
        key = pod_key(pod)
        if event_type == "DELETED":
            self.cache.remove_pod(key)
            self.unschedulable.discard(key)
            self._failure_events.pop(pod.metadata.uid, None)
            self.retry_unschedulable()
            return
        self.cache.set_pod(pod)
        self.unschedulable.discard(key)
        if wants_scheduling(pod):
            self.queue.add(key)

    def node_changed(self, event_type: str, node: core_pb2.Node) -> None:
        if event_type == "DELETED":
            self.cache.remove_node(node.metadata.name)
        else:
            self.cache.set_node(node)
            self.retry_unschedulable()

    def retry_unschedulable(self) -> None:
        """Move every unschedulable pod back to the active queue."""
        for key in self.unschedulable:
            self.queue.add(key)
        self.unschedulable.clear()

    # ----------------------------------------------------------- one decision

    async def schedule_pod(self, key: Hashable) -> float | None:
        """Place the pod at key; seconds after which to look again, or None."""
        pod = self.cache.pods.get(key)  # type: ignore[arg-type]
        if pod is None or not wants_scheduling(pod):
            return None
        nodes = self.cache.node_infos()
        node_name, failure = schedule_one(pod, nodes, self.profile)
        if node_name is None:
            assert failure is not None
            await self._record_failure(pod, failure, mark_pod=bool(nodes))
            self.unschedulable.add(key)  # type: ignore[arg-type]
            return self.unschedulable_retry
        return await self._bind(pod, node_name)

    async def _bind(self, pod: core_pb2.Pod, node_name: str) -> float | None:
        binding = core_pb2.Pod()
        binding.CopyFrom(pod)
        binding.spec.node_name = node_name
        try:
            bound = await self.api.update(binding)
        except errors.ConflictError:
            return CONFLICT_RETRY_SECONDS  # the watch brings the newer pod; decide again
        except errors.NotFoundError:
            return None
        self.cache.set_pod(bound)  # assume
        self._failure_events.pop(pod.metadata.uid, None)
        namespace, name = pod_key(pod)
        log.info("bound pod %s/%s to %s", namespace, name, node_name)
        await self._event(bound, reason="Scheduled", type_="Normal",
                          message=f"Successfully assigned {namespace}/{name} to {node_name}")
        if any(c.type == "PodScheduled" and c.status != "True" for c in bound.status.conditions):
            await self._set_scheduled_condition(bound, status="True", reason="", message="")
        return None

    async def _record_failure(self, pod: core_pb2.Pod, failure: FitError, *, mark_pod: bool) -> None:
        """A FailedScheduling event and, when mark_pod, PodScheduled=False on the pod.

        With no Ready node at all (a control service on its own) the event
        alone tells why: the pod itself is left untouched, so clients
        working with pending pods there never race the scheduler's writes.
        """
        message = failure.message
        previous = self._failure_events.get(pod.metadata.uid)
        if previous is not None and previous[1] == message:
            # The same failure again: count it on the event (as Kubernetes' recorder aggregates).
            name, _, count = previous
            try:
                await self.api.patch("Event", name, {"count": count + 1, "lastTimestamp": format_time(time.time())},
                                     namespace=pod.metadata.namespace)
                self._failure_events[pod.metadata.uid] = (name, message, count + 1)
            except errors.APIError as err:
                log.info("FailedScheduling event of %s/%s not updated: %s", *pod_key(pod), err)
        else:
            name = await self._event(pod, reason="FailedScheduling", type_="Warning", message=message)
            if name:
                self._failure_events[pod.metadata.uid] = (name, message, 1)
        if mark_pod:
            await self._set_scheduled_condition(pod, status="False", reason="Unschedulable", message=message)

    async def _set_scheduled_condition(self, pod: core_pb2.Pod, *, status: str, reason: str, message: str) -> None:
        """Make the pod's PodScheduled condition say status/reason/message.

        Written only when it differs, preconditioned on the pod's
        resourceVersion so it never overwrites an agent's concurrent status
        write; after a conflict it reads the pod again and retries.
        """
        for _attempt in range(CONDITION_WRITE_ATTEMPTS):
            updated = _with_scheduled_condition(pod, status=status, reason=reason, message=message)
            if updated is None:
                return
            try:
                self.cache.set_pod(await self.api.update_status(updated))
                return
            except errors.ConflictError:
                try:
                    pod = await self.api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
                except errors.APIError:
                    return
            except errors.APIError as err:
                log.info("PodScheduled condition of %s/%s not written: %s", *pod_key(pod), err)
                return

    async def _event(self, pod: core_pb2.Pod, *, reason: str, type_: str, message: str) -> str:
        """Write an Event about pod (best effort); its name, or "" when it failed."""
        meta = pod.metadata
        now = format_time(time.time())
        event = core_pb2.Event(api_version="v1", kind="Event", reason=reason, message=message, type=type_,
                               count=1, first_timestamp=now, last_timestamp=now,
                               reporting_component=EVENT_COMPONENT, action="Scheduling")
        event.metadata.name = f"{meta.name}.{uuid.uuid4().hex[:16]}"
        event.metadata.namespace = meta.namespace
        ref = event.involved_object
        ref.kind, ref.api_version, ref.name, ref.namespace, ref.uid = "Pod", "v1", meta.name, meta.namespace, meta.uid
        event.source.component = EVENT_COMPONENT
        try:
            await self.api.create(event)
        except errors.APIError as err:
            log.info("event %s about pod %s/%s dropped: %s", reason, meta.namespace, meta.name, err)
            return ""
        return event.metadata.name

    # ------------------------------------------------------------------ loop

    async def _reflect(self, kind: str, replace: Callable[[list], None],
                       changed: Callable[[str, object], None], synced: asyncio.Event) -> None:
        """List kind into the cache, then apply its watch events; relist on any error."""
        while True:
            try:
                items, revision = await self.api.list(kind)
                replace(items)
                synced.set()
                async for event in self.api.watch(kind, resource_version=revision):
                    changed(event.type, event.object)
            except errors.APIError as err:
                log.info("%s watch restarts: %s", kind, err)
            await asyncio.sleep(WATCH_RESTART_SECONDS)

    def _replace_nodes(self, nodes: list) -> None:
        self.cache.replace_nodes(nodes)
        self.retry_unschedulable()

    def _replace_pods(self, pods: list) -> None:
        self.cache.replace_pods(pods)
        for pod in pods:
            if wants_scheduling(pod):
                self.queue.add(pod_key(pod))

    async def run(self) -> None:
        """Schedule until cancelled. Workers start once both caches have synced."""
        nodes_synced, pods_synced = asyncio.Event(), asyncio.Event()
        reflectors = [
            asyncio.create_task(self._reflect("Node", self._replace_nodes, self.node_changed, nodes_synced)),
            asyncio.create_task(self._reflect("Pod", self._replace_pods, self.pod_changed, pods_synced)),
        ]
        try:
            await nodes_synced.wait()
            await pods_synced.wait()
            await run_workers(self.queue, self.schedule_pod, workers=1)
        finally:
            for task in reflectors:
                task.cancel()
            await asyncio.gather(*reflectors, return_exceptions=True)
            self.queue.close()


async def run_scheduler(api: Client, *, profile: Profile | None = None) -> None:
    """The default scheduler, until cancelled."""
    await Scheduler(api, profile=profile).run()
