"""``sampan top`` end to end: the CLI process, the control service asking
the Ready nodes' agents for their usage, the agent sampling the runtime.

An in-process control service; the agent's gRPC server on the process
runtime, its Node registered as the agent registers it; a Pod bound to that
node whose container spins a CPU. Covered: ``top pods`` shows the busy pod's
millicores and memory, ``-A`` adds the namespace column, ``top nodes`` shows
the node against its allocatable, and a node whose agent cannot be reached is
a warning while the other nodes are still reported.
"""

from __future__ import annotations

import re
import socket

from agent.usage import node_cpu_seconds, node_memory_bytes
from tests.support.runtime_pods import NODE, register_agent_node, sh

BUSY = sh("while :; do :; done")


async def test_top_pods_shows_a_busy_pods_cpu_and_memory(node, start_pod, sampan):
    pod = await start_pod()
    await pod.run("web", BUSY)
    code, stdout, stderr = await sampan("top", "pods")
    assert (code, stderr) == (0, "")
    header, row = stdout.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    name, cpu, memory = row.split()
    assert name == "web"
    assert re.fullmatch(r"\d+m", cpu) and int(cpu[:-1]) >= 200, cpu  # one spinning core is ~1000m
    assert re.fullmatch(r"\d+Mi", memory), memory


async def test_top_pods_all_namespaces_adds_the_namespace(node, start_pod, sampan):
    pod = await start_pod()
    await pod.run("web", sh("exec sleep 30"))
    code, stdout, _ = await sampan("top", "pods", "-A")
    assert code == 0
    assert stdout.splitlines()[0].split() == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert stdout.splitlines()[1].split()[:2] == ["default", "web"]


async def test_top_pods_of_an_empty_namespace_finds_none(node, start_pod, sampan):
    pod = await start_pod()
    await pod.run("web", sh("exec sleep 30"))
    assert await sampan("top", "pods", "-n", "other") == (0, "", "No resources found in other namespace.\n")


async def test_top_nodes_shows_the_node_against_its_allocatable(node, sampan):
    code, stdout, stderr = await sampan("top", "nodes")
    assert (code, stderr) == (0, "")
    header, row = stdout.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
    assert re.fullmatch(rf"{NODE}\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%", row), row


async def test_an_unreachable_agent_is_a_warning_and_the_rest_are_shown(api, node, sampan, tmp_path):
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    await register_agent_node(api, tmp_path, name="node-b", agent_port=port)
    code, stdout, stderr = await sampan("top", "nodes")
    assert code == 0
    assert [line.split()[0] for line in stdout.splitlines()] == ["NAME", NODE]
    assert stderr.startswith(f"warning: node node-b: cannot get usage from its agent at 127.0.0.1:{port}: ")


def test_node_usage_comes_from_proc_stat_and_meminfo():
    assert node_cpu_seconds("cpu  100 0 50 1000 30 0 0 0 0 0\ncpu0 ...\n") > 0
    assert node_memory_bytes("MemTotal:  1000 kB\nMemFree: 100 kB\nMemAvailable:  400 kB\n") == 600 * 1024
