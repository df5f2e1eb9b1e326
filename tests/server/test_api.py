"""The API verbs' semantics, through a real gRPC server on an embedded store:
create/get/list/update/patch/delete, selectors, optimistic concurrency,
generation, the status subresource, generateName, graceful deletion,
finalizers, namespaces and events."""

from __future__ import annotations

import asyncio

import pytest

from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2


def make_pod(name: str, *, namespace: str = "default", labels: dict | None = None, node: str = "") -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = namespace
    pod.metadata.labels.update(labels or {})
    container = pod.spec.containers.add()
    container.name = "app"
    container.image = "busybox:1.36"
    if node:
        pod.spec.node_name = node
    return pod


def make_configmap(name: str, data: dict[str, str], *, namespace: str = "default") -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = namespace
    cm.data.update(data)
    return cm


async def test_create_sets_server_owned_metadata(api: Client):
    pod = await api.create(make_pod("web"))
    assert pod.metadata.uid
    assert int(pod.metadata.resource_version) > 0
    assert pod.metadata.creation_timestamp.endswith("Z")
    assert pod.metadata.generation == 1
    assert pod.status.phase == "Pending"


async def test_create_applies_defaults(api: Client):
    pod = await api.create(make_pod("web"))
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.containers[0].image_pull_policy == "IfNotPresent"


async def test_create_of_a_taken_name_fails_with_already_exists(api: Client):
    await api.create(make_pod("web"))
    with pytest.raises(errors.AlreadyExistsError, match='pods "web" already exists'):
        await api.create(make_pod("web"))


async def test_create_in_a_missing_namespace_fails_with_not_found(api: Client):
    with pytest.raises(errors.NotFoundError, match='namespaces "nowhere" not found'):
        await api.create(make_pod("web", namespace="nowhere"))


async def test_invalid_object_is_refused_naming_every_bad_field(api: Client):
    pod = make_pod("Bad_Name")
    pod.spec.containers[0].ClearField("image")
    pod.spec.containers[0].ports.add(container_port=70000)
    with pytest.raises(errors.InvalidError) as caught:
        await api.create(pod)
    message = str(caught.value)
    assert message.startswith('Pod "Bad_Name" is invalid:')
    for path in ("metadata.name", "spec.containers[0].image", "spec.containers[0].ports[0].containerPort"):
        assert path in message


async def test_get_of_a_missing_object_fails_with_not_found(api: Client):
    with pytest.raises(errors.NotFoundError, match='pods "ghost" not found'):
        await api.get("Pod", "ghost", namespace="default")


async def test_generate_name_gives_a_unique_name(api: Client):
    pod = make_pod("")
    pod.metadata.generate_name = "worker-"
    first = await api.create(pod)
    second = await api.create(pod)
    assert first.metadata.name.startswith("worker-") and len(first.metadata.name) == len("worker-") + 5
    assert first.metadata.name != second.metadata.name


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("tier in (front, back)", ["a", "c"]),
        ("tier notin (front)", ["b", "c", "d"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b", "d"]),
        ("app=web,tier=front", ["a"]),
    ],
)
async def test_list_filters_by_label_selector(api: Client, selector, expected):
    await api.create(make_pod("a", labels={"app": "web", "tier": "front"}))
    await api.create(make_pod("b", labels={"app": "web"}))
    await api.create(make_pod("c", labels={"app": "db", "tier": "back"}))
    await api.create(make_pod("d"))
    items, _ = await api.list("Pod", namespace="default", label_selector=selector)
    assert sorted(p.metadata.name for p in items) == expected


async def test_list_filters_by_field_selector(api: Client):
    await api.create(make_pod("on-n1", node="n1"))
    await api.create(make_pod("on-n2", node="n2"))
    await api.create(make_pod("unbound"))
    items, _ = await api.list("Pod", field_selector="spec.nodeName=n1")
    assert [p.metadata.name for p in items] == ["on-n1"]
    items, _ = await api.list("Pod", field_selector="spec.nodeName!=n1,status.phase=Pending")
    assert sorted(p.metadata.name for p in items) == ["on-n2", "unbound"]
    items, _ = await api.list("Pod", field_selector="metadata.name=unbound,metadata.namespace=default")
    assert [p.metadata.name for p in items] == ["unbound"]


async def test_unsupported_field_selector_is_a_bad_request(api: Client):
    with pytest.raises(errors.BadRequestError, match="field label not supported"):
        await api.list("Pod", field_selector="spec.nope=1")


async def test_list_is_scoped_to_a_namespace_or_all(api: Client):
    ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = "other"
    await api.create(ns)
    await api.create(make_pod("here"))
    await api.create(make_pod("there", namespace="other"))
    here, _ = await api.list("Pod", namespace="default")
    everywhere, _ = await api.list("Pod")
    assert [p.metadata.name for p in here] == ["here"]
    assert sorted(p.metadata.name for p in everywhere) == ["here", "there"]


async def test_update_with_a_stale_resource_version_fails_with_conflict(api: Client):
    created = await api.create(make_configmap("cfg", {"a": "1"}))
    first = core_pb2.ConfigMap()
    first.CopyFrom(created)
    first.data["a"] = "2"
    await api.update(first)
    stale = core_pb2.ConfigMap()
    stale.CopyFrom(created)
    stale.data["a"] = "3"
    with pytest.raises(errors.ConflictError, match="the object has been modified"):
        await api.update(stale)
    assert (await api.get("ConfigMap", "cfg", namespace="default")).data["a"] == "2"


async def test_spec_change_bumps_generation_and_label_change_does_not(api: Client):
    pod = await api.create(make_pod("web"))
    pod.metadata.labels["x"] = "y"
    pod = await api.update(pod)
    assert pod.metadata.generation == 1
    pod.spec.containers[0].image = "busybox:1.37"
    pod = await api.update(pod)
    assert pod.metadata.generation == 2


async def test_an_update_that_changes_nothing_keeps_the_resource_version(api: Client):
    created = await api.create(make_configmap("cfg", {"a": "1"}))
    again = await api.update(created)
    assert again.metadata.resource_version == created.metadata.resource_version


async def test_ordinary_update_keeps_status_and_status_update_keeps_spec(api: Client):
    pod = await api.create(make_pod("web", node="n1"))
    pod.status.phase = "Running"
    pod.spec.containers[0].image = "busybox:1.37"
    updated = await api.update(pod)
    assert updated.status.phase == "Pending"
    assert updated.spec.containers[0].image == "busybox:1.37"
    updated.status.phase = "Running"
    updated.spec.containers[0].image = "busybox:9"
    status_updated = await api.update_status(updated)
    assert status_updated.status.phase == "Running"
    assert status_updated.spec.containers[0].image == "busybox:1.37"


async def test_merge_patch_adds_and_removes_fields(api: Client):
    await api.create(make_configmap("cfg", {"a": "1", "b": "2"}))
    patched = await api.patch("ConfigMap", "cfg", {"data": {"a": None, "c": "3"}, "metadata": {"labels": {"k": "v"}}},
                              namespace="default")
    assert dict(patched.data) == {"b": "2", "c": "3"}
    assert dict(patched.metadata.labels) == {"k": "v"}


async def test_patch_with_an_unknown_field_is_invalid_and_names_it(api: Client):
    await api.create(make_configmap("cfg", {"a": "1"}))
    with pytest.raises(errors.InvalidError, match="datta"):
        await api.patch("ConfigMap", "cfg", {"datta": {"x": "y"}}, namespace="default")


async def test_unbound_pod_is_deleted_at_once(api: Client):
    await api.create(make_pod("web"))
    _, deleted = await api.delete("Pod", "web", namespace="default")
    assert deleted
    with pytest.raises(errors.NotFoundError):
        await api.get("Pod", "web", namespace="default")


async def test_bound_pod_is_marked_then_removed_when_its_node_confirms(api: Client):
    await api.create(make_pod("web", node="n1"))
    marked, deleted = await api.delete("Pod", "web", namespace="default")
    assert not deleted
    assert marked.metadata.deletion_timestamp
    assert marked.metadata.deletion_grace_period_seconds == 30
    still = await api.get("Pod", "web", namespace="default")
    assert still.metadata.deletion_timestamp
    _, deleted = await api.delete("Pod", "web", namespace="default", grace_period_seconds=0)
    assert deleted


async def test_forced_deletion_with_zero_grace_removes_a_bound_pod_at_once(api: Client):
    await api.create(make_pod("web", node="n1"))
    _, deleted = await api.delete("Pod", "web", namespace="default", grace_period_seconds=0, force=True)
    assert deleted


async def test_graceful_deletion_records_an_event(api: Client):
    await api.create(make_pod("web", node="n1"))
    await api.delete("Pod", "web", namespace="default")
    events, _ = await api.list("Event", namespace="default",
                               field_selector="involvedObject.name=web,involvedObject.kind=Pod")
    assert [e.reason for e in events] == ["DeletionRequested"]


async def test_finalizers_hold_deletion_until_removed(api: Client):
    cm = make_configmap("cfg", {"a": "1"})
    cm.metadata.finalizers.append("example.com/hold")
    await api.create(cm)
    marked, deleted = await api.delete("ConfigMap", "cfg", namespace="default")
    assert not deleted and marked.metadata.deletion_timestamp
    held = await api.get("ConfigMap", "cfg", namespace="default")
    del held.metadata.finalizers[:]
    await api.update(held)
    with pytest.raises(errors.NotFoundError):
        await api.get("ConfigMap", "cfg", namespace="default")


async def test_system_namespaces_exist_and_cannot_be_deleted(api: Client):
    names = {ns.metadata.name for ns in (await api.list("Namespace"))[0]}
    assert {"default", "kube-system"} <= names
    with pytest.raises(errors.ForbiddenError):
        await api.delete("Namespace", "default")


async def test_deleting_a_namespace_removes_its_content_then_itself(api: Client):
    ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = "doomed"
    await api.create(ns)
    await api.create(make_configmap("cfg", {"a": "1"}, namespace="doomed"))
    await api.create(make_pod("web", namespace="doomed"))
    marked, deleted = await api.delete("Namespace", "doomed")
    assert not deleted and marked.status.phase == "Terminating"
    with pytest.raises(errors.PreconditionError, match="being terminated"):
        await api.create(make_configmap("late", {}, namespace="doomed"))
    for _ in range(100):
        try:
            await api.get("Namespace", "doomed")
        except errors.NotFoundError:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("namespace was not removed")
    assert (await api.list("ConfigMap", namespace="doomed"))[0] == []


async def test_discovery_lists_every_kind(api: Client):
    answer = await api.discovery()
    by_kind = {r.kind: r for r in answer.resources}
    assert by_kind["Pod"].name == "pods" and list(by_kind["Pod"].short_names) == ["po"]
    assert not by_kind["Node"].namespaced
    assert by_kind["Lease"].api_version == "coordination.k8s.io/v1"
