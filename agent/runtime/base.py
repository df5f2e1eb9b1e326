"""The container runtime seam: what the agent needs from a container engine.

Shaped like the CRI (Kubernetes' Container Runtime Interface) that containerd
serves, and like Nomad's task-driver contract: a pod is a *sandbox* (its
network namespace and shared resources) holding *containers*. The agent owns
the lifecycle logic (ordering, restarts, probes, status); a runtime only does
what it is told and reports what exists. Two implementations:

- ``agent.runtime.cri.CRIRuntime``: containerd over the CRI gRPC API
  (runtime.v1): real isolation, a network namespace and a CNI IP per pod.
- ``agent.runtime.process.ProcessRuntime``: each container a local process
  (like Nomad's raw_exec), no isolation, for machines without containerd.

Both pass one harness (tests/agent/runtime/test_runtime_contract.py).

Contract, for every runtime:
- Sandboxes and containers carry the labels given at creation; ``list_*``
  returns them, so an agent restarted after a crash (kill -9) recovers every
  pod it ran from the runtime alone (``RecoverTask`` in Nomad's words).
- Containers write their output to ``SandboxSpec.log_directory /
  ContainerSpec.log_path`` in the CRI log format
  (``<RFC3339Nano time> <stdout|stderr> <F|P> <text>``), so log reading is
  runtime-independent.
- ``stop_container`` sends the image's stop signal (SIGTERM by default), waits
  up to ``timeout`` seconds, then SIGKILLs. It returns once the container has
  exited. Stopping or removing something already gone is not an error.
- Errors are ``RuntimeError_`` subclasses; ``ImagePullError`` for images that
  cannot be had, ``ContainerCreateError`` when a container cannot be created
  or started (bad command, missing binary).
- All methods are coroutines safe to call concurrently from one event loop.

Optional capabilities are separate small protocols (Nomad's driver
capabilities): a runtime has one when it has its methods, and callers check
with ``isinstance`` before using it. ``StreamingExec`` runs a command with
its stdin and output streamed (``sampan exec -i -t``); without it, only
``exec_sync`` is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Mapping, Protocol, runtime_checkable

# Labels every runtime object carries, so the agent can recover its state.
LABEL_POD_UID = "io.sampan.pod.uid"
LABEL_POD_NAME = "io.sampan.pod.name"
LABEL_POD_NAMESPACE = "io.sampan.pod.namespace"
LABEL_CONTAINER_NAME = "io.sampan.container.name"


@dataclass(frozen=True)
class DNSConfig:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int = 0
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class SandboxSpec:
    pod_uid: str
    pod_name: str
    namespace: str
    attempt: int = 0
    hostname: str = ""
    host_network: bool = False
    log_directory: str = ""
    dns: DNSConfig = DNSConfig()
    port_mappings: tuple[PortMapping, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""


@dataclass(frozen=True)
class SandboxStatus:
    id: str
    pod_uid: str
    pod_name: str
    namespace: str
    attempt: int
    ready: bool
    ip: str
    created_at: float
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    readonly: bool = False


@dataclass(frozen=True)
class Resources:
    """cgroup settings; 0 means unlimited / runtime default."""

    cpu_request_millis: int = 0
    cpu_limit_millis: int = 0
    memory_limit_bytes: int = 0


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    attempt: int = 0
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    mounts: tuple[Mount, ...] = ()
    resources: Resources = Resources()
    log_path: str = ""
    tty: bool = False
    stdin: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


# ContainerStatus.state values.
CREATED = "created"
RUNNING = "running"
EXITED = "exited"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str
    image_ref: str
    state: str
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # e.g. "OOMKilled", "Completed", "Error"
    message: str = ""
    log_path: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class ContainerStats:
    container_id: str
    timestamp: float
    cpu_usage_seconds: float
    memory_working_set_bytes: int


@dataclass(frozen=True)
class RuntimeInfo:
    name: str  # "containerd", "process"
    version: str  # e.g. "containerd://1.6.20"
    isolated: bool  # False for the process runtime: no namespaces, no cgroups


class RuntimeError_(Exception):
    """A runtime operation failed."""


class ImagePullError(RuntimeError_):
    """The image cannot be pulled (missing, registry unreachable, bad name)."""


class ContainerCreateError(RuntimeError_):
    """The container cannot be created or started (bad command, bad config)."""


# ExecSession.output stream names.
STDOUT = "stdout"
STDERR = "stderr"


class ExecSession(Protocol):
    """One command started by ``StreamingExec.exec_stream``, with its streams.

    Contract: ``output`` yields (STDOUT or STDERR, data) as the command writes
    them (with a tty everything is STDOUT) and ends when the command's output
    ends; ``wait`` then returns the exit code (128 + N for a death by signal N)
    or raises ``RuntimeError_`` when the runtime cannot know it. Writing stdin
    to a command that no longer reads it is not an error (the data is lost).
    ``close`` ends the session at any point, killing the command if it still
    runs; it is idempotent and must be called once the caller is done.
    """

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None:
        """End of input. With a tty this is the terminal's EOF character
        (Ctrl-D), which ends a line-reading command as at a terminal."""

    def output(self) -> AsyncIterator[tuple[str, bytes]]: ...

    async def wait(self) -> int: ...

    async def resize(self, *, width: int, height: int) -> None:
        """Set the terminal's size (columns, rows); nothing without a tty."""

    async def close(self) -> None: ...


@runtime_checkable
class StreamingExec(Protocol):
    """Optional: run a command in a container with streamed stdin and output."""

    async def exec_stream(self, container_id: str, command: tuple[str, ...], *,
                          stdin: bool, tty: bool) -> ExecSession:
        """Start command in the running container; with stdin its input is a
        pipe (else empty), with tty its stdin, stdout and stderr are one
        terminal. Raises ``RuntimeError_`` when it cannot start (container
        not running, command not found)."""


class ContainerRuntime(Protocol):
    async def info(self) -> RuntimeInfo: ...

    # Images
    async def image_ref(self, image: str) -> str | None:
        """The local image's id if present, else None."""

    async def pull_image(self, image: str) -> str:
        """Pull image; returns its id. Raises ImagePullError."""

    # Sandboxes
    async def run_sandbox(self, spec: SandboxSpec) -> SandboxStatus: ...

    async def stop_sandbox(self, sandbox_id: str) -> None: ...

    async def remove_sandbox(self, sandbox_id: str) -> None: ...

    async def list_sandboxes(self) -> list[SandboxStatus]: ...

    # Containers
    async def create_container(self, sandbox_id: str, spec: ContainerSpec, sandbox: SandboxSpec) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, *, timeout: float) -> None: ...

    async def remove_container(self, container_id: str) -> None: ...

    async def list_containers(self) -> list[ContainerStatus]: ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def exec_sync(self, container_id: str, command: tuple[str, ...], *, timeout: float) -> ExecResult: ...

    async def container_stats(self) -> list[ContainerStats]: ...

    async def close(self) -> None: ...
