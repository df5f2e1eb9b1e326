"""What the agent benchmarks run against: a node made of an agent process and a runtime.

- ``containerd_missing()`` says why a private containerd cannot run here
  (not root, a Debian package missing), or None; ``private_containerd()`` is
  then ``tests.support.containerd.running_containerd`` with the test images
  (busybox as ``busybox:1.36``, the pause image) imported.
- ``running_agent()`` is ``sampan agent`` as a subprocess (``python -m
  control.cli.main agent``, as tests/agent/test_agent_on_containerd.py starts
  it) against a control service; its metrics endpoint off and, where it has one, its logs/exec
  server on a free loopback port, so it can share the machine with other
  agents; with a profile path, py-spy samples it for its whole life
  (``profiled``: the same flags as ``environment.control_service``).
- ``sleeper_pod()`` is the pod both benchmarks create: one busybox container
  ``sleep 3600``, imagePullPolicy IfNotPresent, bound to the node.
- ``RunningPods`` watches the namespace's pods (``Client.watch``) and
  records when it first sees each one Running, by the benchmark's own clock.
- ``remove_sandboxes()`` stops and removes every sandbox through the runtime
  (containerd tears down their network namespaces, processes and mounts).

Nothing here measures; the benchmarks do (``bench_pods``,
``bench_agent_footprint``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from agent.runtime.base import ContainerRuntime
from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2
from tests.bench.environment import PROFILE_RATE
from tests.support.containerd import CNI_BIN_DIR, Containerd, running_containerd

NODE = "bench-node"
NAMESPACE = "default"
IMAGE = "busybox:1.36"
CONTAINERD_PACKAGES = {"containerd": "containerd", "ctr": "containerd", "runc": "runc", "busybox": "busybox-static"}
REMOVE_CONCURRENCY = 8


def containerd_missing() -> str | None:
    """Why a private containerd cannot run on this machine, or None if it can."""
    for binary, package in CONTAINERD_PACKAGES.items():
        if shutil.which(binary) is None:
            return f"{binary} not found (install Debian's {package})"
    if not Path(CNI_BIN_DIR, "bridge").exists():
        return f"no CNI plugins in {CNI_BIN_DIR} (install Debian's containernetworking-plugins)"
    if os.geteuid() != 0:
        return "containerd needs root (network namespaces, mounts, cgroups)"
    return None


@contextlib.contextmanager
def private_containerd() -> Iterator[Containerd]:
    def found(name: str) -> str:
        path = shutil.which(name)
        assert path is not None, containerd_missing()
        return path

    with running_containerd(binary=found("containerd"), ctr_binary=found("ctr"), runc_binary=found("runc")) as daemon:
        yield daemon


def sleeper_pod(name: str) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = NAMESPACE
    pod.spec.node_name = NODE
    pod.spec.termination_grace_period_seconds = 1
    container = pod.spec.containers.add(name="sleep", image=IMAGE, image_pull_policy="IfNotPresent")
    container.command.extend(["sleep", "3600"])
    return pod


@contextlib.contextmanager
def running_agent(
    server: str, data_dir: Path, *, runtime: str, containerd_socket: str = "", profile_to: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``sampan agent`` for NODE, SIGKILLed at exit (its pods keep running: remove them
    through the runtime); its log is printed if the block fails."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / "agent.log"
    command = [sys.executable, "-m", "control.cli.main", "agent", "--server", server, "--node-name", NODE,
               "--data-dir", str(data_dir), "--runtime", runtime, "--metrics-listen", ""]
    if _agent_has_flag("--insecure-plaintext"):  # the control service of the benchmarks serves plain text
        command.append("--insecure-plaintext")
    if containerd_socket:
        command += ["--containerd-socket", containerd_socket]
    if _agent_has_flag("--listen"):  # its logs/exec server: any free port, not the shared default
        command += ["--listen", "127.0.0.1:0"]
    with open(log_path, "ab") as log:
        # In the benchmark's process group: if the benchmark is killed as a group, so is the agent.
        agent = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        with profiled(agent.pid, profile_to):
            yield agent
    except BaseException:
        print(f"agent log ({log_path}):\n{log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        agent.kill()
        agent.wait()


@functools.cache
def _agent_has_flag(flag: str) -> bool:
    usage = subprocess.run([sys.executable, "-m", "control.cli.main", "agent", "--help"],
                           capture_output=True, text=True, check=True).stdout
    return f"{flag} " in usage


@contextlib.contextmanager
def profiled(
    pid: int, profile_to: Path | None, *, rate: int = PROFILE_RATE, nonblocking: bool = False
) -> Iterator[None]:
    """py-spy samples process pid (rate times a second; with nonblocking, without
    pausing it, which py-spy allows for Python frames only) while the block runs
    (nothing if profile_to is None), writing collapsed stacks to profile_to at the end."""
    if profile_to is None:
        yield
        return
    profile_to.parent.mkdir(parents=True, exist_ok=True)
    profiler = subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--gil",
         *(["--nonblocking"] if nonblocking else ["--native"]), "--rate", str(rate), "--output", str(profile_to)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        if profiler.poll() is None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = profiler.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()
            _, err = profiler.communicate()
        if not profile_to.exists():
            print(f"py-spy wrote no profile: {err.decode(errors='replace')[-2000:]}", file=sys.stderr)


async def wait_node_ready(api: Client, agent: subprocess.Popen[bytes], *, timeout: float) -> float:
    """Seconds until the agent's Node reports Ready; fails if the agent exits or time runs out."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if agent.poll() is not None:
            raise RuntimeError(f"the agent exited with {agent.returncode} before its node was Ready")
        try:
            node = await api.get("Node", NODE)
            if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions):
                return time.monotonic() - began
        except errors.NotFoundError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"node {NODE} not Ready after {timeout:g} s")


async def remove_sandboxes(runtime: ContainerRuntime) -> int:
    """Stop and remove every sandbox the runtime has (with its containers); returns how many."""
    sandboxes = await runtime.list_sandboxes()
    limit = asyncio.Semaphore(REMOVE_CONCURRENCY)

    async def remove(sandbox_id: str) -> None:
        async with limit:
            await runtime.stop_sandbox(sandbox_id)
            await runtime.remove_sandbox(sandbox_id)

    await asyncio.gather(*(remove(sandbox.id) for sandbox in sandboxes))
    return len(sandboxes)


class RunningPods:
    """The moment (``time.time()``) a watch on the namespace's pods first saw
    each pod Running; start it from a list's resourceVersion before creating."""

    def __init__(self, api: Client, resource_version: str) -> None:
        self.seen: dict[str, float] = {}
        self._api = api
        self._resource_version = resource_version
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "RunningPods":
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        events = self._api.watch("Pod", namespace=NAMESPACE, resource_version=self._resource_version)
        async with contextlib.aclosing(events):
            async for event in events:
                seen_at = time.time()
                pod = event.object
                if pod.status.phase == "Running" and pod.metadata.name not in self.seen:
                    self.seen[pod.metadata.name] = seen_at
                    self._progress.set()

    async def wait_for(self, names: set[str], *, timeout: float) -> set[str]:
        """Wait until every pod in names was seen Running; returns those that were not in time."""
        assert self._task is not None
        deadline = time.monotonic() + timeout
        while not names <= self.seen.keys() and time.monotonic() < deadline:
            if self._task.done():
                self._task.result()  # the watch failed: say why
                raise RuntimeError("the pod watch ended")
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), deadline - time.monotonic())
        return names - self.seen.keys()
