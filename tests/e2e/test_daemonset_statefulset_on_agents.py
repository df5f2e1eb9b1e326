"""DaemonSets and StatefulSets end to end, with every part real.

The parts: an in-process control service (API, scheduler, controllers) and
two whole node agents (the agent's own Agent class) on the process runtime,
so each pod's ``sleep`` runs on this host, the agents write the pods'
status and confirm their graceful deletion. Checked: a DaemonSet runs one
pod on each node and a rolling update (maxUnavailable 1) replaces both,
never leaving both nodes without a running pod; a StatefulSet of two
starts web-0, then web-1 once web-0 runs and is ready, and scales down from
the highest ordinal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from google.protobuf.message import Message

from agent.runtime.process import ProcessRuntime
from agent.service import Agent, AgentConfig
from control.api.manifest import to_message
from control.client import Client
from tests.support.runtime_pods import remove_everything

NODES = ("node-a", "node-b")


def workload(kind: str, name: str, image: str = "busybox:1.36", **spec) -> Message:
    return to_message({
        "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 5,
                                       "containers": [{"name": "main", "image": image,
                                                       "command": ["sleep", "3600"]}]}},
                 **spec}})


@pytest.fixture
async def agents(api: Client, service, tmp_path: Path):
    started = []
    try:
        for name in NODES:
            agent = Agent(AgentConfig(server=f"127.0.0.1:{service.port}", node_name=name,
                                      data_dir=str(tmp_path / name), runtime="process", node_ip="127.0.0.1",
                                      metrics_listen="", listen="127.0.0.1:0", lease_interval=0.5,
                                      status_interval=0.5, backoff_initial=0.5, backoff_max=2.0))
            await agent.start()
            started.append(agent)
        yield
    finally:
        for agent in started:
            with contextlib.suppress(Exception):
                await agent.stop()
        # Pods outlive their agent by design: stop every process the test started.
        for name in NODES:
            await remove_everything(ProcessRuntime(str(tmp_path / name / "process-runtime")))


async def eventually(probe, *, timeout: float = 60.0, what: str):
    deadline = time.monotonic() + timeout
    while not (result := await probe()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.1)
    return result


def running_and_ready(pod) -> bool:
    return (pod.status.phase == "Running" and not pod.metadata.HasField("deletion_timestamp")
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions))


async def pods_of(api: Client, app: str):
    pods, _ = await api.list("Pod", namespace="default", label_selector=f"app={app}")
    return pods


async def test_a_daemonset_runs_on_every_node_and_rolls_out_node_by_node(api, agents):
    await api.create(workload("DaemonSet", "agent"))

    async def one_running_per_node():
        pods = [p for p in await pods_of(api, "agent") if running_and_ready(p)]
        return sorted(p.spec.node_name for p in pods) == sorted(NODES) and pods
    before = await eventually(one_running_per_node, what="a running pod on each node")

    seen_without_any: list[int] = []

    async def updated_everywhere():
        pods = await pods_of(api, "agent")
        running = [p for p in pods if running_and_ready(p)]
        if not running:
            seen_without_any.append(len(pods))
        return (len(running) == 2 and len(pods) == 2
                and all(p.spec.containers[0].image == "busybox:1.37" for p in running) and running)

    await api.patch("DaemonSet", "agent", {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "busybox:1.37", "command": ["sleep", "3600"]}]}}}}, namespace="default")
    after = await eventually(updated_everywhere, what="both nodes' pods replaced")

    assert not {p.metadata.uid for p in before} & {p.metadata.uid for p in after}
    assert sorted(p.spec.node_name for p in after) == sorted(NODES)
    assert not seen_without_any, "both nodes were without a running pod at once"
    ds = await api.get("DaemonSet", "agent", namespace="default")
    assert (ds.status.desired_number_scheduled, ds.status.updated_number_scheduled,
            ds.status.number_available) == (2, 2, 2)


async def test_a_statefulset_starts_its_pods_in_order_and_scales_down_from_the_top(api, agents):
    await api.create(workload("StatefulSet", "web", replicas=2, serviceName="web"))

    async def both_running():
        pods = {p.metadata.name: p for p in await pods_of(api, "web") if running_and_ready(p)}
        return sorted(pods) == ["web-0", "web-1"] and pods
    pods = await eventually(both_running, what="web-0 and web-1 running")

    web_0_ready = next(c.last_transition_time for c in pods["web-0"].status.conditions if c.type == "Ready")
    assert pods["web-1"].metadata.creation_timestamp >= web_0_ready  # RFC 3339 in whole seconds: ordered as text
    assert [pods[n].spec.hostname for n in ("web-0", "web-1")] == ["web-0", "web-1"]
    assert {p.spec.subdomain for p in pods.values()} == {"web"}

    await api.patch("StatefulSet", "web", {"spec": {"replicas": 1}}, namespace="default")

    async def only_web_0():
        names = sorted(p.metadata.name for p in await pods_of(api, "web"))
        return names == ["web-0"]
    await eventually(only_web_0, what="web-1 stopped and gone")
    remaining = (await pods_of(api, "web"))[0]
    assert remaining.metadata.uid == pods["web-0"].metadata.uid
