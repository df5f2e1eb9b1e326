"""Fixtures for the runtime harness: every runtime in RUNTIME_FACTORIES runs
the same tests (tests/agent/runtime/test_runtime_contract.py).

A factory is ``factory(request, state_dir) -> opener``. It runs outside the
event loop, so it may take other fixtures through ``request.getfixturevalue``
(containerd's takes the session's ``containerd``) and skip when its component
is missing. The opener is a coroutine function; each call opens one more
runtime object on the same state: the first is the test's ``runtime``, later
ones are what an agent restarted after a crash would open
(``reopen_runtime``). Adding a runtime is one entry in RUNTIME_FACTORIES.

Every runtime object a test opens is closed at teardown, and every sandbox
and container created through one is stopped and removed, by a fresh runtime
object (the test may have closed its own).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

import pytest

from agent.runtime.base import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerRuntime,
    ContainerSpec,
    SandboxSpec,
    SandboxStatus,
)
from agent.runtime.cri import CRIRuntime
from agent.runtime.process import ProcessRuntime

# An image every runtime under test can run: the CRI test containerd holds
# it, the process runtime only records the name and runs host commands.
# Tests use commands both have: sh, sleep, echo, cat, env, kill, trap.
TEST_IMAGE = "busybox:1.36"

RuntimeOpener = Callable[[], Awaitable[ContainerRuntime]]
RuntimeFactory = Callable[[pytest.FixtureRequest, Path], RuntimeOpener]


def process_runtime_factory(request: pytest.FixtureRequest, state_dir: Path) -> RuntimeOpener:
    async def open_process_runtime() -> ContainerRuntime:
        return ProcessRuntime(str(state_dir))

    return open_process_runtime


def cri_runtime_factory(request: pytest.FixtureRequest, state_dir: Path) -> RuntimeOpener:
    # All state is containerd's (the session's private one, tests/agent/conftest.py).
    containerd = request.getfixturevalue("containerd")

    async def open_cri_runtime() -> ContainerRuntime:
        return CRIRuntime(containerd.socket)

    return open_cri_runtime


RUNTIME_FACTORIES: dict[str, RuntimeFactory] = {
    "cri": cri_runtime_factory,
    "process": process_runtime_factory,
}


@dataclass
class CreatedObjects:
    sandbox_ids: list[str] = field(default_factory=list)
    container_ids: list[str] = field(default_factory=list)


class TrackedRuntime:
    """A runtime object that remembers what was created through it, so the
    harness can clean up; everything else goes straight to the runtime."""

    def __init__(self, runtime: ContainerRuntime, created: CreatedObjects) -> None:
        self._runtime = runtime
        self._created = created
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)

    async def run_sandbox(self, spec: SandboxSpec) -> SandboxStatus:
        status = await self._runtime.run_sandbox(spec)
        self._created.sandbox_ids.append(status.id)
        return status

    async def create_container(self, sandbox_id: str, spec: ContainerSpec, sandbox: SandboxSpec) -> str:
        container_id = await self._runtime.create_container(sandbox_id, spec, sandbox)
        self._created.container_ids.append(container_id)
        return container_id

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._runtime.close()


class RuntimeUnderTest:
    """The runtime objects one test opened on its state, and their cleanup."""

    def __init__(self, opener: RuntimeOpener) -> None:
        self._opener = opener
        self._created = CreatedObjects()
        self._opened: list[TrackedRuntime] = []

    async def open(self) -> ContainerRuntime:
        runtime = TrackedRuntime(await self._opener(), self._created)
        self._opened.append(runtime)
        return runtime  # type: ignore[return-value]  # a ContainerRuntime by delegation

    async def clean_up(self) -> None:
        for runtime in self._opened:
            await runtime.close()
        janitor = await self._opener()
        try:
            for container_id in self._created.container_ids:
                await janitor.remove_container(container_id)
            for sandbox_id in self._created.sandbox_ids:
                await janitor.remove_sandbox(sandbox_id)
        finally:
            await janitor.close()


@pytest.fixture(params=sorted(RUNTIME_FACTORIES))
def runtime_opener(request: pytest.FixtureRequest, tmp_path: Path) -> RuntimeOpener:
    state_dir = tmp_path / "runtime-state"
    state_dir.mkdir()
    return RUNTIME_FACTORIES[request.param](request, state_dir)


@pytest.fixture
async def runtime_under_test(runtime_opener: RuntimeOpener) -> AsyncIterator[RuntimeUnderTest]:
    under_test = RuntimeUnderTest(runtime_opener)
    yield under_test
    await under_test.clean_up()


@pytest.fixture
async def runtime(runtime_under_test: RuntimeUnderTest) -> ContainerRuntime:
    """The runtime under test (once per entry in RUNTIME_FACTORIES)."""
    return await runtime_under_test.open()


@pytest.fixture
def reopen_runtime(runtime_under_test: RuntimeUnderTest) -> RuntimeOpener:
    """Opens another runtime object on the same state, as a restarted agent would."""
    return runtime_under_test.open


@pytest.fixture
async def image(runtime: ContainerRuntime) -> str:
    """TEST_IMAGE, pulled if the runtime does not have it yet."""
    if await runtime.image_ref(TEST_IMAGE) is None:
        await runtime.pull_image(TEST_IMAGE)
    return TEST_IMAGE


@dataclass(frozen=True)
class Pod:
    """A running sandbox and the spec it was run from."""

    id: str
    spec: SandboxSpec

    def container_spec(self, name: str, *command: str, env: Mapping[str, str] | None = None,
                       labels: Mapping[str, str] | None = None,
                       annotations: Mapping[str, str] | None = None) -> ContainerSpec:
        """A container of TEST_IMAGE running command, labelled like the agent
        labels its containers, logging to <name>/0.log. Like the kubelet, the
        harness makes the log directory; runtimes only make the file."""
        self.log_file(name).parent.mkdir(parents=True, exist_ok=True)
        return ContainerSpec(
            name=name, image=TEST_IMAGE, command=command, env=dict(env or {}), log_path=f"{name}/0.log",
            labels={**self.spec.labels, LABEL_CONTAINER_NAME: name, **(labels or {})},
            annotations=dict(annotations or {}))

    def log_file(self, container_name: str) -> Path:
        return Path(self.spec.log_directory) / container_name / "0.log"


@pytest.fixture
def new_sandbox_spec(tmp_path: Path) -> Callable[..., SandboxSpec]:
    """Makes sandbox specs for fresh pods (unique uid, own log directory)."""

    def make(name: str = "harness", *, labels: Mapping[str, str] | None = None,
             annotations: Mapping[str, str] | None = None) -> SandboxSpec:
        uid = str(uuid.uuid4())
        log_directory = tmp_path / "pods" / uid
        log_directory.mkdir(parents=True)
        return SandboxSpec(
            pod_uid=uid, pod_name=name, namespace="runtime-harness", hostname=name,
            log_directory=str(log_directory),
            labels={LABEL_POD_UID: uid, LABEL_POD_NAME: name, LABEL_POD_NAMESPACE: "runtime-harness",
                    **(labels or {})},
            annotations=dict(annotations or {}))

    return make


@pytest.fixture
async def pod(runtime: ContainerRuntime, image: str, new_sandbox_spec: Callable[..., SandboxSpec]) -> Pod:
    """A running sandbox, with TEST_IMAGE present."""
    spec = new_sandbox_spec()
    status = await runtime.run_sandbox(spec)
    return Pod(id=status.id, spec=spec)
