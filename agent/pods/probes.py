"""Liveness, readiness and startup probes: one asyncio task per probe per container.

``ProbeManager.ensure`` starts a container instance's probe tasks when the pod
sync sees it running (idempotent); ``stop_container`` ends them when the
instance stops. Each task follows kubelet's prober worker:

- it waits ``initialDelaySeconds`` after the container started, then probes
  every ``periodSeconds`` with ``timeoutSeconds``;
- a result is published only after ``successThreshold`` equal successes or
  ``failureThreshold`` equal failures in a row;
- initial results: readiness fails, liveness passes, startup is unknown;
- while a startup probe has not succeeded, liveness and readiness wait; once it
  has, the startup task ends;
- a published liveness or startup failure puts the task on hold: the pod sync
  kills the container (``restart_reason``) and the next instance gets new tasks.

Every published change calls ``on_change(pod_uid)`` so the manager re-syncs
the pod (its Ready condition, or the restart); every failed attempt records
an Unhealthy event, as kubelet's do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping

from control.recorder import EventRecorder
from agent.pods.handlers import ActionResult, named_ports, run_exec, run_grpc, run_http_get, run_tcp_socket
from agent.pods.status import ContainerProbeResults
from agent.runtime.base import ContainerRuntime
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)

LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"
_FIELDS = {STARTUP: "startup_probe", READINESS: "readiness_probe", LIVENESS: "liveness_probe"}


async def run_probe(
    runtime: ContainerRuntime, probe: core_pb2.Probe, *, container_id: str, host: str, ports: Mapping[str, int]
) -> ActionResult:
    """One attempt of a probe against one container instance."""
    timeout = float(probe.timeout_seconds or 1)
    if probe.HasField("exec"):
        return await run_exec(runtime, container_id, command=probe.exec.command, timeout=timeout)
    if probe.HasField("http_get"):
        return await run_http_get(probe.http_get, host=host, ports=ports, timeout=timeout)
    if probe.HasField("tcp_socket"):
        return await run_tcp_socket(probe.tcp_socket, host=host, ports=ports, timeout=timeout)
    if probe.HasField("grpc"):
        return await run_grpc(probe.grpc, host=host, timeout=timeout)
    return ActionResult(False, "the probe has no handler")


class ThresholdCounter:
    """Kubelet's result bookkeeping: a result counts once it repeats threshold times in a row."""

    def __init__(self, probe: core_pb2.Probe) -> None:
        self.success_threshold = probe.success_threshold or 1
        self.failure_threshold = probe.failure_threshold or 3
        self._last: bool | None = None
        self._run = 0

    def observe(self, ok: bool) -> bool | None:
        """Add one attempt's outcome; the result to publish, or None while below its threshold."""
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        if self._run < (self.success_threshold if ok else self.failure_threshold):
            return None
        return ok


@dataclass
class ProbeTarget:
    """The container instance a probe task watches."""

    pod: core_pb2.Pod
    container: core_pb2.Container
    container_id: str
    started_at: float
    host: str


@dataclass
class _InstanceProbes:
    target: ProbeTarget
    tasks: list[asyncio.Task] = field(default_factory=list)
    ready: bool = False
    started: bool = False
    alive: bool = True
    restart_reason: str = ""


class ProbeManager:
    def __init__(
        self, runtime: ContainerRuntime, *, on_change: Callable[[str], None], recorder: EventRecorder | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._runtime = runtime
        self._on_change = on_change
        self._recorder = recorder
        self._sleep = sleep  # tests scale time down through this
        self._instances: dict[str, _InstanceProbes] = {}

    # ------------------------------------------------------------ the seam

    def ensure(self, target: ProbeTarget) -> None:
        """Start the probe tasks of a running container instance (once per instance)."""
        if target.container_id in self._instances:
            return
        container = target.container
        instance = _InstanceProbes(target, started=not container.HasField("startup_probe"))
        self._instances[target.container_id] = instance
        for kind, name in _FIELDS.items():
            if container.HasField(name):
                task = asyncio.create_task(self._run(kind, getattr(container, name), instance),
                                           name=f"probe {kind} {container.name} {target.container_id[:12]}")
                instance.tasks.append(task)

    def results(self) -> dict[str, ContainerProbeResults]:
        """Probe results by container id, for compute_pod_status."""
        return {cid: ContainerProbeResults(ready=i.ready, started=i.started) for cid, i in self._instances.items()}

    def restart_reason(self, container_id: str) -> str:
        """Why the instance must be restarted ("" when it need not): a failed liveness or startup probe."""
        instance = self._instances.get(container_id)
        return instance.restart_reason if instance is not None else ""

    def running_tasks(self, container_id: str) -> int:
        """How many probe tasks watch the instance now."""
        instance = self._instances.get(container_id)
        return sum(not task.done() for task in instance.tasks) if instance is not None else 0

    def stop_container(self, container_id: str) -> None:
        instance = self._instances.pop(container_id, None)
        if instance is not None:
            for task in instance.tasks:
                task.cancel()

    def retain(self, container_ids: set[str], *, pod_uid: str) -> None:
        """Stop the pod's probe tasks for every instance not in container_ids."""
        for cid, instance in list(self._instances.items()):
            if instance.target.pod.metadata.uid == pod_uid and cid not in container_ids:
                self.stop_container(cid)

    def stop_all(self) -> None:
        for cid in list(self._instances):
            self.stop_container(cid)

    # ------------------------------------------------------------- workers

    async def _run(self, kind: str, probe: core_pb2.Probe, instance: _InstanceProbes) -> None:
        target = instance.target
        period = float(probe.period_seconds or 10)
        counter = ThresholdCounter(probe)
        delay = target.started_at + probe.initial_delay_seconds - time.time()
        if delay > 0:
            await self._sleep(delay)
        ports = named_ports(target.container)
        while True:
            if kind != STARTUP and not instance.started:
                await self._sleep(period)
                continue
            try:
                result = await run_probe(self._runtime, probe, container_id=target.container_id,
                                         host=target.host, ports=ports)
            except Exception as err:  # a broken probe is a failing probe, never a dead task
                log.exception("probe %s of %s failed to run", kind, target.container.name)
                result = ActionResult(False, str(err))
            if not result.ok:
                self._unhealthy(kind, target, result.output)
            published = counter.observe(result.ok)
            if published is not None and self._publish(kind, instance, published):
                self._on_change(target.pod.metadata.uid)
            if published is False and kind in (LIVENESS, STARTUP):
                return  # on hold: the container is about to be restarted
            if kind == STARTUP and instance.started:
                return
            await self._sleep(period)

    @staticmethod
    def _publish(kind: str, instance: _InstanceProbes, ok: bool) -> bool:
        """Set the instance's result for kind; True when it changed."""
        if kind == READINESS:
            changed, instance.ready = instance.ready != ok, ok
        elif kind == STARTUP:
            changed, instance.started = instance.started != ok, ok
            if not ok:
                instance.restart_reason = "failed startup probe"
                changed = True
        else:
            changed, instance.alive = instance.alive != ok, ok
            if not ok:
                instance.restart_reason = "failed liveness probe"
                changed = True
        return changed

    def _unhealthy(self, kind: str, target: ProbeTarget, output: str) -> None:
        if self._recorder is not None:
            self._recorder.warning(target.pod, "Unhealthy", f"{kind} probe failed: {output}",
                                  field_path=f"spec.containers{{{target.container.name}}}")
