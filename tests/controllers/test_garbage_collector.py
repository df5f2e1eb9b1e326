"""The garbage collector and the delete verb's propagation policies, on a real
control service (its garbage collector running):

- Background: dependents whose owners are all gone are deleted; one with
  another owner survives (and loses the reference to the gone one);
- Foreground: the owner waits, marked, until its blocking dependents are
  gone, a graceful pod included; grandchildren go before children;
- Orphan: the owner goes, its dependents stay without the reference;
- owners are identified by uid: a dependent of an owner deleted and created
  again under the same name is collected, and so is a dependent created
  after its owner was already gone;
- an owner not yet in the collector's cache is looked up before anything is
  deleted (a collector whose informers never ran keeps the dependent);
- namespace deletion still empties a namespace of owners and dependents,
  a Deployment's ReplicaSet and pods included; deleting a Deployment in the
  foreground takes its ReplicaSet and pods with it.
"""

from __future__ import annotations

import asyncio
import time

from google.protobuf.message import Message

from control.api import errors, manifest
from control.client import Client
from control.controllers.garbage_collector import GarbageCollector
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext
from protos.api.v1 import core_pb2, meta_pb2


def reference(owner: Message, *, block: bool = False, controller: bool = False) -> meta_pb2.OwnerReference:
    return meta_pb2.OwnerReference(api_version="v1", kind=owner.kind, name=owner.metadata.name,
                                   uid=owner.metadata.uid, block_owner_deletion=block, controller=controller)


def config_map(name: str, *owners: meta_pb2.OwnerReference, namespace: str = "default",
               finalizers: tuple[str, ...] = ()) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = namespace
    cm.metadata.owner_references.extend(owners)
    cm.metadata.finalizers.extend(finalizers)
    return cm


def bound_pod(name: str, *owners: meta_pb2.OwnerReference) -> core_pb2.Pod:
    """A pod bound to a node that no agent runs: its deletion waits for a confirmation the test gives."""
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.metadata.owner_references.extend(owners)
    pod.spec.node_name = "node-without-agent"
    pod.spec.containers.add(name="app", image="busybox:1.36")
    return pod


async def exists(api: Client, kind: str, name: str, *, namespace: str = "default") -> bool:
    try:
        await api.get(kind, name, namespace=namespace)
        return True
    except errors.NotFoundError:
        return False


async def eventually(check, *, timeout: float = 15.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.05)


async def gone(api: Client, kind: str, name: str, *, namespace: str = "default") -> None:
    async def check() -> bool:
        return not await exists(api, kind, name, namespace=namespace)

    await eventually(check, what=f"{kind} {name} deleted")


async def settle(api: Client) -> None:
    """Give the collector time to act on what it has seen: a marker object's full round trip."""
    marker_owner = await api.create(config_map(f"marker-{time.monotonic_ns()}"))
    marker = await api.create(config_map(f"{marker_owner.metadata.name}-dep", reference(marker_owner)))
    await api.delete("ConfigMap", marker_owner.metadata.name, namespace="default")
    await gone(api, "ConfigMap", marker.metadata.name)


# ---------------------------------------------------------------- background


async def test_background_deletion_collects_the_dependents(api):
    owner = await api.create(config_map("owner"))
    await api.create(config_map("child-a", reference(owner)))
    await api.create(config_map("child-b", reference(owner)))
    _, deleted = await api.delete("ConfigMap", "owner", namespace="default", propagation_policy="Background")
    assert deleted, "a background deletion removes the owner at once"
    await gone(api, "ConfigMap", "child-a")
    await gone(api, "ConfigMap", "child-b")


async def test_no_policy_means_background(api):
    owner = await api.create(config_map("owner"))
    await api.create(config_map("child", reference(owner)))
    _, deleted = await api.delete("ConfigMap", "owner", namespace="default")
    assert deleted
    await gone(api, "ConfigMap", "child")


async def test_a_dependent_with_a_remaining_owner_survives_and_drops_the_gone_one(api):
    first = await api.create(config_map("first"))
    second = await api.create(config_map("second"))
    await api.create(config_map("shared", reference(first), reference(second)))
    await api.delete("ConfigMap", "first", namespace="default")

    async def reference_dropped() -> bool:
        shared = await api.get("ConfigMap", "shared", namespace="default")
        return [ref.uid for ref in shared.metadata.owner_references] == [second.metadata.uid]

    await eventually(reference_dropped, what="the reference to the deleted owner removed")
    await api.delete("ConfigMap", "second", namespace="default")
    await gone(api, "ConfigMap", "shared")


async def test_collection_reaches_grandchildren(api):
    owner = await api.create(config_map("owner"))
    child = await api.create(config_map("child", reference(owner)))
    await api.create(config_map("grandchild", reference(child)))
    await api.delete("ConfigMap", "owner", namespace="default")
    await gone(api, "ConfigMap", "grandchild")


async def test_an_owner_of_another_kind_and_scope_counts(api):
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = "owner-node"
    node = await api.create(node)
    await api.create(config_map("per-node", reference(node)))
    await settle(api)
    assert await exists(api, "ConfigMap", "per-node"), "a cluster-scoped owner that exists keeps its dependent"
    await api.delete("Node", "owner-node")
    await gone(api, "ConfigMap", "per-node")


# ---------------------------------------------------------------- foreground


async def test_foreground_deletion_waits_for_blocking_dependents(api):
    owner = await api.create(config_map("owner"))
    await api.create(bound_pod("worker", reference(owner, block=True, controller=True)))
    marked, deleted = await api.delete("ConfigMap", "owner", namespace="default", propagation_policy="Foreground")
    assert not deleted
    assert marked.metadata.HasField("deletion_timestamp")
    assert "foregroundDeletion" in marked.metadata.finalizers

    async def pod_terminating() -> bool:
        pod = await api.get("Pod", "worker", namespace="default")
        return pod.metadata.HasField("deletion_timestamp")

    await eventually(pod_terminating, what="the dependent pod marked for deletion")
    await settle(api)
    assert await exists(api, "ConfigMap", "owner"), "the owner waits while its blocking pod is terminating"

    # The node confirms the pod stopped; only then does the owner go.
    await api.delete("Pod", "worker", namespace="default", grace_period_seconds=0)
    await gone(api, "Pod", "worker")
    await gone(api, "ConfigMap", "owner")


async def test_foreground_deletion_does_not_wait_for_non_blocking_dependents(api):
    owner = await api.create(config_map("owner"))
    await api.create(bound_pod("worker", reference(owner, block=False)))
    await api.delete("ConfigMap", "owner", namespace="default", propagation_policy="Foreground")
    await gone(api, "ConfigMap", "owner")
    pod = await api.get("Pod", "worker", namespace="default")
    assert pod.metadata.HasField("deletion_timestamp"), "the dependent is deleted all the same"


async def test_foreground_deletion_removes_grandchildren_before_the_owner(api):
    owner = await api.create(config_map("owner"))
    child = await api.create(config_map("child", reference(owner, block=True)))
    await api.create(bound_pod("grandchild", reference(child, block=True)))
    await api.delete("ConfigMap", "owner", namespace="default", propagation_policy="Foreground")

    async def child_deleting_in_foreground() -> bool:
        current = await api.get("ConfigMap", "child", namespace="default")
        return "foregroundDeletion" in current.metadata.finalizers

    await eventually(child_deleting_in_foreground, what="the child deleted in the foreground")
    await settle(api)
    assert await exists(api, "ConfigMap", "owner") and await exists(api, "ConfigMap", "child")
    await api.delete("Pod", "grandchild", namespace="default", grace_period_seconds=0)
    await gone(api, "ConfigMap", "child")
    await gone(api, "ConfigMap", "owner")


async def test_foreground_deletion_keeps_a_dependent_with_another_owner(api):
    owner = await api.create(config_map("owner"))
    other = await api.create(config_map("other"))
    await api.create(config_map("shared", reference(owner, block=True), reference(other)))
    await api.delete("ConfigMap", "owner", namespace="default", propagation_policy="Foreground")
    await gone(api, "ConfigMap", "owner")
    shared = await api.get("ConfigMap", "shared", namespace="default")
    assert [ref.uid for ref in shared.metadata.owner_references] == [other.metadata.uid]


async def test_foreground_deletion_of_an_owner_without_dependents_completes(api):
    await api.create(config_map("lonely"))
    _, deleted = await api.delete("ConfigMap", "lonely", namespace="default", propagation_policy="Foreground")
    assert not deleted
    await gone(api, "ConfigMap", "lonely")


# ---------------------------------------------------------------- orphan


async def test_orphan_deletion_frees_the_dependents(api):
    owner = await api.create(config_map("owner"))
    other = await api.create(config_map("other"))
    await api.create(config_map("child", reference(owner, block=True, controller=True)))
    await api.create(config_map("shared", reference(owner), reference(other)))
    marked, deleted = await api.delete("ConfigMap", "owner", namespace="default", propagation_policy="Orphan")
    assert not deleted and "orphan" in marked.metadata.finalizers
    await gone(api, "ConfigMap", "owner")
    child = await api.get("ConfigMap", "child", namespace="default")
    shared = await api.get("ConfigMap", "shared", namespace="default")
    assert list(child.metadata.owner_references) == []
    assert [ref.uid for ref in shared.metadata.owner_references] == [other.metadata.uid]
    await settle(api)
    assert await exists(api, "ConfigMap", "child"), "an orphan is not collected later"


async def test_a_later_background_delete_replaces_the_orphan_finalizer(api):
    owner = await api.create(config_map("owner", finalizers=("example.com/hold",)))
    await api.create(config_map("child", reference(owner)))
    marked, _ = await api.delete("ConfigMap", "owner", namespace="default", propagation_policy="Orphan")
    assert list(marked.metadata.finalizers) == ["example.com/hold", "orphan"]
    again, _ = await api.delete("ConfigMap", "owner", namespace="default", propagation_policy="Background")
    assert list(again.metadata.finalizers) == ["example.com/hold"]


# ---------------------------------------------------------------- identity by uid


async def test_an_owner_recreated_with_the_same_name_is_another_owner(api):
    first = await api.create(config_map("owner"))
    await api.delete("ConfigMap", "owner", namespace="default")
    await api.create(config_map("owner"))
    # A dependent that still names the first owner (say, written by a lagging controller).
    await api.create(config_map("stale-child", reference(first)))
    await gone(api, "ConfigMap", "stale-child")
    assert await exists(api, "ConfigMap", "owner")


async def test_a_dependent_created_after_its_owner_is_gone_is_collected(api):
    owner = await api.create(config_map("owner"))
    await api.delete("ConfigMap", "owner", namespace="default")
    await api.create(config_map("late-child", reference(owner)))
    await gone(api, "ConfigMap", "late-child")


async def test_an_owner_missing_from_the_cache_is_looked_up_before_deleting(api):
    """A collector whose informers never ran sees the dependent but not its owner; it must ask the API."""
    owner = await api.create(config_map("owner"))
    dependent = await api.create(config_map("child", reference(owner)))
    informers = Informers(api)
    collector = GarbageCollector(ControllerContext(api, informers))
    informers.get("ConfigMap").assume(dependent)
    assert owner.metadata.uid not in collector.objects
    await collector.reconcile(dependent.metadata.uid)
    assert await exists(api, "ConfigMap", "child")

    # The same collector, the owner really gone (and the service's own collector too slow to matter):
    # now the dependent goes.
    gone_owner = config_map("ghost")
    gone_owner.metadata.uid = "00000000-0000-0000-0000-000000000000"
    orphan = await api.create(config_map("orphan-child", reference(gone_owner)))
    informers.get("ConfigMap").assume(orphan)
    await collector.reconcile(orphan.metadata.uid)
    assert not await exists(api, "ConfigMap", "orphan-child")


# ---------------------------------------------------------------- namespaces


async def test_namespace_deletion_removes_owners_and_dependents(api):
    namespace = core_pb2.Namespace(api_version="v1", kind="Namespace")
    namespace.metadata.name = "doomed"
    await api.create(namespace)
    owner = await api.create(config_map("owner", namespace="doomed"))
    await api.create(config_map("child", reference(owner, block=True), namespace="doomed"))
    await api.create(config_map("held", reference(owner), namespace="doomed", finalizers=("foregroundDeletion",)))
    await api.delete("Namespace", "doomed")
    await gone(api, "Namespace", "doomed", namespace="")


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}]}}},
}


async def test_namespace_deletion_removes_a_deployment_its_replica_set_and_pods(api):
    namespace = core_pb2.Namespace(api_version="v1", kind="Namespace")
    namespace.metadata.name = "shop"
    await api.create(namespace)
    await api.create(manifest.to_message(DEPLOYMENT))

    async def pods_created() -> bool:
        pods, _ = await api.list("Pod", namespace="shop")
        return len(pods) == 2

    await eventually(pods_created, what="the Deployment's pods created")
    await api.delete("Namespace", "shop")
    await gone(api, "Namespace", "shop", namespace="")


async def test_deleting_a_deployment_collects_its_replica_set_and_pods(api):
    namespace = core_pb2.Namespace(api_version="v1", kind="Namespace")
    namespace.metadata.name = "shop"
    await api.create(namespace)
    await api.create(manifest.to_message(DEPLOYMENT))

    async def pods_created() -> bool:
        pods, _ = await api.list("Pod", namespace="shop")
        return len(pods) == 2

    await eventually(pods_created, what="the Deployment's pods created")
    await api.delete("Deployment", "web", namespace="shop", propagation_policy="Foreground")

    async def all_gone() -> bool:
        for kind in ("Deployment", "ReplicaSet", "Pod"):
            items, _ = await api.list(kind, namespace="shop")
            if items:
                return False
        return True

    await eventually(all_gone, what="the Deployment, its ReplicaSet and pods deleted")
