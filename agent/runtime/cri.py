"""The container runtime over the CRI: containerd (or any CRI server) via gRPC.

``CRIRuntime`` translates the ``ContainerRuntime`` contract (agent.runtime.base)
into runtime.v1 calls on ``unix://SOCKET``, the way the kubelet's
kuberuntime manager does, and translates the answers and errors back. It keeps
no state of its own: everything it reports comes from the runtime, so an agent
restarted after a crash sees what is really there.

How the contract maps onto the CRI, and where containerd decides:

- A sandbox is ``RunPodSandbox`` (network namespace, CNI IP, the pause
  container named by containerd's ``sandbox_image`` setting); its IP comes from
  ``PodSandboxStatus``. ``host_network`` is the NODE network namespace mode.
- Containers get the kubelet's cgroup translation: CFS period 100 ms and a
  quota of ``limit * period / 1000``; CPU shares from the request as
  ``MilliCPUToShares`` (at least 2); memory limit in bytes.
- ``stop_container`` is ``StopContainer``: containerd sends the image's
  STOPSIGNAL (SIGTERM by default), waits, then SIGKILLs. The CRI timeout is
  whole seconds, so a fractional timeout is rounded up.
- Reasons are containerd's: "Completed", "Error", "OOMKilled", and
  "StartError" (exit code 128) for a container whose process could not start.
  "OOMKilled" comes from a cgroup event that may arrive just after the exit,
  so a status read at once can still say "Error", as with the kubelet.
- containerd stamps ``started_at`` when StartContainer returns, which can be
  after a quick process already exited; ``finished_at`` is reported no
  earlier than ``started_at``.
- NOT_FOUND on stop or remove means it is already gone, which the contract
  says is not an error.
- The CRI reports a container's image by its normalized name
  (``docker.io/library/busybox:1.36`` for ``busybox:1.36``). So that every
  runtime reports the image as the spec named it, the requested name travels
  in a private annotation, removed again from the annotations we return.
- ``exec_stream`` (``StreamingExec``) is CRI's ``Exec``: a URL on the
  runtime's streaming server, spoken to over WebSocket
  (agent.runtime.cri_exec; without a tty, ending stdin ends the connection
  on containerd 1.6).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Awaitable, TypeVar, overload

import grpc

from agent.runtime.base import (
    CREATED,
    EXITED,
    RUNNING,
    UNKNOWN,
    ContainerCreateError,
    ContainerSpec,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    ExecSession,
    ImagePullError,
    RuntimeError_,
    RuntimeInfo,
    SandboxSpec,
    SandboxStatus,
)
from agent.runtime.cri_exec import WebSocketExecSession
from protos.cri.runtime.v1 import api_pb2 as cri
from protos.cri.runtime.v1 import api_pb2_grpc as cri_grpc

CPU_PERIOD_US = 100_000  # the kubelet's CFS period
MIN_CPU_SHARES = 2
MIN_CPU_QUOTA_US = 1_000  # the kernel refuses quotas below 1 ms
CALL_TIMEOUT = 120.0  # seconds; RunPodSandbox with CNI can take a while under load
PULL_TIMEOUT = 600.0
CONTAINER_STATES = {
    cri.CONTAINER_CREATED: CREATED,
    cri.CONTAINER_RUNNING: RUNNING,
    cri.CONTAINER_EXITED: EXITED,
    cri.CONTAINER_UNKNOWN: UNKNOWN,
}
# Carries ContainerSpec.image through the runtime (see the module docstring).
ANNOTATION_REQUESTED_IMAGE = "io.sampan.cri.requested-image"
PROTOCOLS = {"TCP": cri.TCP, "UDP": cri.UDP, "SCTP": cri.SCTP}

T = TypeVar("T")


def cpu_shares(request_millis: int) -> int:
    """The kubelet's MilliCPUToShares; 0 (no request) leaves the runtime default."""
    if request_millis <= 0:
        return 0
    return max(MIN_CPU_SHARES, request_millis * 1024 // 1000)


def cpu_quota(limit_millis: int) -> int:
    """The kubelet's MilliCPUToQuota for a 100 ms period; 0 means no limit."""
    if limit_millis <= 0:
        return 0
    return max(MIN_CPU_QUOTA_US, limit_millis * CPU_PERIOD_US // 1000)


# How long after a container exits its status is still re-read (OOMKilled comes late).
EXIT_SETTLE_SECONDS = 3.0


class CRIRuntime:
    """A ``ContainerRuntime`` backed by a CRI server such as containerd."""

    def __init__(self, socket_path: str, *, call_timeout: float = CALL_TIMEOUT) -> None:
        self.socket_path = socket_path
        self._call_timeout = call_timeout
        self._channel: grpc.aio.Channel | None = None
        self._runtime_stub: cri_grpc.RuntimeServiceStub | None = None
        self._image_stub: cri_grpc.ImageServiceStub | None = None
        # The agent relists every second: statuses are asked for only when the
        # cheap listing shows something new or changed (see list_containers).
        self._container_statuses: dict[str, tuple[int, float, ContainerStatus]] = {}
        self._sandbox_statuses: dict[str, tuple[int, SandboxStatus]] = {}

    def _connect(self) -> grpc.aio.Channel:
        # Made on first use: a grpc.aio channel belongs to the loop it is made in.
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"unix://{self.socket_path}")
            self._runtime_stub = cri_grpc.RuntimeServiceStub(self._channel)
            self._image_stub = cri_grpc.ImageServiceStub(self._channel)
        return self._channel

    @property
    def _runtime(self) -> cri_grpc.RuntimeServiceStub:
        self._connect()
        return self._runtime_stub

    @property
    def _images(self) -> cri_grpc.ImageServiceStub:
        self._connect()
        return self._image_stub

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            self._runtime_stub = self._image_stub = None
            await channel.close()

    async def info(self) -> RuntimeInfo:
        version = await _call("query the runtime version", self._runtime.Version(
            cri.VersionRequest(version="v1"), timeout=self._call_timeout))
        return RuntimeInfo(
            name=version.runtime_name,
            version=f"{version.runtime_name}://{version.runtime_version}",
            isolated=True,
        )

    # ---- images ----------------------------------------------------------------------------------

    async def image_ref(self, image: str) -> str | None:
        try:
            response = await self._images.ImageStatus(
                cri.ImageStatusRequest(image=cri.ImageSpec(image=image)), timeout=self._call_timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None  # a name that cannot even be parsed names no local image
            raise _runtime_error(f"get the status of image {image!r}", error) from None
        return response.image.id or None

    async def pull_image(self, image: str) -> str:
        try:
            response = await self._images.PullImage(
                cri.PullImageRequest(image=cri.ImageSpec(image=image)), timeout=PULL_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            raise ImagePullError(f"cannot pull image {image!r}: {_details(error)}") from None
        return response.image_ref

    # ---- sandboxes -------------------------------------------------------------------------------

    async def run_sandbox(self, spec: SandboxSpec) -> SandboxStatus:
        response = await _call(f"run the sandbox of pod {spec.namespace}/{spec.pod_name}", self._runtime.RunPodSandbox(
            cri.RunPodSandboxRequest(config=sandbox_config(spec)), timeout=self._call_timeout))
        status = await self._sandbox_status(response.pod_sandbox_id)
        if status is None:
            raise RuntimeError_(f"sandbox {response.pod_sandbox_id} vanished right after it was created")
        return status

    async def stop_sandbox(self, sandbox_id: str) -> None:
        await _call(f"stop sandbox {sandbox_id}", self._runtime.StopPodSandbox(
            cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=self._call_timeout), gone_ok=True)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        # containerd stops a sandbox still running, and removes its containers.
        await _call(f"remove sandbox {sandbox_id}", self._runtime.RemovePodSandbox(
            cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=self._call_timeout), gone_ok=True)

    async def list_sandboxes(self) -> list[SandboxStatus]:
        listing = await _call("list sandboxes", self._runtime.ListPodSandbox(
            cri.ListPodSandboxRequest(), timeout=self._call_timeout))
        # Only PodSandboxStatus carries the IP: ask for it when a sandbox is new
        # or its state changed, and reuse the last answer otherwise.
        known = self._sandbox_statuses
        fresh = [item for item in listing.items if known.get(item.id, (None,))[0] != item.state]
        for item, status in zip(fresh, await asyncio.gather(*(self._sandbox_status(i.id) for i in fresh))):
            if status is not None:
                known[item.id] = (item.state, status)
        listed = {item.id for item in listing.items}
        for gone in known.keys() - listed:
            del known[gone]
        return [known[item.id][1] for item in listing.items if item.id in known]

    async def _sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        """The sandbox's status, or None if it is gone."""
        response = await _call(f"get the status of sandbox {sandbox_id}", self._runtime.PodSandboxStatus(
            cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id), timeout=self._call_timeout), gone_ok=True)
        if response is None:
            return None
        status = response.status
        return SandboxStatus(
            id=status.id,
            pod_uid=status.metadata.uid,
            pod_name=status.metadata.name,
            namespace=status.metadata.namespace,
            attempt=status.metadata.attempt,
            ready=status.state == cri.SANDBOX_READY,
            ip=status.network.ip,
            created_at=_seconds(status.created_at),
            labels=dict(status.labels),
            annotations=dict(status.annotations),
        )

    # ---- containers ------------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, spec: ContainerSpec, sandbox: SandboxSpec) -> str:
        request = cri.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=container_config(spec, sandbox), sandbox_config=sandbox_config(sandbox))
        try:
            response = await self._runtime.CreateContainer(request, timeout=self._call_timeout)
        except grpc.aio.AioRpcError as error:
            raise ContainerCreateError(f"cannot create container {spec.name!r}: {_details(error)}") from None
        return response.container_id

    async def start_container(self, container_id: str) -> None:
        try:
            await self._runtime.StartContainer(
                cri.StartContainerRequest(container_id=container_id), timeout=self._call_timeout)
        except grpc.aio.AioRpcError as error:
            # containerd leaves the container EXITED with reason StartError, code 128.
            raise ContainerCreateError(f"cannot start container {container_id}: {_details(error)}") from None

    async def stop_container(self, container_id: str, *, timeout: float) -> None:
        grace = max(0, math.ceil(timeout))  # the CRI counts whole seconds
        await _call(f"stop container {container_id}", self._runtime.StopContainer(
            cri.StopContainerRequest(container_id=container_id, timeout=grace),
            timeout=grace + self._call_timeout), gone_ok=True)

    async def remove_container(self, container_id: str) -> None:
        # containerd kills a running container itself, but refuses one caught
        # exiting on its own ("container is still running, to stop first"):
        # stop it at once, then remove.
        try:
            await _call(f"remove container {container_id}", self._runtime.RemoveContainer(
                cri.RemoveContainerRequest(container_id=container_id), timeout=self._call_timeout), gone_ok=True)
        except RuntimeError_ as err:
            if "still running" not in str(err):
                raise
            await self.stop_container(container_id, timeout=0)
            await _call(f"remove container {container_id}", self._runtime.RemoveContainer(
                cri.RemoveContainerRequest(container_id=container_id), timeout=self._call_timeout), gone_ok=True)

    async def list_containers(self) -> list[ContainerStatus]:
        listing = await _call("list containers", self._runtime.ListContainers(
            cri.ListContainersRequest(), timeout=self._call_timeout))
        # Exit codes, times and reasons are only in ContainerStatus; the sandbox
        # id only in the listing. Ask for a status when a container is new or
        # its state changed; an exited one is asked again for a few seconds,
        # because containerd reports OOMKilled a moment after the exit.
        known = self._container_statuses
        now = time.monotonic()

        def stale(item) -> bool:
            cached = known.get(item.id)
            if cached is None or cached[0] != item.state:
                return True
            return item.state == cri.CONTAINER_EXITED and now - cached[1] < EXIT_SETTLE_SECONDS

        fresh = [item for item in listing.containers if stale(item)]
        answers = await asyncio.gather(*(
            self._container_status(item.id, sandbox_id=item.pod_sandbox_id) for item in fresh))
        for item, status in zip(fresh, answers):
            if status is not None:
                first_seen = known[item.id][1] if item.id in known and known[item.id][0] == item.state else now
                known[item.id] = (item.state, first_seen, status)
        listed = {item.id for item in listing.containers}
        for gone in known.keys() - listed:
            del known[gone]
        return [known[item.id][2] for item in listing.containers if item.id in known]

    async def container_status(self, container_id: str) -> ContainerStatus:
        listing = await _call(f"find container {container_id}", self._runtime.ListContainers(
            cri.ListContainersRequest(filter=cri.ContainerFilter(id=container_id)), timeout=self._call_timeout))
        status = None
        if listing.containers:
            status = await self._container_status(container_id, sandbox_id=listing.containers[0].pod_sandbox_id)
        if status is None:
            raise RuntimeError_(f"container {container_id} not found")
        return status

    async def _container_status(self, container_id: str, *, sandbox_id: str) -> ContainerStatus | None:
        """The container's status, or None if it is gone."""
        response = await _call(f"get the status of container {container_id}", self._runtime.ContainerStatus(
            cri.ContainerStatusRequest(container_id=container_id), timeout=self._call_timeout), gone_ok=True)
        return None if response is None else _container_status_from(response.status, sandbox_id=sandbox_id)

    async def exec_sync(self, container_id: str, command: tuple[str, ...], *, timeout: float) -> ExecResult:
        seconds = max(1, math.ceil(timeout))  # whole seconds; 0 would mean no timeout at all
        # A timeout comes back as DEADLINE_EXCEEDED, a missing binary as UNKNOWN: both errors.
        response = await _call(f"exec {list(command)} in container {container_id}", self._runtime.ExecSync(
            cri.ExecSyncRequest(container_id=container_id, cmd=list(command), timeout=seconds),
            timeout=seconds + self._call_timeout))
        return ExecResult(exit_code=response.exit_code, stdout=response.stdout, stderr=response.stderr)

    async def exec_stream(self, container_id: str, command: tuple[str, ...], *,
                          stdin: bool, tty: bool) -> ExecSession:
        # With a tty, stderr is the terminal too: the CRI forbids asking for it.
        response = await _call(f"exec {list(command)} in container {container_id}", self._runtime.Exec(
            cri.ExecRequest(container_id=container_id, cmd=list(command), tty=tty, stdin=stdin, stdout=True,
                            stderr=not tty), timeout=self._call_timeout))
        return await WebSocketExecSession.connect(response.url, tty=tty)

    async def container_stats(self) -> list[ContainerStats]:
        response = await _call("list container stats", self._runtime.ListContainerStats(
            cri.ListContainerStatsRequest(), timeout=self._call_timeout))
        return [
            ContainerStats(
                container_id=stats.attributes.id,
                timestamp=_seconds(stats.cpu.timestamp or stats.memory.timestamp),
                cpu_usage_seconds=stats.cpu.usage_core_nano_seconds.value / 1e9,
                memory_working_set_bytes=stats.memory.working_set_bytes.value,
            )
            for stats in response.stats
            if stats.cpu.timestamp or stats.memory.timestamp  # containers without a task have none
        ]


# ---- translation (pure) ----------------------------------------------------------------------------


def sandbox_config(spec: SandboxSpec) -> cri.PodSandboxConfig:
    """The PodSandboxConfig for a sandbox, as the kubelet would build it."""
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(
            name=spec.pod_name, uid=spec.pod_uid, namespace=spec.namespace, attempt=spec.attempt),
        # With the node's network the node's hostname is kept, as in Kubernetes.
        hostname="" if spec.host_network else (spec.hostname or spec.pod_name)[:63],
        log_directory=spec.log_directory,
        dns_config=cri.DNSConfig(
            servers=list(spec.dns.servers), searches=list(spec.dns.searches), options=list(spec.dns.options))
        if spec.dns.servers or spec.dns.searches or spec.dns.options else None,
        port_mappings=[
            cri.PortMapping(protocol=PROTOCOLS.get(port.protocol.upper(), cri.TCP), container_port=port.container_port,
                            host_port=port.host_port, host_ip=port.host_ip)
            for port in spec.port_mappings
        ],
        labels=dict(spec.labels),
        annotations=dict(spec.annotations),
        linux=cri.LinuxPodSandboxConfig(
            cgroup_parent=spec.cgroup_parent,
            security_context=cri.LinuxSandboxSecurityContext(namespace_options=_namespaces(spec)),
        ),
    )


def container_config(spec: ContainerSpec, sandbox: SandboxSpec) -> cri.ContainerConfig:
    """The ContainerConfig for a container, with the kubelet's resource translation."""
    resources = spec.resources
    quota = cpu_quota(resources.cpu_limit_millis)
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=spec.name, attempt=spec.attempt),
        image=cri.ImageSpec(image=spec.image),
        command=list(spec.command),
        args=list(spec.args),
        working_dir=spec.working_dir,
        envs=[cri.KeyValue(key=key, value=value) for key, value in spec.env.items()],
        mounts=[
            cri.Mount(container_path=mount.container_path, host_path=mount.host_path, readonly=mount.readonly)
            for mount in spec.mounts
        ],
        labels=dict(spec.labels),
        annotations={**spec.annotations, ANNOTATION_REQUESTED_IMAGE: spec.image},
        log_path=spec.log_path,
        stdin=spec.stdin,
        tty=spec.tty,
        linux=cri.LinuxContainerConfig(
            resources=cri.LinuxContainerResources(
                cpu_period=CPU_PERIOD_US if quota else 0,
                cpu_quota=quota,
                cpu_shares=cpu_shares(resources.cpu_request_millis),
                memory_limit_in_bytes=resources.memory_limit_bytes,
            ),
            security_context=cri.LinuxContainerSecurityContext(namespace_options=_namespaces(sandbox)),
        ),
    )


def _namespaces(sandbox: SandboxSpec) -> cri.NamespaceOption:
    # As the kubelet: the pod's (or node's) network and IPC, a PID namespace per container.
    return cri.NamespaceOption(
        network=cri.NODE if sandbox.host_network else cri.POD,
        pid=cri.CONTAINER,
        ipc=cri.POD,
    )


def _container_status_from(status: cri.ContainerStatus, *, sandbox_id: str) -> ContainerStatus:
    annotations = dict(status.annotations)
    image = annotations.pop(ANNOTATION_REQUESTED_IMAGE, "") or status.image.image
    return ContainerStatus(
        id=status.id,
        sandbox_id=sandbox_id,
        name=status.metadata.name,
        attempt=status.metadata.attempt,
        image=image,
        image_ref=status.image_ref,
        state=CONTAINER_STATES.get(status.state, UNKNOWN),
        created_at=_seconds(status.created_at),
        started_at=_seconds(status.started_at),
        finished_at=_seconds(max(status.finished_at, status.started_at)) if status.finished_at else 0.0,
        exit_code=status.exit_code,
        reason=status.reason,
        message=status.message,
        log_path=status.log_path,
        labels=dict(status.labels),
        annotations=annotations,
    )


@overload
async def _call(what: str, call: Awaitable[T]) -> T: ...


@overload
async def _call(what: str, call: Awaitable[T], *, gone_ok: bool) -> T | None: ...


async def _call(what: str, call: Awaitable[T], *, gone_ok: bool = False) -> T | None:
    """Await a CRI call, turning gRPC errors into RuntimeError_; with gone_ok,
    NOT_FOUND (the object is gone) gives None instead."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        if gone_ok and error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise _runtime_error(what, error) from None


def _seconds(nanoseconds: int) -> float:
    return nanoseconds / 1e9


def _details(error: grpc.aio.AioRpcError) -> str:
    return error.details() or error.code().name


def _runtime_error(what: str, error: grpc.aio.AioRpcError) -> RuntimeError_:
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        return RuntimeError_(f"cannot {what}: the container runtime is unavailable ({_details(error)})")
    return RuntimeError_(f"cannot {what}: {_details(error)} ({error.code().name})")
