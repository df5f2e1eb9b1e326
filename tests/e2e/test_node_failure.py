"""A node dies; its pods come back on the other one.

End to end, with real parts: ``sampan control`` as a process, given the node
lifecycle flags (--node-monitor-grace-period 3, --node-monitor-period 0.2,
--default-toleration-seconds 2), and two agents (the agent's own Agent class,
on the process runtime, heartbeats every 0.5 s). A Deployment's four pods
run on both nodes. One agent stops, as if its machine went away (its
heartbeats end; the processes it started keep running, as pods outlive
their agent). Then, with nothing but the controllers acting: the silent
node becomes Unknown and is tainted unreachable, its pods are evicted once
their (default, here 2 s) toleration runs out and stay Terminating, since no
agent confirms, and the Deployment's ReplicaSet replaces them on the live
node, where they run.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from agent.runtime.process import ProcessRuntime
from agent.service import Agent, AgentConfig
from control.api import manifest
from control.client import Client
from tests.e2e.manifests import spread_web
from tests.support.control import ControlServer
from tests.support.runtime_pods import remove_everything

GRACE_SECONDS = 3
TOLERATION_SECONDS = 2
NODES = ("node-a", "node-b")

DEPLOYMENT = spread_web(grace_seconds=5)


async def eventually(probe, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := await probe()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.1)
    return result


def agent_config(server: str, name: str, data_dir: Path) -> AgentConfig:
    return AgentConfig(server=server, node_name=name, data_dir=str(data_dir), runtime="process",
                       metrics_listen="", listen="127.0.0.1:0", lease_interval=0.5, status_interval=0.5)


async def running_pods(api: Client) -> dict[str, list[str]]:
    """node -> the Deployment's pods running there (not terminating)."""
    pods, _ = await api.list("Pod", namespace="default", label_selector="app=web")
    placed: dict[str, list[str]] = {}
    for pod in pods:
        if pod.status.phase == "Running" and not pod.metadata.HasField("deletion_timestamp"):
            placed.setdefault(pod.spec.node_name, []).append(pod.metadata.name)
    return placed


async def test_pods_of_a_dead_node_are_recreated_on_the_live_one(tmp_path: Path):
    control = ControlServer(tmp_path / "control", extra_args=(
        "--leader-elect=false", f"--node-monitor-grace-period={GRACE_SECONDS}", "--node-monitor-period=0.2",
        "--node-eviction-rate=10", f"--default-toleration-seconds={TOLERATION_SECONDS}")).start()
    agents: dict[str, Agent] = {}
    try:
        async with Client.connect(control.address) as api:
            for name in NODES:
                agents[name] = Agent(agent_config(control.address, name, tmp_path / name))
                await agents[name].start()
            await api.create(manifest.to_message(yaml.safe_load(DEPLOYMENT)))

            async def spread_and_running():
                placed = await running_pods(api)
                return placed if sum(map(len, placed.values())) == 4 and set(placed) == set(NODES) else None

            before = await eventually(spread_and_running, timeout=60, what="four pods running on both nodes")
            doomed = set(before["node-b"])

            await agents.pop("node-b").stop()  # its machine is gone: no more heartbeats

            async def replaced_on_node_a():
                placed = await running_pods(api)
                return placed if set(placed) == {"node-a"} and len(placed["node-a"]) == 4 else None

            after = await eventually(replaced_on_node_a, timeout=60, what="the pods replaced on node-a")
            assert not doomed & set(after["node-a"]), "the replacements are new pods"

            node_b = await api.get("Node", "node-b")
            assert "node.kubernetes.io/unreachable:NoExecute" in {f"{t.key}:{t.effect}" for t in node_b.spec.taints}
            assert {c.status for c in node_b.status.conditions} == {"Unknown"}
            for name in doomed:
                evicted = await api.get("Pod", name, namespace="default")
                assert evicted.metadata.HasField("deletion_timestamp"), "evicted, waiting for a node that is gone"
                assert [t.toleration_seconds for t in evicted.spec.tolerations
                        if t.effect == "NoExecute"] == [TOLERATION_SECONDS] * 2
    finally:
        for agent in agents.values():
            await agent.stop()
        control.kill()
        for name in NODES:
            await remove_everything(ProcessRuntime(str(tmp_path / name / "process-runtime")))
