"""``sampan logs`` and ``sampan exec`` end to end: the CLI process, the control
service relaying to the node's agent, the agent reading the runtime.

An in-process control service; the agent's gRPC server on the process
runtime, its Node registered as the agent registers it (InternalIP
127.0.0.1, the agent's port in daemonEndpoints); a Pod bound to that node
whose containers are placed in the runtime with the pod's labels. Covered:
logs (plain, -f until the container stops, --previous), exec's output and
exit code (kubectl's "command terminated with exit code 3"), and the errors a
user meets, as one line and exit code 1: several containers and no -c, a pod
on no node, a missing pod, an unreachable agent. exec -i and -t:
tests/agent/test_exec_stream.py.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import AsyncIterator

import pytest

from agent.node import MachineFacts, NodeIdentity, register_node
from agent.pod_containers import APIPodLookup
from agent.runtime.process import ProcessRuntime
from agent.server import AgentServer, AgentServicer
from control.client import Client
from tests.support.runtime_pods import NODE, RuntimePod, pod_object, remove_everything, sh


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(str(tmp_path / "runtime"))
    yield runtime
    await remove_everything(runtime)


async def register(api: Client, tmp_path: Path, *, name: str = NODE, agent_port: int) -> None:
    facts = await asyncio.to_thread(MachineFacts.read, data_dir=str(tmp_path), node_ip="127.0.0.1")
    await register_node(api, NodeIdentity(name=name, agent_port=agent_port), facts)


@pytest.fixture
async def node(api: Client, runtime: ProcessRuntime, tmp_path: Path) -> AsyncIterator[None]:
    """The agent's server for NODE, and NODE registered with its port."""
    server = AgentServer(AgentServicer(runtime, APIPodLookup(api, NODE)), listen="127.0.0.1:0")
    await register(api, tmp_path, agent_port=await server.start())
    yield
    await server.stop(0)


@pytest.fixture
def sampan(service):
    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control.cli.main", "--server", f"127.0.0.1:{service.port}", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode, stdout.decode(), stderr.decode()

    return run


@pytest.fixture
def start_pod(api: Client, runtime: ProcessRuntime, tmp_path: Path):
    async def start(name: str = "web", containers: tuple[str, ...] = ("web",), *,
                    node: str | None = NODE) -> RuntimePod:
        pod = await api.create(pod_object(name, containers, node=node))
        return await RuntimePod.start(runtime, pod, log_root=tmp_path / "pods")

    return start


async def test_logs_prints_the_containers_output(node, start_pod, sampan):
    pod = await start_pod()
    web = await pod.run("web", sh("echo hello; echo world; exec sleep 30"))
    await pod.logged(web, b"world")
    assert await sampan("logs", "web") == (0, "hello\nworld\n", "")
    assert await sampan("logs", "pod/web", "--tail", "1", "-n", "default") == (0, "world\n", "")


async def test_logs_previous_prints_the_attempt_before_the_restart(node, start_pod, sampan):
    pod = await start_pod()
    await pod.exited(await pod.run("web", sh("echo crashed; exit 2"), attempt=0))
    await pod.logged(await pod.run("web", sh("echo restarted; exec sleep 30"), attempt=1), b"restarted")
    assert await sampan("logs", "web", "--previous") == (0, "crashed\n", "")


async def test_logs_follow_prints_lines_as_they_come_until_the_container_stops(
        node, start_pod, runtime, service, tmp_path):
    go_on = tmp_path / "go-on"
    pod = await start_pod()
    web = await pod.run("web", sh(f"echo one; while [ ! -e {go_on} ]; do sleep 0.05; done; echo two; exec sleep 30"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.cli.main", "--server", f"127.0.0.1:{service.port}", "logs", "-f", "web",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"one\n"
    go_on.touch()
    assert await asyncio.wait_for(process.stdout.readline(), 10) == b"two\n"
    await runtime.stop_container(web, timeout=1)
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_exec_prints_the_output_and_exits_with_the_commands_code(node, start_pod, sampan):
    pod = await start_pod()
    await pod.run("web", sh("exec sleep 30"))
    assert await sampan("exec", "web", "--", "sh", "-c", "echo hi; exit 3") == (
        3, "hi\n", "command terminated with exit code 3\n")
    assert await sampan("exec", "web", "--", "sh", "-c", "echo fine >&2") == (0, "", "fine\n")


async def test_a_pod_of_several_containers_needs_a_container_name(node, start_pod, sampan):
    pod = await start_pod(containers=("a", "b"))
    await pod.run("b", sh("exec sleep 30"))
    assert await sampan("exec", "web", "--", "echo", "hi") == (
        1, "", "Error from server (BadRequest): a container name must be specified for pod web, "
               "choose one of: [a b]\n")
    assert await sampan("exec", "web", "-c", "b", "--", "echo", "hi") == (0, "hi\n", "")


async def test_a_pod_on_no_node_has_no_logs(node, start_pod, sampan):
    await start_pod(node=None)
    assert await sampan("logs", "web") == (
        1, "", "Error from server (BadRequest): pod web does not have a host assigned\n")


async def test_a_missing_pod_is_not_found(node, sampan):
    assert await sampan("logs", "nope") == (1, "", 'Error from server (NotFound): pods "nope" not found\n')


async def test_an_unreachable_agent_is_service_unavailable(api, start_pod, sampan, tmp_path):
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    await register(api, tmp_path, name="node-b", agent_port=port)
    await start_pod(node="node-b")
    code, stdout, stderr = await sampan("logs", "web")
    assert (code, stdout) == (1, "")
    assert stderr.startswith(f"Error from server (ServiceUnavailable): cannot reach the agent of node node-b "
                             f"at 127.0.0.1:{port}: ")
