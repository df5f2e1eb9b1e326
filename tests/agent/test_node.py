"""The agent's Node: registration and adoption, the heartbeat Lease, and the
node status with its pressure conditions."""

from __future__ import annotations

import dataclasses

import pytest

from agent.node import (
    LEASE_NAMESPACE,
    MachineFacts,
    NodeIdentity,
    NodeLease,
    NodeStatusReporter,
    node_status,
    register_node,
)
from control.api import errors
from control.api.metrics_endpoints import AGENT_METRICS, PROXY_METRICS

FACTS = MachineFacts(
    hostname="host-a", internal_ip="10.1.2.3", cpus=4, memory_total_bytes=8 << 30,
    memory_available_bytes=6 << 30, disk_total_bytes=100 << 30, disk_free_bytes=50 << 30,
    pids_max=32768, pids_in_use=200, kernel_version="6.1.0", os_image="Debian GNU/Linux 12 (bookworm)",
    architecture="amd64", machine_id="m", boot_id="b",
)
IDENTITY = NodeIdentity(name="node-a", labels={"disk": "ssd"}, pod_cidr="10.244.1.0/24",
                        runtime_version="containerd://1.6.20")


async def test_registration_creates_a_ready_node_with_capacity_and_labels(api):
    node = await register_node(api, IDENTITY, FACTS)
    assert node.metadata.labels["kubernetes.io/hostname"] == "node-a"
    assert node.metadata.labels["disk"] == "ssd"
    assert node.spec.pod_cidr == "10.244.1.0/24"
    assert node.status.capacity["cpu"] == "4"
    assert node.status.capacity["pods"] == "110"
    conditions = {c.type: c.status for c in node.status.conditions}
    assert conditions == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    assert [(a.type, a.address) for a in node.status.addresses] == [("InternalIP", "10.1.2.3"), ("Hostname", "host-a")]
    assert node.status.node_info.container_runtime_version == "containerd://1.6.20"


async def test_registration_adopts_an_existing_node_and_keeps_its_taints(api):
    node = await register_node(api, IDENTITY, FACTS)
    # A patch, not an update: the node lifecycle controller may be writing the Node too.
    await api.patch("Node", node.metadata.name, {"spec": {
        "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}], "unschedulable": True}})
    again = await register_node(api, dataclasses.replace(IDENTITY, labels={"disk": "nvme"}), FACTS)
    assert again.metadata.labels["disk"] == "nvme"
    # The operator's taint stays (beside any the node lifecycle controller adds, e.g. unschedulable).
    assert "dedicated" in [t.key for t in again.spec.taints]
    assert again.spec.unschedulable


async def test_a_process_runtime_node_says_it_has_no_isolation(api):
    node = await register_node(api, dataclasses.replace(IDENTITY, runtime_isolated=False), FACTS)
    assert "process runtime" in node.metadata.annotations["sampan.io/runtime-isolation"]


async def test_the_agent_metrics_address_is_annotated_and_dropped_when_metrics_are_off(api):
    node = await register_node(api, dataclasses.replace(IDENTITY, metrics_address="0.0.0.0:10255"), FACTS)
    assert node.metadata.annotations[AGENT_METRICS] == "0.0.0.0:10255"
    await api.patch("Node", "node-a", {"metadata": {"annotations": {PROXY_METRICS: "0.0.0.0:10256"}}})
    again = await register_node(api, IDENTITY, FACTS)  # restarted with --metrics-listen ''
    assert AGENT_METRICS not in again.metadata.annotations
    assert again.metadata.annotations[PROXY_METRICS] == "0.0.0.0:10256"  # the proxy's key is not the agent's


async def test_lease_is_created_then_renewed(api):
    lease = NodeLease(api, "node-a")
    await lease.renew()
    first = await api.get("Lease", "node-a", namespace=LEASE_NAMESPACE)
    await lease.renew()
    second = await api.get("Lease", "node-a", namespace=LEASE_NAMESPACE)
    assert second.spec.holder_identity == "node-a"
    assert second.spec.renew_time >= first.spec.renew_time
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)


async def test_a_lease_changed_or_deleted_elsewhere_is_taken_back_on_the_next_renewal(api):
    lease = NodeLease(api, "node-a")
    await lease.renew()
    taken = await api.get("Lease", "node-a", namespace=LEASE_NAMESPACE)
    taken.spec.holder_identity = "someone-else"
    await api.update(taken)
    with pytest.raises(errors.ConflictError):
        await lease.renew()  # the copy it last wrote is stale
    await lease.renew()
    assert (await api.get("Lease", "node-a", namespace=LEASE_NAMESPACE)).spec.holder_identity == "node-a"
    await api.delete("Lease", "node-a", namespace=LEASE_NAMESPACE)
    with pytest.raises(errors.NotFoundError):
        await lease.renew()
    await lease.renew()
    assert (await api.get("Lease", "node-a", namespace=LEASE_NAMESPACE)).spec.holder_identity == "node-a"


def test_memory_and_disk_pressure_follow_the_eviction_thresholds():
    starved = dataclasses.replace(FACTS, memory_available_bytes=50 << 20, disk_free_bytes=5 << 30)
    status = node_status(IDENTITY, starved)
    conditions = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conditions["MemoryPressure"] == ("True", "KubeletHasInsufficientMemory")
    assert conditions["DiskPressure"] == ("True", "KubeletHasDiskPressure")


def test_condition_transition_time_is_kept_while_the_status_holds():
    first = node_status(IDENTITY, FACTS, now="2026-01-01T00:00:00Z")
    second = node_status(IDENTITY, FACTS, previous=first, now="2026-01-01T00:00:10Z")
    ready = next(c for c in second.conditions if c.type == "Ready")
    assert ready.last_transition_time == "2026-01-01T00:00:00Z"
    assert ready.last_heartbeat_time == "2026-01-01T00:00:10Z"
    not_ready = node_status(IDENTITY, FACTS, previous=second, runtime_ready=False, now="2026-01-01T00:00:20Z")
    flipped = next(c for c in not_ready.conditions if c.type == "Ready")
    assert (flipped.status, flipped.last_transition_time) == ("False", "2026-01-01T00:00:20Z")


async def test_status_reporter_rewrites_the_status(api, tmp_path):
    await register_node(api, IDENTITY, FACTS)
    reporter = NodeStatusReporter(api, IDENTITY, data_dir=str(tmp_path), node_ip="10.9.9.9")
    await reporter.report()
    node = await api.get("Node", "node-a")
    assert node.status.addresses[0].address == "10.9.9.9"
