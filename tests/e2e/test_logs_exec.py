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

from tests.support.runtime_pods import register_agent_node, sh


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
    await register_agent_node(api, tmp_path, name="node-b", agent_port=port)
    await start_pod(node="node-b")
    code, stdout, stderr = await sampan("logs", "web")
    assert (code, stdout) == (1, "")
    assert stderr.startswith(f"Error from server (ServiceUnavailable): cannot reach the agent of node node-b "
                             f"at 127.0.0.1:{port}: ")
