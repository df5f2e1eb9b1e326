"""Simulated nodes (``sampan simulate-nodes``): many Ready nodes from one
process, whose pods run without containers.

End to end, the command runs as a process against an in-process control
service (whose scheduler binds the pods): the nodes register as the flags
say, pods bound to them become Running and Ready with an address from their
node's pod CIDR, deletions complete, and leases are renewed. The pieces
(addresses, CIDRs, flag checks) are tested on their own below."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
import time

import pytest

from agent.simulated import PodAddresses, SimulatedNodesConfig, cidr_for, parse_taints, simulated_pod_status
from control.api import errors
from control.api.manifest import to_message
from protos.api.v1 import core_pb2

COUNT = 3


@contextlib.asynccontextmanager
async def simulated_nodes(service, *flags: str):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.cli.main", "--server", f"127.0.0.1:{service.port}", "simulate-nodes",
        *flags, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def eventually(check, *, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except (AssertionError, errors.NotFoundError):
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.1)


def ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def ready_nodes(api, count: int):
    items, _ = await api.list("Node", label_selector="sampan.io/simulated=true")
    return sorted(items, key=lambda n: n.metadata.name) if sum(map(ready, items)) == count else None


def pod(name: str, **spec) -> core_pb2.Pod:
    body = {"containers": [{"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "100m"}},
                            "readinessProbe": {"exec": {"command": ["true"]}}}], **spec}
    return to_message({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                       "spec": body})


async def test_nodes_register_ready_with_the_flags_resources_labels_and_taints(service, api):
    async with simulated_nodes(service, "--count", str(COUNT), "--name-prefix", "sim-", "--cpu", "8",
                               "--memory", "32Gi", "--pods-per-node", "50", "--labels", "zone=a,tier=web",
                               "--taints", "dedicated=sim:PreferNoSchedule"):
        nodes = await eventually(lambda: ready_nodes(api, COUNT))
    assert [n.metadata.name for n in nodes] == ["sim-0", "sim-1", "sim-2"]
    for node in nodes:
        assert {"cpu": "8", "memory": "32Gi", "pods": "50"}.items() <= dict(node.status.allocatable).items()
        assert node.metadata.labels["zone"] == "a" and node.metadata.labels["tier"] == "web"
        assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [("dedicated", "sim", "PreferNoSchedule")]
    cidrs = [ipaddress.ip_network(n.spec.pod_cidr) for n in nodes]
    assert len(set(cidrs)) == COUNT and not any(a.overlaps(b) for a in cidrs for b in cidrs if a != b)
    addresses = [next(a.address for a in n.status.addresses if a.type == "InternalIP") for n in nodes]
    assert len(set(addresses)) == COUNT


async def test_bound_pods_run_and_deleted_pods_finish_without_containers(service, api):
    async with simulated_nodes(service, "--count", str(COUNT)):
        nodes = {n.metadata.name: n for n in await eventually(lambda: ready_nodes(api, COUNT))}
        await api.create(pod("web", initContainers=[{"name": "setup", "image": "busybox"}]))

        async def running():
            current = await api.get("Pod", "web", namespace="default")
            return current if current.status.phase == "Running" else None

        web = await eventually(running)
        node = nodes[web.spec.node_name]
        conditions = {c.type: c.status for c in web.status.conditions}
        assert conditions == {"Initialized": "True", "Ready": "True", "ContainersReady": "True",
                              "PodScheduled": "True"}
        assert ipaddress.ip_address(web.status.pod_ip) in ipaddress.ip_network(node.spec.pod_cidr)
        assert web.status.host_ip == next(a.address for a in node.status.addresses if a.type == "InternalIP")
        (app,) = web.status.container_statuses
        assert app.ready and app.started and app.state.HasField("running")
        assert app.container_id.startswith("simulated://")
        (setup,) = web.status.init_container_statuses
        assert setup.state.terminated.reason == "Completed"

        _, gone = await api.delete("Pod", "web", namespace="default")
        assert not gone  # bound: graceful, left to its node

        async def deleted():
            try:
                await api.get("Pod", "web", namespace="default")
            except errors.NotFoundError:
                return True
            return False

        await eventually(deleted)


async def test_leases_are_renewed_every_interval(service, api):
    async with simulated_nodes(service, "--count", "2", "--lease-interval", "0.5"):
        await eventually(lambda: ready_nodes(api, 2))
        first = await api.get("Lease", "hollow-1", namespace="kube-node-lease")

        async def renewed():
            lease = await api.get("Lease", "hollow-1", namespace="kube-node-lease")
            return lease.spec.renew_time > first.spec.renew_time

        await eventually(renewed, timeout=5)
    assert first.spec.holder_identity == "hollow-1" and first.spec.lease_duration_seconds == 40


async def test_bad_flags_are_refused_naming_the_flag(service):
    async with simulated_nodes(service, "--count", "2", "--memory", "lots") as process:
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert "--memory: 'lots' is not a usable quantity" in stderr.decode()


def test_pod_addresses_come_from_the_cidr_and_are_reused_once_freed():
    addresses = PodAddresses(ipaddress.ip_network("10.128.0.0/30"))  # room for one pod
    assert addresses.allocate("a") == "10.128.0.2"
    assert addresses.allocate("a") == "10.128.0.2"
    assert addresses.allocate("b") == ""
    addresses.release("a")
    assert addresses.allocate("b") == "10.128.0.2"


def test_each_node_gets_its_own_cidr_big_enough_for_its_pods():
    assert str(cidr_for(0, 110)) == "10.128.0.0/24"
    assert str(cidr_for(1, 110)) == "10.128.1.0/24"
    assert str(cidr_for(0, 300)) == "10.128.0.0/23"
    assert cidr_for(40000, 110) is None  # beyond the simulated pod network


def test_taints_and_settings_are_checked():
    assert [(t.key, t.value, t.effect) for t in parse_taints("a=b:NoSchedule,c:NoExecute")] == [
        ("a", "b", "NoSchedule"), ("c", "", "NoExecute")]
    with pytest.raises(ValueError, match="--taints: expected KEY"):
        parse_taints("a=b:Sometimes")
    with pytest.raises(ValueError, match="--count: must be at least 1"):
        SimulatedNodesConfig(count=0).check()
    with pytest.raises(ValueError, match="--name-prefix"):
        SimulatedNodesConfig(count=1, name_prefix="Bad_").check()


def test_a_sidecar_keeps_running_while_ordinary_init_containers_complete():
    spec = pod("web", initContainers=[{"name": "setup", "image": "busybox"},
                                      {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}])
    spec.metadata.uid = "u1"
    status = simulated_pod_status(spec, host_ip="100.64.0.1", pod_ip="10.128.0.2", now=time.time())
    states = {s.name: next(k for k in ("running", "terminated", "waiting") if s.state.HasField(k))
              for s in status.init_container_statuses}
    assert states == {"setup": "terminated", "proxy": "running"}
    assert status.phase == "Running" and status.pod_ip == "10.128.0.2"
