"""The agent's Logs and Exec, over gRPC, on the process runtime.

A real control service holds the Pod objects (the agent serves only pods
bound to its node); containers are placed in the runtime with the pod's
labels (tests/support/runtime_pods.py). Covered: logs are the container's
lines without the CRI prefix, stdout and stderr together; --tail; --timestamps;
--since; --previous reads the exited attempt before the current one, and is
BadRequest when there is none; follow streams new lines and ends when the
container stops; a pod of another node is NotFound; a pod of several
containers needs a container name, in the API server's words; a container
not yet created is BadRequest; exec returns stdout, stderr and the exit
code; exec into a stopped container is BadRequest; exec with stdin streams
its input and output as they come, half-closing is EOF; cancelling an exec
ends its command.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest

from agent.pod_containers import APIPodLookup
from agent.runtime.process import ProcessRuntime
from agent.server import AgentServer, AgentServicer
from control.api import errors
from control.client import Client
from protos.agent.v1 import agent_pb2, agent_pb2_grpc
from tests.support.runtime_pods import NODE, RuntimePod, pod_object, remove_everything, sh


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(str(tmp_path / "runtime"))
    yield runtime
    await remove_everything(runtime)


@pytest.fixture
async def agent(runtime: ProcessRuntime, api: Client) -> AsyncIterator[agent_pb2_grpc.AgentStub]:
    server = AgentServer(AgentServicer(runtime, APIPodLookup(api, NODE)), listen="127.0.0.1:0")
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield agent_pb2_grpc.AgentStub(channel)
    await server.stop(0)


@pytest.fixture
def start_pod(api: Client, runtime: ProcessRuntime, tmp_path: Path):
    async def start(name: str = "web", containers: tuple[str, ...] = ("web",), *, node: str = NODE) -> RuntimePod:
        pod = await api.create(pod_object(name, containers, node=node))
        return await RuntimePod.start(runtime, pod, log_root=tmp_path / "pods")

    return start


async def logs(agent: agent_pb2_grpc.AgentStub, pod: str = "web", **fields) -> bytes:
    request = agent_pb2.LogsRequest(namespace="default", pod=pod, **fields)
    return b"".join([chunk.data async for chunk in agent.Logs(request)])


async def exec_outputs(agent: agent_pb2_grpc.AgentStub, *command: str, pod: str = "web",
                       **fields) -> list[agent_pb2.ExecOutput]:
    start = agent_pb2.ExecStart(namespace="default", pod=pod, command=list(command), **fields)
    return [output async for output in agent.Exec(iter([agent_pb2.ExecInput(start=start)]))]


async def failure(call) -> tuple[grpc.StatusCode, str, str]:
    """The code, message and sampan-reason an RPC failed with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    metadata = dict(caught.value.trailing_metadata() or ())
    return caught.value.code(), caught.value.details(), metadata.get(errors.REASON_METADATA_KEY)


async def test_logs_are_the_containers_lines_without_the_cri_prefix(agent, start_pod):
    pod = await start_pod()
    web = await pod.run("web", sh("echo hello; echo err >&2; exec sleep 30"))
    await pod.logged(web, b"err")
    assert sorted((await logs(agent)).splitlines()) == [b"err", b"hello"]


async def test_tail_keeps_the_last_lines(agent, start_pod):
    pod = await start_pod()
    web = await pod.run("web", sh("for i in 1 2 3 4 5; do echo line$i; done; exec sleep 30"))
    await pod.logged(web, b"line5")
    assert await logs(agent, tail_lines=2) == b"line4\nline5\n"
    assert await logs(agent, tail_lines=0) == b""
    assert await logs(agent, tail_lines=10) == b"line1\nline2\nline3\nline4\nline5\n"


async def test_timestamps_prefix_each_line_with_its_rfc3339_time(agent, start_pod):
    pod = await start_pod()
    web = await pod.run("web", sh("echo one; echo two; exec sleep 30"))
    await pod.logged(web, b"two")
    lines = (await logs(agent, timestamps=True)).splitlines()
    assert [line.split(b" ", 1)[1] for line in lines] == [b"one", b"two"]
    assert all(re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", line.split(b" ")[0]) for line in lines)


async def test_since_keeps_only_recent_lines(agent, start_pod):
    pod = await start_pod()
    web = await pod.run("web", sh("echo early; sleep 3; echo late; exec sleep 30"))
    await pod.logged(web, b"late")
    assert await logs(agent, since_seconds=2) == b"late\n"
    assert await logs(agent, since_seconds=60) == b"early\nlate\n"


async def test_previous_reads_the_exited_attempt_before_the_current_one(agent, start_pod):
    pod = await start_pod()
    await pod.exited(await pod.run("web", sh("echo first attempt; exit 1"), attempt=0))
    second = await pod.run("web", sh("echo second attempt; exec sleep 30"), attempt=1)
    await pod.logged(second, b"second")
    assert await logs(agent, previous=True) == b"first attempt\n"
    assert await logs(agent) == b"second attempt\n"


async def test_previous_without_an_earlier_attempt_is_bad_request(agent, start_pod):
    pod = await start_pod()
    await pod.run("web", sh("exec sleep 30"))
    assert await failure(logs(agent, previous=True)) == (
        grpc.StatusCode.INVALID_ARGUMENT, 'previous terminated container "web" in pod "web" not found', "BadRequest")


async def test_follow_streams_new_lines_and_ends_when_the_container_stops(agent, start_pod, runtime, tmp_path):
    go_on = tmp_path / "go-on"
    pod = await start_pod()
    web = await pod.run("web", sh(f"echo one; while [ ! -e {go_on} ]; do sleep 0.05; done; echo two; exec sleep 30"))
    await pod.logged(web, b"one")
    stream = agent.Logs(agent_pb2.LogsRequest(namespace="default", pod="web", follow=True))
    received = b""
    while received != b"one\n":
        received += (await asyncio.wait_for(stream.read(), 5)).data
    go_on.touch()
    while received != b"one\ntwo\n":
        received += (await asyncio.wait_for(stream.read(), 5)).data
    await runtime.stop_container(web, timeout=1)
    assert await asyncio.wait_for(stream.read(), 5) is grpc.aio.EOF
    assert await stream.code() == grpc.StatusCode.OK


async def test_a_pod_bound_to_another_node_is_not_found(agent, start_pod):
    pod = await start_pod(node="node-b")
    await pod.run("web", sh("echo elsewhere; exec sleep 30"))
    code, message, reason = await failure(logs(agent))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NotFound")
    assert message == 'pod "web" in namespace "default" is not bound to node node-a'


async def test_a_pod_of_several_containers_needs_a_container_name(agent, start_pod):
    pod = await start_pod(containers=("a", "b"))
    b = await pod.run("b", sh("echo from b; exec sleep 30"))
    await pod.logged(b, b"from b")
    assert await failure(logs(agent)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "a container name must be specified for pod web, choose one of: [a b]",
        "BadRequest")
    assert await logs(agent, container="b") == b"from b\n"
    assert (await failure(logs(agent, container="c")))[1] == "container c is not valid for pod web"


async def test_a_container_not_yet_created_is_waiting_to_start(agent, start_pod):
    await start_pod()
    assert await failure(logs(agent)) == (
        grpc.StatusCode.INVALID_ARGUMENT, 'container "web" in pod "web" is waiting to start - no logs yet',
        "BadRequest")


async def test_exec_returns_stdout_stderr_and_the_exit_code(agent, start_pod):
    pod = await start_pod()
    await pod.run("web", sh("exec sleep 30"))
    outputs = await exec_outputs(agent, "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert outputs == [agent_pb2.ExecOutput(stdout=b"hi\n"), agent_pb2.ExecOutput(stderr=b"oops\n"),
                       agent_pb2.ExecOutput(exit_code=3)]


async def test_exec_into_a_stopped_container_is_bad_request(agent, start_pod):
    pod = await start_pod()
    await pod.exited(await pod.run("web", sh("exit 0")))
    assert await failure(exec_outputs(agent, "true")) == (
        grpc.StatusCode.INVALID_ARGUMENT, 'container "web" in pod "web" is not running', "BadRequest")


async def test_exec_with_stdin_streams_input_and_output_as_they_come(agent, start_pod):
    pod = await start_pod()
    await pod.run("web", sh("exec sleep 30"))
    inputs: asyncio.Queue[agent_pb2.ExecInput | None] = asyncio.Queue()

    async def requests():
        while (message := await inputs.get()) is not None:
            yield message

    start = agent_pb2.ExecStart(namespace="default", pod="web", command=["cat"], stdin=True)
    call = agent.Exec(requests())
    await inputs.put(agent_pb2.ExecInput(start=start))
    await inputs.put(agent_pb2.ExecInput(stdin=b"one\n"))
    assert await asyncio.wait_for(call.read(), 10) == agent_pb2.ExecOutput(stdout=b"one\n")
    await inputs.put(agent_pb2.ExecInput(stdin=b"two\n"))
    assert await asyncio.wait_for(call.read(), 10) == agent_pb2.ExecOutput(stdout=b"two\n")
    await inputs.put(None)  # half-close: EOF
    assert await asyncio.wait_for(call.read(), 10) == agent_pb2.ExecOutput(exit_code=0)


async def test_cancelling_an_exec_ends_its_command(agent, start_pod, tmp_path):
    pid_file = tmp_path / "exec.pid"
    pod = await start_pod()
    await pod.run("web", sh("exec sleep 30"))
    start = agent_pb2.ExecStart(namespace="default", pod="web", command=list(sh(f"echo $$ > {pid_file}; exec sleep 30")))
    call = agent.Exec(iter([agent_pb2.ExecInput(start=start)]))
    reading = asyncio.ensure_future(call.read())
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    pid = int(pid_file.read_text())
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    for _ in range(300):
        if not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the exec'd command (pid {pid}) still runs after its exec was cancelled")
