"""``sampan exec -i [-t]``: a command's stdin streamed to it, its output streamed back.

Process runtime, end to end as tests/e2e/test_logs_exec.py runs it (the CLI
process, the control service's relay, the agent's gRPC server): stdin echoed
by ``cat`` up to our EOF, a command reading one line then exiting with its
code, a terminal with -t (Ctrl-D as EOF). The agent refuses -i on a runtime
without streaming exec. CRI (the session's private containerd): the runtime's
``exec_stream`` over containerd's streaming server (WebSocket,
v4.channel.k8s.io): stdin echoed, output and exit code, a terminal, and
what ending stdin without a terminal costs on v4 (the exit code).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest

from agent.exec import check_exec_start
from agent.node import MachineFacts, NodeIdentity, register_node
from agent.pod_containers import APIPodLookup
from agent.runtime.base import ExecSession, RuntimeError_
from agent.runtime.cri import CRIRuntime
from agent.runtime.process import ProcessRuntime
from agent.server import AgentServer, AgentServicer
from control.api import errors
from control.client import Client
from protos.agent.v1 import agent_pb2
from tests.support.containerd import Containerd
from tests.support.runtime_pods import NODE, RuntimePod, pod_object, sh

# ---- process runtime, end to end -----------------------------------------------------------------


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(str(tmp_path / "runtime"))
    yield runtime
    for container in await runtime.list_containers():
        await runtime.remove_container(container.id)
    for sandbox in await runtime.list_sandboxes():
        await runtime.remove_sandbox(sandbox.id)


@pytest.fixture
async def web(api: Client, runtime: ProcessRuntime, tmp_path: Path) -> AsyncIterator[None]:
    """The agent's server for NODE on the process runtime, and pod web running there."""
    server = AgentServer(AgentServicer(runtime, APIPodLookup(api, NODE)), listen="127.0.0.1:0")
    facts = await asyncio.to_thread(MachineFacts.read, data_dir=str(tmp_path), node_ip="127.0.0.1")
    await register_node(api, NodeIdentity(name=NODE, agent_port=await server.start()), facts)
    pod = await RuntimePod.start(runtime, await api.create(pod_object("web")), log_root=tmp_path / "pods")
    await pod.run("web", sh("exec sleep 60"))
    yield
    await server.stop(0)


@pytest.fixture
def sampan(service):
    async def run(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control.cli.main", "--server", f"127.0.0.1:{service.port}", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), 60)
        return process.returncode, stdout.decode(), stderr.decode()

    return run


async def test_exec_i_cat_echoes_stdin_until_eof(web, sampan):
    assert await sampan("exec", "-i", "web", "--", "cat", stdin=b"hello\nworld\n") == (0, "hello\nworld\n", "")


async def test_exec_i_passes_a_line_and_exits_with_the_commands_code(web, sampan):
    assert await sampan("exec", "-i", "web", "--", "sh", "-c", "read x; echo got:$x; echo err >&2; exit 4",
                        stdin=b"hi\n") == (4, "got:hi\n", "err\ncommand terminated with exit code 4\n")


async def test_exec_it_gives_the_command_a_terminal_and_ctrl_d_as_eof(web, sampan):
    code, stdout, stderr = await sampan(
        "exec", "-i", "-t", "web", "--", "sh", "-c", "test -t 0 && test -t 1 && echo a-tty; cat; echo done",
        stdin=b"typed\n")
    assert (code, stderr) == (0, "")
    # The terminal echoes what is typed (maybe before a-tty), then cat repeats it; lines end in \r\n.
    assert sorted(stdout.splitlines(keepends=True)) == ["a-tty\r\n", "done\r\n", "typed\r\n", "typed\r\n"]
    assert stdout.endswith("typed\r\ndone\r\n")


def test_stdin_is_refused_on_a_runtime_without_streaming_exec():
    class ExecSyncOnly:
        async def exec_sync(self, container_id, command, *, timeout): ...

    with pytest.raises(errors.MethodNotAllowedError, match="exec with stdin and a tty is not supported"):
        check_exec_start(agent_pb2.ExecStart(command=["cat"], stdin=True, tty=True), ExecSyncOnly())


# ---- CRI: containerd's streaming server --------------------------------------------------------------


@pytest.fixture
async def cri_container(containerd: Containerd, tmp_path: Path) -> AsyncIterator[tuple[CRIRuntime, str]]:
    """A running busybox container in containerd, and the runtime holding it."""
    runtime = CRIRuntime(containerd.socket)
    pod = pod_object("exec-stream")
    pod.metadata.uid = str(uuid.uuid4())
    runtime_pod = await RuntimePod.start(runtime, pod, log_root=tmp_path / "pods")
    try:
        yield runtime, await runtime_pod.run("web", ("sleep", "300"))
    finally:
        await runtime.stop_sandbox(runtime_pod.sandbox_id)
        await runtime.remove_sandbox(runtime_pod.sandbox_id)
        await runtime.close()


async def collect(session: ExecSession, until: bytes | None = None) -> bytes:
    """The session's output, up to and including until (None: all of it)."""
    seen = b""
    async for _, data in session.output():
        seen += data
        if until is not None and until in seen:
            break
    return seen


async def test_cri_exec_stream_echoes_stdin(cri_container):
    runtime, container_id = cri_container
    session = await runtime.exec_stream(container_id, ("cat",), stdin=True, tty=False)
    try:
        await session.write_stdin(b"hello over websocket\n")
        assert await asyncio.wait_for(collect(session, b"\n"), 30) == b"hello over websocket\n"
    finally:
        await session.close()


async def test_cri_exec_stream_reads_a_line_and_reports_output_and_exit_code(cri_container):
    runtime, container_id = cri_container
    session = await runtime.exec_stream(container_id, sh("read x; echo got:$x; echo err >&2; exit 3"),
                                        stdin=True, tty=False)
    try:
        await session.write_stdin(b"hi\n")
        outputs = await asyncio.wait_for(_all_outputs(session), 30)
        assert sorted(outputs) == [("stderr", b"err\n"), ("stdout", b"got:hi\n")]
        assert await session.wait() == 3
    finally:
        await session.close()


async def test_cri_exec_stream_without_stdin_reports_success(cri_container):
    runtime, container_id = cri_container
    session = await runtime.exec_stream(container_id, sh("echo fine"), stdin=False, tty=False)
    try:
        assert await asyncio.wait_for(collect(session), 30) == b"fine\n"
        assert await session.wait() == 0
    finally:
        await session.close()


async def test_cri_exec_stream_with_a_tty_ends_cat_with_ctrl_d(cri_container):
    runtime, container_id = cri_container
    session = await runtime.exec_stream(container_id, sh("test -t 0 && echo a-tty; cat; exit 5"),
                                        stdin=True, tty=True)
    try:
        await session.resize(width=100, height=30)
        await session.write_stdin(b"typed\n")
        await session.close_stdin()
        output = await asyncio.wait_for(collect(session), 30)
        assert sorted(output.splitlines()) == [b"a-tty", b"typed", b"typed"]  # the echo may come first
        assert await session.wait() == 5
    finally:
        await session.close()


async def test_cri_exec_stream_ending_stdin_without_a_tty_loses_the_exit_code_on_v4(cri_container):
    runtime, container_id = cri_container
    session = await runtime.exec_stream(container_id, ("cat",), stdin=True, tty=False)
    try:
        await session.close_stdin()  # containerd 1.6 has no v5.channel.k8s.io: the connection ends
        await asyncio.wait_for(collect(session), 30)
        with pytest.raises(RuntimeError_, match="exit code is unknown: ending stdin closed the connection"):
            await session.wait()
    finally:
        await session.close()


async def _all_outputs(session: ExecSession) -> list[tuple[str, bytes]]:
    return [item async for item in session.output()]
