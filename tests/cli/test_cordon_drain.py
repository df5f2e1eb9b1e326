"""``sampan cordon``, ``uncordon`` and ``drain`` against a real control service,
with kubectl's lines: cordoning and its "already" forms, missing nodes, the
flag rules; drain refusing unmanaged pods (--force), DaemonSet pods
(--ignore-daemonsets) and emptyDir pods (--delete-emptydir-data) with
kubectl's messages, evicting the rest and waiting until they are gone (the
test confirms the deletions, as the node's agent would), and giving up at
--timeout. The DaemonSet case uses the real DaemonSet controller and
scheduler on a node registered by the agent's own code."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml
from google.protobuf.message import Message

from agent.node import MachineFacts, NodeIdentity, register_node
from control.api import errors, manifest
from control.client import Client
from protos.api.v1 import core_pb2, meta_pb2
from tests.cli import sampan


async def create_node(server, name: str, *, labels: dict[str, str] | None = None) -> None:
    async with Client.connect(server.address) as api:
        node = core_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = name
        node.metadata.labels.update(labels or {})
        await api.create(node)


async def unschedulable(server, name: str) -> bool:
    async with Client.connect(server.address) as api:
        return bool((await api.get("Node", name)).spec.unschedulable)


async def cli(capsys, server, *argv: str):
    """Run the CLI in a thread: it runs its own event loop, and the test's keeps serving meanwhile."""
    return await asyncio.to_thread(sampan, capsys, server, *argv)


# ---------------------------------------------------------------- cordon / uncordon


async def test_cordon_and_uncordon_say_what_they_did(capsys, control_server):
    await create_node(control_server, "n1")
    assert (await cli(capsys, control_server, "cordon", "n1")).out == "node/n1 cordoned\n"
    assert await unschedulable(control_server, "n1")
    assert (await cli(capsys, control_server, "cordon", "n1")).out == "node/n1 already cordoned\n"
    assert (await cli(capsys, control_server, "uncordon", "n1")).out == "node/n1 uncordoned\n"
    assert not await unschedulable(control_server, "n1")
    assert (await cli(capsys, control_server, "uncordon", "n1")).out == "node/n1 already uncordoned\n"


async def test_cordon_by_selector(capsys, control_server):
    await create_node(control_server, "a", labels={"pool": "blue"})
    await create_node(control_server, "b", labels={"pool": "blue"})
    await create_node(control_server, "c", labels={"pool": "green"})
    result = await cli(capsys, control_server, "cordon", "-l", "pool=blue")
    assert result.lines == ["node/a cordoned", "node/b cordoned"]
    assert not await unschedulable(control_server, "c")


async def test_cordoning_a_missing_node_is_not_found(capsys, control_server):
    await create_node(control_server, "n1")
    result = await cli(capsys, control_server, "cordon", "ghost", "n1")
    assert (result.code, result.out) == (1, "node/n1 cordoned\n")
    assert result.err == 'Error from server (NotFound): nodes "ghost" not found\n'


def test_cordon_needs_exactly_one_way_to_name_nodes(capsys, control_server):
    assert sampan(capsys, control_server, "cordon").err == (
        "error: USAGE: cordon NODE [flags] (see 'sampan cordon --help')\n")
    assert sampan(capsys, control_server, "drain", "n1", "-l", "a=b").err == (
        "error: cannot specify both a node name and a --selector option\n")


# ---------------------------------------------------------------- drain


def pod(name: str, node: str, *, owner: Message | None = None, empty_dir: bool = False) -> core_pb2.Pod:
    obj = core_pb2.Pod(api_version="v1", kind="Pod")
    obj.metadata.name = name
    obj.metadata.namespace = "default"
    obj.spec.node_name = node
    obj.spec.containers.add(name="app", image="busybox:1.36")
    if empty_dir:
        obj.spec.volumes.add(name="scratch").empty_dir.SetInParent()
    if owner is not None:
        obj.metadata.owner_references.append(meta_pb2.OwnerReference(
            api_version="v1", kind=owner.kind, name=owner.metadata.name, uid=owner.metadata.uid, controller=True))
    return obj


async def owner(api: Client) -> core_pb2.ConfigMap:
    """A stand-in controller: drain only asks whether a pod has one (the garbage collector sees it exists)."""
    obj = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    obj.metadata.name = "controller"
    obj.metadata.namespace = "default"
    try:
        return await api.create(obj)
    except errors.AlreadyExistsError:
        return await api.get("ConfigMap", "controller", namespace="default")


async def act_as_node(api: Client, node: str) -> None:
    """Confirm the deletion of every pod of node that is marked for deletion, as its agent would."""
    while True:
        pods, _ = await api.list("Pod", field_selector=f"spec.nodeName={node}")
        for item in pods:
            if item.metadata.HasField("deletion_timestamp"):
                try:
                    await api.delete("Pod", item.metadata.name, namespace=item.metadata.namespace,
                                     grace_period_seconds=0)
                except errors.NotFoundError:
                    pass
        await asyncio.sleep(0.05)


async def pod_names(api: Client) -> list[str]:
    pods, _ = await api.list("Pod", namespace="default")
    return sorted(item.metadata.name for item in pods)


async def test_drain_evicts_managed_pods_and_waits_until_they_are_gone(capsys, control_server):
    await create_node(control_server, "n1")
    async with Client.connect(control_server.address) as api:
        controller = await owner(api)
        await api.create(pod("web-1", "n1", owner=controller))
        await api.create(pod("web-2", "n1", owner=controller))
        node = asyncio.create_task(act_as_node(api, "n1"))
        try:
            result = await cli(capsys, control_server, "drain", "n1")
        finally:
            node.cancel()
        assert result.code == 0, result.err
        assert result.lines[0] == "node/n1 cordoned"
        assert sorted(result.lines[1:3]) == ["evicting pod default/web-1", "evicting pod default/web-2"]
        assert sorted(result.lines[3:5]) == ["pod/web-1 evicted", "pod/web-2 evicted"]
        assert result.lines[5:] == ["node/n1 drained"]
        assert await pod_names(api) == []


async def test_drain_refuses_pods_without_a_controller_unless_forced(capsys, control_server):
    await create_node(control_server, "n1")
    async with Client.connect(control_server.address) as api:
        await api.create(pod("lonely", "n1"))
        refused = await cli(capsys, control_server, "drain", "n1")
        assert (refused.code, refused.out) == (1, "node/n1 cordoned\n")
        assert refused.err.splitlines() == [
            'error: unable to drain node "n1" due to error: cannot delete Pods that declare no controller '
            "(use --force to override): default/lonely, continuing command...",
            "There are pending nodes to be drained:",
            " n1",
            "error: cannot delete Pods that declare no controller (use --force to override): default/lonely",
        ]
        assert await pod_names(api) == ["lonely"]

        node = asyncio.create_task(act_as_node(api, "n1"))
        try:
            forced = await cli(capsys, control_server, "drain", "n1", "--force")
        finally:
            node.cancel()
        assert forced.code == 0, forced.err
        assert forced.err == "Warning: deleting Pods that declare no controller: default/lonely\n"
        assert forced.lines == ["node/n1 already cordoned", "evicting pod default/lonely", "pod/lonely evicted",
                                "node/n1 drained"]


async def test_drain_refuses_pods_with_local_storage_unless_told(capsys, control_server):
    await create_node(control_server, "n1")
    async with Client.connect(control_server.address) as api:
        await api.create(pod("cache", "n1", owner=await owner(api), empty_dir=True))
        refused = await cli(capsys, control_server, "drain", "n1")
        assert refused.code == 1
        assert refused.err.splitlines()[-1] == (
            "error: cannot delete Pods with local storage (use --delete-emptydir-data to override): default/cache")
        node = asyncio.create_task(act_as_node(api, "n1"))
        try:
            allowed = await cli(capsys, control_server, "drain", "n1", "--delete-emptydir-data")
        finally:
            node.cancel()
        assert allowed.code == 0, allowed.err
        assert allowed.err == "Warning: deleting Pods with local storage: default/cache\n"


async def test_drain_gives_up_at_its_timeout(capsys, control_server):
    await create_node(control_server, "n1")
    async with Client.connect(control_server.address) as api:
        await api.create(pod("stuck", "n1", owner=await owner(api)))
    result = await cli(capsys, control_server, "drain", "n1", "--timeout", "1s")
    assert result.code == 1
    assert result.lines == ["node/n1 cordoned", "evicting pod default/stuck"]
    assert result.err.splitlines()[-1] == (
        'error: error when waiting for pod "stuck" terminating: global timeout reached: 1s')


DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logger}
spec:
  selector: {matchLabels: {app: logger}}
  template:
    metadata: {labels: {app: logger}}
    spec:
      containers: [{name: logger, image: busybox:1.36, command: [sleep, "3600"]}]
"""


async def test_drain_leaves_daemonset_pods_only_when_told_to(capsys, control_server, tmp_path: Path):
    async with Client.connect(control_server.address) as api:
        facts = await asyncio.to_thread(MachineFacts.read, data_dir=str(tmp_path), node_ip="127.0.0.1")
        await register_node(api, NodeIdentity(name="n1"), facts)
        await api.create(manifest.to_message(yaml.safe_load(DAEMONSET)))
        deadline = time.monotonic() + 30
        while True:
            pods, _ = await api.list("Pod", namespace="default", field_selector="spec.nodeName=n1")
            if pods:
                break
            assert time.monotonic() < deadline, "the DaemonSet's pod was never placed on n1"
            await asyncio.sleep(0.1)
        daemon_pod = pods[0].metadata.name

    refused = await cli(capsys, control_server, "drain", "n1")
    assert refused.code == 1
    assert refused.err.splitlines()[-1] == (
        "error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
        f"default/{daemon_pod}")
    ignored = await cli(capsys, control_server, "drain", "n1", "--ignore-daemonsets")
    assert ignored.code == 0, ignored.err
    assert ignored.err == f"Warning: ignoring DaemonSet-managed Pods: default/{daemon_pod}\n"
    assert ignored.lines == ["node/n1 already cordoned", "node/n1 drained"]
    async with Client.connect(control_server.address) as api:
        assert daemon_pod in await pod_names(api)


@pytest.mark.parametrize("duration", ["soon", "-1s"])
def test_drain_refuses_a_bad_timeout(capsys, control_server, duration):
    result = sampan(capsys, control_server, "drain", "n1", f"--timeout={duration}")
    assert (result.code, result.out) == (1, "")
    assert result.err == f'error: invalid duration "{duration}" (examples: 30s, 1m30s, 500ms)\n'
