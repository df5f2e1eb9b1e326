"""An HA control plane: three ``sampan control`` replicas over a three-member
etcd cluster, two agents that know all three replicas, and faults.

- The leading replica is killed with SIGKILL: another takes over (measured
  and printed; leases shortened to 3 s, renewed every 0.5 s, to keep the
  test short: docs/benchmarks.md has the figure at the default 15/10/2), a
  Deployment scaled meanwhile gets its new pods, and no pod is lost or
  duplicated.
- One etcd member stops: writes go on through the other two (the API
  answers, the controllers scale a Deployment down, and the agents, whose
  watches the replicas now serve from the other members, stop the pods
  deleted and confirm their deletion).
- An agent's host is cut off from every replica (a partition: its TCP
  connections to the control plane go through relays the test cuts,
  tests/support/tcp_relay.py; its pods keep running, as they would): for
  less than the node grace period nothing is evicted; for longer, its pods
  are recreated on the other node, and once the partition heals the agent
  stops the old ones and they leave the API.

The agents are the agent's own Agent class on the process runtime (as in
test_node_failure.py); node lifecycle flags are shortened (grace 3 s,
tolerations 2 s).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent.runtime.process import ProcessRuntime
from agent.service import Agent, AgentConfig
from control.api import errors, manifest
from control.client import Client
from control.leaderelection import LEASE_NAME, LEASE_NAMESPACE
from protos.api.v1 import core_pb2
from tests.support.components import require_binary
from tests.e2e.manifests import spread_web
from tests.support.control import ControlServer
from tests.support.etcd import running_etcd
from tests.support.runtime_pods import remove_everything
from tests.support.tcp_relay import TcpRelay

pytestmark = pytest.mark.etcd

GRACE_SECONDS = 3
TOLERATION_SECONDS = 2
NODES = ("node-a", "node-b")
DEPLOYMENT = spread_web(grace_seconds=2)


async def eventually(probe, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := await probe()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.1)
    return result


def is_leading(server: ControlServer) -> bool:
    try:
        text = urllib.request.urlopen(server.metrics_url, timeout=2).read().decode()
    except OSError:
        return False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sampan_leader_is_leader":
                return sample.value == 1.0
    return False


class Cluster:
    """Three etcd members, three control replicas, two agents behind cuttable relays."""

    def __init__(self, tmp_path: Path, etcd) -> None:
        self.tmp_path = tmp_path
        self.etcd = etcd
        self.replicas = [
            ControlServer(tmp_path / f"control-{i}", store_url="etcd://" + ",".join(etcd.endpoints), extra_args=(
                "--identity", f"control-{i}",
                "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
                "--leader-elect-retry-period", "0.5",
                f"--node-monitor-grace-period={GRACE_SECONDS}", "--node-monitor-period=0.2",
                "--node-eviction-rate=10", f"--default-toleration-seconds={TOLERATION_SECONDS}"))
            for i in range(3)]
        self.relays: dict[str, list[TcpRelay]] = {}
        self.agents: dict[str, Agent] = {}

    @property
    def endpoints(self) -> str:
        return ",".join(replica.address for replica in self.replicas)

    async def start(self) -> None:
        for replica in self.replicas:
            await asyncio.to_thread(replica.start)
        for name in NODES:
            self.relays[name] = [await TcpRelay("127.0.0.1", replica.port).start() for replica in self.replicas]
            server = ",".join(relay.address for relay in self.relays[name])
            self.agents[name] = Agent(AgentConfig(
                server=server, node_name=name, data_dir=str(self.tmp_path / name), runtime="process",
                metrics_listen="", listen="127.0.0.1:0", lease_interval=0.5, status_interval=0.5))
            await self.agents[name].start()

    async def partition(self, node: str) -> None:
        for relay in self.relays[node]:
            await relay.cut()

    async def heal(self, node: str) -> None:
        for relay in self.relays[node]:
            await relay.heal()

    def leader(self) -> ControlServer | None:
        leading = [replica for replica in self.replicas if replica.process and replica.process.poll() is None
                   and is_leading(replica)]
        return leading[0] if len(leading) == 1 else None

    async def close(self) -> None:
        for agent in self.agents.values():
            try:
                await asyncio.wait_for(agent.stop(), 30)
            except TimeoutError:
                print("an agent did not stop within 30 s")  # its pods are removed below all the same
        for relays in self.relays.values():
            for relay in relays:
                await relay.close()
        for replica in self.replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.kill()
        for name in NODES:
            await remove_everything(ProcessRuntime(str(self.tmp_path / name / "process-runtime")))


@pytest.fixture
async def cluster(tmp_path: Path):
    binary = require_binary("etcd", package="etcd-server")
    with running_etcd(binary=binary, members=3) as etcd:
        cluster = Cluster(tmp_path, etcd)
        try:
            await cluster.start()
            yield cluster
        finally:
            await cluster.close()


async def web_pods(api: Client) -> list[core_pb2.Pod]:
    pods, _ = await api.list("Pod", namespace="default", label_selector="app=web")
    return pods


async def running(api: Client) -> dict[str, str]:
    """name -> node of the Deployment's pods that run and are not terminating."""
    return {p.metadata.name: p.spec.node_name for p in await web_pods(api)
            if p.status.phase == "Running" and not p.metadata.HasField("deletion_timestamp")}


async def sandboxes(cluster: Cluster) -> set[str]:
    """The names of the Deployment's pods that the agents' runtimes still have."""
    names: set[str] = set()
    for node in NODES:
        runtime = ProcessRuntime(str(cluster.tmp_path / node / "process-runtime"))
        names |= {s.pod_name for s in await runtime.list_sandboxes() if s.pod_name.startswith("web-")}
    return names


async def start_web(api: Client) -> dict[str, str]:
    await api.create(manifest.to_message(yaml.safe_load(DEPLOYMENT)))

    async def spread():
        placed = await running(api)
        return placed if len(placed) == 4 and set(placed.values()) == set(NODES) else None

    return await eventually(spread, timeout=60, what="four pods running on both nodes")


async def scale(api: Client, replicas: int) -> None:
    await api.patch("Deployment", "web", {"spec": {"replicas": replicas}}, namespace="default")


async def test_the_cluster_carries_on_when_its_leader_is_killed_and_an_etcd_member_stops(cluster: Cluster):
    async with Client.connect(cluster.endpoints) as api:
        leader = await eventually(lambda: asyncio.to_thread(cluster.leader), timeout=30, what="one leader")
        before = await start_web(api)

        leader.kill()
        killed_at = time.monotonic()
        await scale(api, 6)  # served by a surviving replica; acted on by the next leader

        async def six_running():
            placed = await running(api)
            return placed if len(placed) == 6 else None

        after = await eventually(six_running, timeout=60, what="six pods after the takeover")
        took = time.monotonic() - killed_at
        lease = await api.get("Lease", LEASE_NAME, namespace=LEASE_NAMESPACE)
        print(f"\nleader {leader.address} killed; {lease.spec.holder_identity} leads; "
              f"the scaled Deployment ran 6 pods {took:.1f}s after the kill")
        assert lease.spec.holder_identity != f"control-{cluster.replicas.index(leader)}"
        assert set(before) <= set(after), "no pod was lost"
        assert len(await web_pods(api)) == 6, "no pod was duplicated"

        # One etcd member stops (the first, which every replica's store client uses first): the
        # store moves to the other two, and writes go on. The time until the first write succeeds
        # is printed; a write that meets the failover may be answered UNAVAILABLE, and is retried.
        cluster.etcd.stop(cluster.etcd.members[0])
        stopped_at = time.monotonic()
        config_map = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data={"written": "after"})
        config_map.metadata.name, config_map.metadata.namespace = "after-etcd-member-stopped", "default"

        async def written(write) -> bool:
            """write() went through; False while the store's failover holds it (UNAVAILABLE, or
            past the client's deadline), to be tried again."""
            try:
                await write()
            except errors.AlreadyExistsError:
                return True  # a retried create whose first answer was lost
            except errors.APIError as err:
                if err.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return False
                raise
            return True

        await eventually(lambda: written(lambda: api.create(config_map)), timeout=120,
                         what="a write with an etcd member down")
        print(f"first write {time.monotonic() - stopped_at:.1f}s after the etcd member stopped")
        await eventually(lambda: written(lambda: scale(api, 2)), timeout=120,
                         what="the Deployment's scale written with an etcd member down")

        async def two_left():
            # The controllers' writes: the ReplicaSet scaled down and all but two pods deleted.
            live = [p for p in await web_pods(api) if not p.metadata.HasField("deletion_timestamp")]
            return len(live) == 2

        await eventually(two_left, timeout=120, what="the Deployment scaled down to two with an etcd member down")

        async def deleted_ones_stopped():
            # The agents' part: each learns of the deletions on its node, stops those pods, and
            # confirms it, so that they leave the API.
            left = {p.metadata.name for p in await web_pods(api)}
            return len(left) == 2 and await sandboxes(cluster) <= left

        await eventually(deleted_ones_stopped, timeout=60,
                         what="the agents stopped the deleted pods and they left the API, with an etcd member down")


async def test_a_partitioned_agent_keeps_its_pods_for_a_short_cut_and_loses_them_for_a_long_one(cluster: Cluster):
    runtime_b = ProcessRuntime(str(cluster.tmp_path / "node-b" / "process-runtime"))
    async with Client.connect(cluster.endpoints) as api:
        before = await start_web(api)
        uids = {p.metadata.name: p.metadata.uid for p in await web_pods(api)}
        on_b = {name for name, node in before.items() if node == "node-b"}

        # Shorter than the grace period: nothing happens to its pods.
        await cluster.partition("node-b")
        await asyncio.sleep(GRACE_SECONDS / 2)
        await cluster.heal("node-b")
        await asyncio.sleep(GRACE_SECONDS)
        pods = await web_pods(api)
        assert {p.metadata.name: p.metadata.uid for p in pods} == uids, "no pod was replaced"
        assert not any(p.metadata.HasField("deletion_timestamp") for p in pods), "no pod was evicted"

        # Longer: its pods are evicted and recreated on node-a, while their processes still run on node-b.
        await cluster.partition("node-b")

        async def all_on_a():
            placed = await running(api)
            return placed if len(placed) == 4 and set(placed.values()) == {"node-a"} else None

        await eventually(all_on_a, timeout=60, what="the cut-off node's pods recreated on node-a")
        still_running = {s.pod_name for s in await runtime_b.list_sandboxes()}
        assert on_b <= still_running, "during the partition the old pods still run on their node"

        # Healed: the agent learns its pods were evicted, stops them, and they leave the API.
        await cluster.heal("node-b")

        async def old_ones_gone():
            names = {p.metadata.name for p in await web_pods(api)}
            return not (names & on_b) and not ({s.pod_name for s in await runtime_b.list_sandboxes()} & on_b)

        await eventually(old_ones_gone, timeout=60, what="the old pods stopped on node-b and gone from the API")
        async def node_b_ready():
            node_b = await api.get("Node", "node-b")
            return any(c.type == "Ready" and c.status == "True" for c in node_b.status.conditions)

        await eventually(node_b_ready, timeout=30, what="node-b Ready again after the partition healed")
