"""What the DaemonSet and StatefulSet controller tests need in place of agents.

The in-process control service runs the controllers and the scheduler, but
no agent runs the pods. ``StandInKubelet`` is the fake that takes the
agent's place, through the API only: it marks bound pods Running and Ready
(as an agent writes their status) and confirms graceful deletions (as an
agent does once the containers are stopped, by deleting with grace period 0).
Tests switch either half off to hold pods in a state, or do the same by hand
with ``mark_ready``/``mark_failed``/``confirm_deletion``.

``PodLog`` records every pod watch event in order, so a test can check an
invariant at every moment rather than only at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from control.api import errors
from control.api.manifest import to_message
from control.api.timestamps import format_time
from control.client import Client
from control.controllers.pods import is_ready, is_terminating
from protos.api.v1 import core_pb2
from tests.scheduler.builders import make_node


async def eventually(check: Callable, *, timeout: float = 15.0):
    """Poll check() until it returns something true (AssertionError/NotFound count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except (AssertionError, errors.NotFoundError):
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.05)


async def add_ready_node(api: Client, name: str, *, labels: dict[str, str] | None = None,
                         taints: list[dict[str, str]] | None = None, unschedulable: bool = False) -> core_pb2.Node:
    """A Node object with a Ready condition, as an agent would register it."""
    node = make_node(name, labels=labels, taints=taints, unschedulable=unschedulable)
    created = await api.create(node)
    if not created.status.conditions:  # status is written through its subresource only
        created.status.CopyFrom(node.status)
        created = await api.update_status(created)
    return created


def workload(kind: str, name: str, *, image: str = "busybox:1", labels: dict[str, str] | None = None,
             pod_spec: dict[str, Any] | None = None, **spec: Any):
    """A DaemonSet or StatefulSet manifest as users write it (selector app=NAME)."""
    labels = labels or {"app": name}
    body = {"selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "main", "image": image}], **(pod_spec or {})}},
            **spec}
    return to_message({"apiVersion": "apps/v1", "kind": kind,
                       "metadata": {"name": name, "namespace": "default"}, "spec": body})


async def set_image(api: Client, kind: str, name: str, image: str) -> None:
    await api.patch(kind, name, {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}},
                    namespace="default")


async def mark_ready(api: Client, pod: core_pb2.Pod) -> None:
    """Write the status an agent writes for a pod whose containers run and pass readiness."""
    current = await api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
    if current.metadata.uid != pod.metadata.uid:
        return
    now = format_time(time.time())
    current.status.phase = "Running"
    current.status.pod_ip = "10.244.0.10"
    del current.status.conditions[:]
    for type_ in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        current.status.conditions.add(type=type_, status="True", last_transition_time=now)
    current.metadata.ClearField("resource_version")  # the status alone, over whatever else changed meanwhile
    await api.update_status(current)


async def mark_failed(api: Client, pod: core_pb2.Pod) -> None:
    """Write the status of a pod whose containers exited with an error for good."""
    current = await api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
    current.status.phase = "Failed"
    del current.status.conditions[:]
    current.status.conditions.add(type="Ready", status="False", last_transition_time=format_time(time.time()))
    current.metadata.ClearField("resource_version")  # the status alone, over whatever else changed meanwhile
    await api.update_status(current)


async def confirm_deletion(api: Client, pod: core_pb2.Pod) -> None:
    """An agent's confirmation that a terminating pod's containers have stopped."""
    with contextlib.suppress(errors.NotFoundError, errors.ConflictError):
        await api.delete("Pod", pod.metadata.name, namespace=pod.metadata.namespace,
                         grace_period_seconds=0, uid=pod.metadata.uid)


class StandInKubelet:
    """Marks bound pods Ready and confirms their deletion (see the module docstring)."""

    def __init__(self, api: Client, *, ready: bool = True, confirm_deletions: bool = True) -> None:
        self.api = api
        self.ready = ready
        self.confirm_deletions = confirm_deletions
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "StandInKubelet":
        revision = await self._relist()
        self._task = asyncio.create_task(self._watch(revision))
        return self

    async def _relist(self) -> str:
        items, revision = await self.api.list("Pod", namespace="default")
        for pod in items:
            await self._handle(pod)
        return revision

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self, revision: str) -> None:
        # As an agent does, it carries on after a failed call or a broken watch (a slow,
        # loaded machine): list again, handle every pod, watch from there.
        while True:
            try:
                async for event in self.api.watch("Pod", namespace="default", resource_version=revision):
                    if event.type != "DELETED":
                        await self._handle(event.object)
            except errors.APIError:
                await asyncio.sleep(0.1)
            while True:
                try:
                    revision = await self._relist()
                    break
                except errors.APIError:
                    await asyncio.sleep(0.1)

    async def _handle(self, pod: core_pb2.Pod) -> None:
        try:
            if is_terminating(pod):
                if self.confirm_deletions:
                    await confirm_deletion(self.api, pod)
            elif self.ready and pod.spec.node_name and pod.status.phase not in ("Failed", "Succeeded") \
                    and not is_ready(pod):
                await mark_ready(self.api, pod)
        except (errors.NotFoundError, errors.ConflictError):
            pass  # changed or gone meanwhile: the watch brings the newer version


@dataclass
class PodLog:
    """Every pod watch event in one namespace, in order, and the pods as they were after each."""

    api: Client
    initial: list[core_pb2.Pod] = field(default_factory=list)
    events: list[tuple[str, core_pb2.Pod]] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def __aenter__(self) -> "PodLog":
        self.initial, revision = await self.api.list("Pod", namespace="default")
        self._task = asyncio.create_task(self._watch(revision))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        if exc[0] is None:
            await eventually(self._caught_up)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _caught_up(self) -> bool:
        """Whether the log has seen every pod as the API holds it now (its stream may lag behind)."""
        items, _ = await self.api.list("Pod", namespace="default")
        listed = {pod.metadata.name: pod.metadata.resource_version for pod in items}
        present = {pod.metadata.name: pod for pod in self.initial}
        for _type, _pod, present in self.states():
            pass
        return listed == {name: pod.metadata.resource_version for name, pod in present.items()}

    async def _watch(self, revision: str) -> None:
        async for event in self.api.watch("Pod", namespace="default", resource_version=revision):
            self.events.append((event.type, event.object))

    def states(self):
        """After each event: (event type, the pod, {name: pod} of every pod then present)."""
        present = {pod.metadata.name: pod for pod in self.initial}
        for type_, pod in self.events:
            if type_ == "DELETED":
                present.pop(pod.metadata.name, None)
            else:
                present[pod.metadata.name] = pod
            yield type_, pod, dict(present)
