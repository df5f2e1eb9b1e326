"""Starting one container: image, configuration, create, start, postStart.

``ContainerStarter.start`` walks kubelet's ``startContainer`` steps and, when
a step fails, records why in the pod's ``waiting`` map (the reason the status
shows), writes the event a user would look for, and asks for a later sync:

- image, per imagePullPolicy: ErrImageNeverPull, or ErrImagePull and then
  ImagePullBackOff while the pull backs off;
- environment and mounts: CreateContainerConfigError (retried on a short tick
  and whenever a ConfigMap or Secret the pod uses changes); on a runtime that
  applies no mounts (the process runtime), the container is told where its
  service account files really are (service_account.TOKEN_DIR_ENV);
- create: CreateContainerError; start: RunContainerError (both back off);
- a failing postStart hook kills the container (FailedPostStartHook).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from agent.pods import runtime_specs
from agent.pods.backoff import BackoffTracker
from agent.pods.env import ConfigSource, ContainerConfigError, expand_all, resolve_env
from control.recorder import EventRecorder
from agent.pods.handlers import ActionResult, named_ports, run_exec, run_http_get
from agent.pods.service_account import token_dir_env
from agent.pods.status import Waiting
from agent.pods.volumes import VolumeError, VolumeManager
from agent.runtime.base import ContainerRuntime, RuntimeError_, SandboxSpec, SandboxStatus
from control.api import errors
from protos.api.v1 import core_pb2

CONFIG_RETRY_SECONDS = 1.0
IMAGE_NEVER_PULL_RETRY_SECONDS = 5.0


def field_path(container: core_pb2.Container, kind: str) -> str:
    """The event's pointer into the pod: spec.containers{app}."""
    section = "initContainers" if kind == runtime_specs.INIT else "containers"
    return f"spec.{section}{{{container.name}}}"


@dataclass(frozen=True)
class StartContext:
    """What a pod sync knows when it starts one of the pod's containers."""

    pod: core_pb2.Pod
    sandbox: SandboxStatus
    sandbox_spec: SandboxSpec
    volume_paths: Mapping[str, str]
    pod_ip: str
    waiting: dict[str, Waiting]  # the pod's, updated in place


async def run_handler(
    runtime: ContainerRuntime, handler: core_pb2.LifecycleHandler, *, container: core_pb2.Container,
    container_id: str, host: str, timeout: float,
) -> ActionResult:
    """A postStart or preStop hook (exec, httpGet or sleep)."""
    if handler.HasField("exec"):
        return await run_exec(runtime, container_id, command=handler.exec.command, timeout=timeout)
    if handler.HasField("http_get"):
        return await run_http_get(handler.http_get, host=host, ports=named_ports(container), timeout=timeout)
    if handler.HasField("sleep"):
        await asyncio.sleep(min(float(handler.sleep.seconds), max(timeout, 0.0)))
    return ActionResult(True)


class ContainerStarter:
    def __init__(
        self, *, runtime: ContainerRuntime, configs: ConfigSource, volumes: VolumeManager, events: EventRecorder,
        crash_backoff: BackoffTracker, image_backoff: BackoffTracker, host_ip: str,
        schedule: Callable[[str, float], None],
    ) -> None:
        self._runtime = runtime
        self._configs = configs
        self._volumes = volumes
        self._events = events
        self._crash_backoff = crash_backoff
        self._image_backoff = image_backoff
        self._host_ip = host_ip
        self._schedule = schedule
        self._not_before: dict[tuple[str, str], float] = {}  # (uid, container) -> epoch seconds
        self._applies_mounts: bool | None = None  # the runtime's isolation, asked once

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._not_before if k[0] == uid]:
            del self._not_before[key]
        self._image_backoff.forget_where(lambda key: key[0] == uid)

    async def start(self, ctx: StartContext, container: core_pb2.Container, *, kind: str, attempt: int) -> str | None:
        """Start the container; its id, or None when it waits (the reason is in ctx.waiting)."""
        pod, name = ctx.pod, container.name
        uid, now = pod.metadata.uid, time.time()
        key = (uid, name)
        where = field_path(container, kind)
        gate = self._not_before.get(key, 0.0)
        if gate > now:
            if ctx.waiting.get(name, Waiting("")).reason in ("ErrImagePull", "ImagePullBackOff"):
                ctx.waiting[name] = Waiting("ImagePullBackOff", f'Back-off pulling image "{container.image}"')
                self._events.normal(pod, "BackOff", f'Back-off pulling image "{container.image}"',
                                    field_path=where)
            self._schedule(uid, gate - now)
            return None
        if not await self._ensure_image(ctx, container, where, key):
            return None
        try:
            env = await resolve_env(pod, container, self._configs, host_ip=self._host_ip, pod_ip=ctx.pod_ip)
            mounts = self._volumes.mounts_for(pod, container, ctx.volume_paths, env)
            if not await self._runtime_applies_mounts():
                env = {**token_dir_env(mounts), **env}  # the container's own setting wins
        except (ContainerConfigError, VolumeError, errors.APIError) as err:
            ctx.waiting[name] = Waiting("CreateContainerConfigError", str(err))
            self._events.warning(pod, "Failed", f"Error: {err}", field_path=where)
            self._schedule(uid, CONFIG_RETRY_SECONDS)
            return None
        spec = runtime_specs.container_spec(
            pod, container, kind=kind, attempt=attempt, command=expand_all(container.command, env),
            args=expand_all(container.args, env), env=env, mounts=mounts)
        os.makedirs(os.path.join(ctx.sandbox_spec.log_directory, name), exist_ok=True)
        try:
            container_id = await self._runtime.create_container(ctx.sandbox.id, spec, ctx.sandbox_spec)
        except RuntimeError_ as err:
            self._failed(ctx, container, where, "CreateContainerError", err, key=key)
            return None
        self._events.normal(pod, "Created", f"Created container {name}", field_path=where)
        try:
            await self._runtime.start_container(container_id)
        except RuntimeError_ as err:
            self._failed(ctx, container, where, "RunContainerError", err, key=key)
            return None
        self._events.normal(pod, "Started", f"Started container {name}", field_path=where)
        ctx.waiting.pop(name, None)
        self._not_before.pop(key, None)
        if container.lifecycle.HasField("post_start"):
            await self._post_start(ctx, container, container_id, where)
        return container_id

    async def _runtime_applies_mounts(self) -> bool:
        if self._applies_mounts is None:
            self._applies_mounts = (await self._runtime.info()).isolated
        return self._applies_mounts

    def _failed(self, ctx: StartContext, container: core_pb2.Container, where: str, reason: str,
                err: Exception, *, key: tuple[str, str]) -> None:
        now = time.time()
        delay = self._crash_backoff.next(key, now=now)
        self._not_before[key] = now + delay
        ctx.waiting[container.name] = Waiting(reason, str(err))
        self._events.warning(ctx.pod, "Failed", f"Error: {err}", field_path=where)
        self._schedule(ctx.pod.metadata.uid, delay)

    async def _ensure_image(self, ctx: StartContext, container: core_pb2.Container, where: str,
                            key: tuple[str, str]) -> bool:
        pod, image = ctx.pod, container.image
        policy = container.image_pull_policy or "IfNotPresent"
        try:
            present = await self._runtime.image_ref(image)
        except RuntimeError_:
            present = None
        if policy == "Never":
            if present is None:
                message = f'Container image "{image}" is not present with pull policy of Never'
                ctx.waiting[container.name] = Waiting("ErrImageNeverPull", message)
                self._events.warning(pod, "ErrImageNeverPull", message, field_path=where)
                self._schedule(pod.metadata.uid, IMAGE_NEVER_PULL_RETRY_SECONDS)
                return False
            return True
        if policy == "IfNotPresent" and present is not None:
            self._events.normal(pod, "Pulled", f'Container image "{image}" already present on machine',
                                field_path=where)
            return True
        self._events.normal(pod, "Pulling", f'Pulling image "{image}"', field_path=where)
        began = time.monotonic()
        try:
            await self._runtime.pull_image(image)
        except RuntimeError_ as err:
            now = time.time()
            delay = self._image_backoff.next(key, now=now)
            self._not_before[key] = now + delay
            ctx.waiting[container.name] = Waiting("ErrImagePull", str(err))
            self._events.warning(pod, "Failed", f'Failed to pull image "{image}": {err}', field_path=where)
            self._events.warning(pod, "Failed", "Error: ErrImagePull", field_path=where)
            # Sync again within the back-off, so the status moves on to ImagePullBackOff as kubelet's does.
            self._schedule(pod.metadata.uid, delay / 2)
            return False
        self._image_backoff.forget(key)
        self._events.normal(pod, "Pulled",
                            f'Successfully pulled image "{image}" in {time.monotonic() - began:.3f}s',
                            field_path=where)
        return True

    async def _post_start(self, ctx: StartContext, container: core_pb2.Container, container_id: str,
                          where: str) -> None:
        grace = float(runtime_specs.grace_period(ctx.pod))
        host = self._host_ip if ctx.pod.spec.host_network else ctx.pod_ip
        result = await run_handler(self._runtime, container.lifecycle.post_start, container=container,
                                   container_id=container_id, host=host, timeout=grace)
        if result.ok:
            return
        self._events.warning(ctx.pod, "FailedPostStartHook",
                            f"PostStartHook failed: {result.output}", field_path=where)
        self._events.normal(ctx.pod, "Killing",
                            f"FailedPostStartHook: stopping container {container.name}", field_path=where)
        await self._runtime.stop_container(container_id, timeout=grace)
