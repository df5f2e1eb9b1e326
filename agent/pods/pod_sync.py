"""One pod's sync: make the runtime match the pod's spec, then report status.

``PodSyncer.sync_pod`` is level-triggered (kubelet's ``SyncPod``): it reads
the runtime state (never older than the sync's start), decides, acts, and
computes the status from what it finds afterwards. It runs only inside the
pod's worker, so it never races with itself. In order:

1. volumes are set up (or refreshed: configMap/secret content follows its source);
2. a ready sandbox exists, else one is created (its old containers stopped);
3. init containers run one at a time, in order, each to success; a failed one
   is restarted per restartPolicy (with Never, the pod has failed);
4. app containers are started; an exited one is restarted per restartPolicy
   with the crash back-off (CrashLoopBackOff while it waits); a running one
   whose liveness or startup probe failed, or whose spec changed, is killed
   and restarted;
5. the status is computed and handed to the status manager; a pod that has
   finished (Succeeded/Failed) gets its sandbox stopped and nothing else: its
   containers stay until the pod is deleted.

``terminate`` and ``remove`` end a pod: preStop hooks, stop with the grace
period, stop the sandboxes; then remove containers, sandboxes and the pod's
directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Callable

from agent.pods import runtime_specs
from agent.pods.backoff import BackoffTracker, format_duration
from agent.pods.dns import ClusterDNS, pod_dns
from control.recorder import EventRecorder
from agent.pods.probes import ProbeManager, ProbeTarget
from agent.pods.relister import PodRelister, RuntimeSnapshot
from agent.pods.starter import ContainerStarter, StartContext, field_path, run_handler
from agent.pods.status import (
    TERMINAL_PHASES,
    OWN_CONDITIONS,
    PodRuntimeState,
    Waiting,
    compute_pod_status,
    instances_of,
    is_sidecar,
)
from agent.pods.status_manager import StatusManager
from agent.pods.volumes import VolumeError, VolumeManager
from agent.runtime.base import (
    CREATED,
    EXITED,
    RUNNING,
    ContainerRuntime,
    ContainerStatus,
    DNSConfig,
    RuntimeError_,
    SandboxStatus,
)
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)

# kubelet's minimumGracePeriodInSeconds: even a zero grace period gets this long after SIGTERM.
MIN_GRACE_SECONDS = 2.0
RETRY_SECONDS = 1.0


def current_sandbox(sandboxes) -> SandboxStatus | None:
    """The newest sandbox (ready or not)."""
    ordered = sorted(sandboxes, key=lambda s: (s.attempt, s.created_at))
    return ordered[-1] if ordered else None


class PodSyncer:
    def __init__(
        self, *, runtime: ContainerRuntime, relister: PodRelister, volumes: VolumeManager,
        starter: ContainerStarter, probes: ProbeManager, events: EventRecorder, statuses: StatusManager,
        crash_backoff: BackoffTracker, host_ip: str, host_dns: DNSConfig, schedule: Callable[[str, float], None],
        cluster_dns: ClusterDNS = runtime_specs.NO_CLUSTER_DNS,
    ) -> None:
        self._runtime = runtime
        self.runtime_name = ""
        self._relister = relister
        self._volumes = volumes
        self._starter = starter
        self._probes = probes
        self._events = events
        self._statuses = statuses
        self._crash_backoff = crash_backoff
        self._host_ip = host_ip
        self._host_dns = host_dns
        self._cluster_dns = cluster_dns
        self._schedule = schedule
        self._waiting: dict[str, dict[str, Waiting]] = {}
        self._forced_restarts: set[str] = set()  # instances killed to be restarted whatever the policy

    # ------------------------------------------------------------ syncing

    def is_finished(self, pod: core_pb2.Pod) -> bool:
        latest = self._statuses.latest(pod.metadata.uid)
        return (latest or pod.status).phase in TERMINAL_PHASES

    async def sync_pod(self, pod: core_pb2.Pod) -> core_pb2.PodStatus:
        uid = pod.metadata.uid
        snapshot = await self._relister.newer_than(time.time())
        if not self.is_finished(pod):
            if await self._converge(pod, snapshot):
                snapshot = await self._relister.newer_than(time.time())
        status = self.update_status(pod, snapshot)
        if status.phase in TERMINAL_PHASES:
            self._probes.retain(set(), pod_uid=uid)
            for sandbox in snapshot.sandboxes_of(uid):
                if sandbox.ready:
                    await self._runtime.stop_sandbox(sandbox.id)
        return status

    async def _converge(self, pod: core_pb2.Pod, snapshot: RuntimeSnapshot) -> bool:
        """Act towards the spec; True when something was done to the runtime."""
        uid = pod.metadata.uid
        waiting = self._waiting.setdefault(uid, {})
        try:
            volume_paths = await self._volumes.setup(pod, host_ip=self._host_ip, pod_ip="")
        except VolumeError as err:
            self._events.warning(pod, "FailedMount", str(err))
            self._schedule(uid, RETRY_SECONDS)
            return False
        sandbox = current_sandbox(snapshot.sandboxes_of(uid))
        acted = False
        if sandbox is None or not sandbox.ready:
            if pod.spec.restart_policy == "Never" and snapshot.containers_of(uid):
                return False  # it ran once and its sandbox is gone: it will not run again
            sandbox = await self._new_sandbox(pod, snapshot, previous=sandbox)
            if sandbox is None:
                return True
            acted = True
        pod_ip = self._host_ip if pod.spec.host_network else sandbox.ip
        ctx = StartContext(
            pod=pod, sandbox=sandbox, volume_paths=volume_paths, pod_ip=pod_ip, waiting=waiting,
            sandbox_spec=runtime_specs.sandbox_spec(pod, attempt=sandbox.attempt, host_dns=self._host_dns,
                                                    cluster_dns=self._cluster_dns,
                                                    log_directory=self._volumes.log_directory(pod)))
        in_sandbox = [c for c in snapshot.containers_of(uid) if c.sandbox_id == sandbox.id]
        initialized, init_acted = await self._sync_init_containers(ctx, in_sandbox, snapshot)
        acted |= init_acted
        if initialized:
            acted |= await self._sync_app_containers(ctx, in_sandbox, snapshot)
        running = {c.id for c in in_sandbox if c.state == RUNNING}
        self._probes.retain(running, pod_uid=uid)
        return acted

    async def _new_sandbox(self, pod: core_pb2.Pod, snapshot: RuntimeSnapshot,
                           previous: SandboxStatus | None) -> SandboxStatus | None:
        uid = pod.metadata.uid
        if previous is not None:
            # A new sandbox means a new pod instance: what still runs in the old one goes.
            self._events.normal(pod, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            await self.terminate(pod, snapshot, grace=float(runtime_specs.grace_period(pod)))
        log_directory = self._volumes.log_directory(pod)
        os.makedirs(log_directory, exist_ok=True)
        attempt = previous.attempt + 1 if previous is not None else 0
        spec = runtime_specs.sandbox_spec(pod, attempt=attempt, log_directory=log_directory, host_dns=self._host_dns,
                                          cluster_dns=self._cluster_dns)
        for reason, message in pod_dns(pod, host=self._host_dns, cluster=self._cluster_dns).warnings:
            self._events.warning(pod, reason, message)
        try:
            return await self._runtime.run_sandbox(spec)
        except RuntimeError_ as err:
            self._events.warning(pod, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {err}")
            self._schedule(uid, RETRY_SECONDS)
            return None

    async def _sync_init_containers(self, ctx: StartContext, in_sandbox: list[ContainerStatus],
                                    snapshot: RuntimeSnapshot) -> tuple[bool, bool]:
        """(whether initialization is complete, whether anything was done)."""
        for container in ctx.pod.spec.init_containers:
            found = instances_of(in_sandbox, container.name)
            latest = found[-1] if found else None
            if latest is None:
                await self._start(ctx, container, runtime_specs.INIT, snapshot)
                return False, True
            if latest.state == CREATED:
                await self._start_created(latest)
                return False, True
            if is_sidecar(container):
                if latest.state == EXITED:
                    await self._restart(ctx, container, latest, runtime_specs.INIT, snapshot)
                    return False, True
                self._ensure_probes(ctx, container, latest)
                started = self._probes.results().get(latest.id)
                if container.HasField("startup_probe") and not (started and started.started):
                    return False, False
                continue
            if latest.state == RUNNING:
                return False, False
            if latest.state == EXITED and latest.exit_code == 0:
                continue
            if ctx.pod.spec.restart_policy == "Never":
                return False, False
            await self._restart(ctx, container, latest, runtime_specs.INIT, snapshot)
            return False, True
        return True, False

    async def _sync_app_containers(self, ctx: StartContext, in_sandbox: list[ContainerStatus],
                                   snapshot: RuntimeSnapshot) -> bool:
        pod, acted = ctx.pod, False
        policy = pod.spec.restart_policy or "Always"
        for container in pod.spec.containers:
            found = instances_of(in_sandbox, container.name)
            latest = found[-1] if found else None
            if latest is None:
                if policy == "Never" and instances_of(snapshot.containers_of(pod.metadata.uid), container.name):
                    continue  # it ran in an earlier sandbox
                await self._start(ctx, container, runtime_specs.APP, snapshot)
                acted = True
            elif latest.state == RUNNING:
                acted |= await self._check_running(ctx, container, latest, policy)
            elif latest.state == CREATED:
                await self._start_created(latest)
                acted = True
            elif latest.state == EXITED and self._should_restart(policy, latest):
                await self._restart(ctx, container, latest, runtime_specs.APP, snapshot)
                acted = True
        return acted

    async def _check_running(self, ctx: StartContext, container: core_pb2.Container,
                             instance: ContainerStatus, policy: str) -> bool:
        """Kill a running instance that must be restarted; True if it was."""
        reason = self._probes.restart_reason(instance.id)
        spec_hash = instance.labels.get(runtime_specs.LABEL_CONTAINER_HASH)
        changed = spec_hash is not None and spec_hash != runtime_specs.container_hash(container)
        if not reason and not changed:
            self._ensure_probes(ctx, container, instance)
            return False
        message = f"Container {container.name} {reason or 'definition changed'}, will be restarted"
        self._events.normal(ctx.pod, "Killing", message,
                            field_path=field_path(container, runtime_specs.APP))
        if policy != "Never" or changed:
            self._forced_restarts.add(instance.id)
        grace = float(runtime_specs.grace_period(ctx.pod))
        if reason and container.liveness_probe.HasField("termination_grace_period_seconds"):
            grace = float(container.liveness_probe.termination_grace_period_seconds)
        await self.kill_container(ctx.pod, container, instance, grace=grace, host=ctx.pod_ip, announce=False)
        self._schedule(ctx.pod.metadata.uid, 0)
        return True

    def _should_restart(self, policy: str, instance: ContainerStatus) -> bool:
        if instance.id in self._forced_restarts or policy == "Always":
            return True
        return policy == "OnFailure" and instance.exit_code != 0

    async def _start(self, ctx: StartContext, container: core_pb2.Container, kind: str,
                     snapshot: RuntimeSnapshot) -> None:
        attempt = max((c.attempt for c in snapshot.containers_of(ctx.pod.metadata.uid)
                       if c.name == container.name), default=-1) + 1
        await self._starter.start(ctx, container, kind=kind, attempt=attempt)

    async def _start_created(self, instance: ContainerStatus) -> None:
        """An instance created but never started (the agent died in between): start it, or drop it."""
        try:
            await self._runtime.start_container(instance.id)
        except RuntimeError_ as err:
            log.warning("starting leftover container %s failed, removing it: %s", instance.id, err)
            await self._runtime.remove_container(instance.id)

    async def _restart(self, ctx: StartContext, container: core_pb2.Container, latest: ContainerStatus,
                       kind: str, snapshot: RuntimeSnapshot) -> None:
        pod, name = ctx.pod, container.name
        uid, now = pod.metadata.uid, time.time()
        key = (uid, name)
        remaining = self._crash_backoff.remaining(key, since=latest.finished_at or now, now=now)
        if remaining > 0:
            delay = format_duration(self._crash_backoff.delay(key))
            who = runtime_specs.describe_pod(pod)
            ctx.waiting[name] = Waiting("CrashLoopBackOff", f"back-off {delay} restarting failed container={name} pod={who}")
            self._events.warning(pod, "BackOff", f"Back-off restarting failed container {name} in pod {who}",
                                field_path=field_path(container, kind))
            self._schedule(uid, remaining)
            return
        self._crash_backoff.next(key, now=now)
        self._forced_restarts.discard(latest.id)
        # Keep the instance that just ended (the status's lastState, `logs --previous`); older ones go.
        for old in instances_of(snapshot.containers_of(uid), name):
            if old.id != latest.id and old.state == EXITED:
                await self._runtime.remove_container(old.id)
        await self._start(ctx, container, kind, snapshot)

    def _ensure_probes(self, ctx: StartContext, container: core_pb2.Container, instance: ContainerStatus) -> None:
        if not any(container.HasField(f) for f in ("liveness_probe", "readiness_probe", "startup_probe")):
            return
        self._probes.ensure(ProbeTarget(pod=ctx.pod, container=container, container_id=instance.id,
                                        started_at=instance.started_at or instance.created_at, host=ctx.pod_ip))

    # ------------------------------------------------------------- status

    def update_status(self, pod: core_pb2.Pod, snapshot: RuntimeSnapshot) -> core_pb2.PodStatus:
        uid = pod.metadata.uid
        view = core_pb2.Pod()
        view.CopyFrom(pod)
        latest = self._statuses.latest(uid)
        if latest is not None:
            # Ours, newer than the API's copy; conditions others own stay as the API has them.
            view.status.CopyFrom(latest)
            del view.status.conditions[:]
            view.status.conditions.extend(c for c in latest.conditions if c.type in OWN_CONDITIONS)
            view.status.conditions.extend(c for c in pod.status.conditions if c.type not in OWN_CONDITIONS)
        state = PodRuntimeState(
            host_ip=self._host_ip, runtime_name=self.runtime_name,
            sandbox=current_sandbox(snapshot.sandboxes_of(uid)), containers=snapshot.containers_of(uid),
            waiting=dict(self._waiting.get(uid, {})))
        status = compute_pod_status(view, state, self._probes.results(), time.time())
        self._statuses.set(uid, status)
        return status

    # -------------------------------------------------------- termination

    async def kill_container(self, pod: core_pb2.Pod | None, container: core_pb2.Container | None,
                             instance: ContainerStatus, *, grace: float, host: str, announce: bool = True) -> None:
        """Run the preStop hook, then stop the instance within what is left of the grace period."""
        self._probes.stop_container(instance.id)
        if instance.state not in (RUNNING, CREATED):
            return
        began = time.monotonic()
        if pod is not None and announce:
            self._events.normal(pod, "Killing", f"Stopping container {instance.name}",
                                field_path=f"spec.containers{{{instance.name}}}")
        if (pod is not None and container is not None and instance.state == RUNNING
                and container.lifecycle.HasField("pre_stop")):
            result = await run_handler(self._runtime, container.lifecycle.pre_stop, container=container,
                                       container_id=instance.id, host=host, timeout=grace)
            if not result.ok:
                self._events.warning(pod, "FailedPreStopHook", f"PreStopHook failed: {result.output}",
                                    field_path=f"spec.containers{{{instance.name}}}")
        remaining = max(grace - (time.monotonic() - began), MIN_GRACE_SECONDS)
        await self._runtime.stop_container(instance.id, timeout=remaining)

    async def terminate(self, pod: core_pb2.Pod | None, snapshot: RuntimeSnapshot, *, grace: float,
                        uid: str = "") -> None:
        """Stop every container of the pod (preStop first, in parallel) and its sandboxes."""
        uid = pod.metadata.uid if pod is not None else uid
        specs = {c.name: c for c in (*pod.spec.init_containers, *pod.spec.containers)} if pod is not None else {}
        sandbox = current_sandbox(snapshot.sandboxes_of(uid))
        host = self._host_ip if pod is not None and pod.spec.host_network else (sandbox.ip if sandbox else "")
        await asyncio.gather(*(
            self.kill_container(pod, specs.get(c.name), c, grace=grace, host=host)
            for c in snapshot.containers_of(uid) if c.state in (RUNNING, CREATED)))
        for each in snapshot.sandboxes_of(uid):
            if each.ready:
                await self._runtime.stop_sandbox(each.id)

    async def remove(self, uid: str) -> None:
        """Remove what is left of a terminated pod: containers, sandboxes, its directory."""
        snapshot = await self._relister.newer_than(time.time())
        for container in snapshot.containers_of(uid):
            self._forced_restarts.discard(container.id)
            await self._runtime.remove_container(container.id)
        for sandbox in snapshot.sandboxes_of(uid):
            await self._runtime.remove_sandbox(sandbox.id)
        self._volumes.cleanup(uid)
        self.forget(uid)

    def forget(self, uid: str) -> None:
        self._waiting.pop(uid, None)
        self._crash_backoff.forget_where(lambda key: key[0] == uid)
        self._starter.forget_pod(uid)
        self._probes.retain(set(), pod_uid=uid)
