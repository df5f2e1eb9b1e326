"""The endpoints controller inside a running control service, and its pure slice planning.

Covers: a Service's Endpoints list its ready pods under addresses and the
others under notReadyAddresses (publishNotReadyAddresses lists them all as
ready); pods without an IP and finished pods are left out; a pod being
deleted leaves the Endpoints but stays in the EndpointSlices as
terminating (serving while it was ready); a named targetPort is resolved in
each pod, so pods serving it on different ports land in different subsets
and slices, and a pod without it is left out; pods of a headless Service
whose subdomain names it get their hostname; a readiness change or a
selector change moves addresses; Endpoints deleted by hand come back;
deleting the Service removes its Endpoints and slices; a Service without a
selector keeps its hand-written Endpoints; nothing is rewritten when
nothing changed (checked on a private controller whose passes the test
runs itself); slices hold at most max-endpoints-per-slice endpoints (an
option of the control service), endpoints stay in the slice that holds
them, new ones fill slices with room, and an empty Service keeps one empty
slice.

No agent runs in these tests: pods are created already bound to a node
name, and the test writes their IP, phase and Ready condition through
update_status, as a kubelet would (a stand-in, since no real node runs
here; the scheduler ignores bound pods, so nothing else writes their
status).
"""

from __future__ import annotations

import time

from control.api import errors
from control.api.manifest import to_dict, to_message
from control.api.timestamps import format_time
from control.client import Client
from control.controllers.endpoints import (
    EndpointsController, PodEndpoint, ResolvedPort, SERVICE_NAME_LABEL, plan_slices,
)
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext
from control.recorder import EventRecorder
from control.service import ControlConfig, ControlService
from tests.controllers.stand_in_kubelet import eventually

NODE = "node-a"


def a_service(name: str = "web", *, selector: dict[str, str] | None = None, with_selector: bool = True,
              **spec) -> object:
    spec.setdefault("ports", [{"port": 80, "targetPort": 8080}])
    if with_selector:
        spec["selector"] = selector or {"app": name}
    return to_message({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                       "spec": spec})


def a_pod(name: str, *, labels: dict[str, str] | None = None, ports: list[dict] | None = None, **spec) -> object:
    container = {"name": "main", "image": "busybox:1.36"}
    if ports:
        container["ports"] = ports
    return to_message({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
                       "spec": {"nodeName": NODE, "containers": [container], **spec}})


async def set_status(api: Client, name: str, *, ip: str = "", ready: bool = True, phase: str = "Running") -> None:
    """What a kubelet writes: the pod's IP, phase and Ready condition (the stand-in; see the module docstring)."""
    pod = await api.get("Pod", name, namespace="default")
    pod.status.phase = phase
    if ip:
        pod.status.pod_ip = ip
        del pod.status.pod_ips[:]
        pod.status.pod_ips.add(ip=ip)
    del pod.status.conditions[:]
    pod.status.conditions.add(type="Ready", status="True" if ready else "False",
                              last_transition_time=format_time(time.time()))
    pod.metadata.ClearField("resource_version")
    await api.update_status(pod)


async def running_pod(api: Client, name: str, ip: str, *, ready: bool = True, **pod) -> None:
    await api.create(a_pod(name, **pod))
    await set_status(api, name, ip=ip, ready=ready)


def addresses(endpoints) -> tuple[list[str], list[str]]:
    """(ready, not ready) IPs of an Endpoints object, sorted."""
    ready = sorted(a.ip for s in endpoints.subsets for a in s.addresses)
    not_ready = sorted(a.ip for s in endpoints.subsets for a in s.not_ready_addresses)
    return ready, not_ready


async def endpoints_are(api: Client, ready: list[str], not_ready: list[str] = (), name: str = "web"):
    endpoints = await api.get("Endpoints", name, namespace="default")
    return addresses(endpoints) == (sorted(ready), sorted(not_ready)) and endpoints


async def slices_of(api: Client, name: str = "web") -> list:
    found, _ = await api.list("EndpointSlice", namespace="default", label_selector=f"{SERVICE_NAME_LABEL}={name}")
    return found


def slice_entries(slices) -> dict[str, dict]:
    """address -> its conditions, over every slice."""
    return {e.addresses[0]: {"ready": e.conditions.ready, "serving": e.conditions.serving,
                             "terminating": e.conditions.terminating}
            for s in slices for e in s.endpoints}


# ------------------------------------------------------------ Endpoints from pods


async def test_ready_and_not_ready_pods_are_listed_apart(api):
    service = await api.create(a_service())
    await running_pod(api, "web-1", "10.244.0.11")
    await running_pod(api, "web-2", "10.244.0.12")
    await running_pod(api, "web-3", "10.244.0.13", ready=False)

    endpoints = await eventually(lambda: endpoints_are(api, ["10.244.0.11", "10.244.0.12"], ["10.244.0.13"]))

    [subset] = endpoints.subsets
    assert [(p.port, p.protocol) for p in subset.ports] == [(8080, "TCP")]
    first = subset.addresses[0]
    assert (first.node_name, first.target_ref.kind, first.target_ref.name) == (NODE, "Pod", "web-1")
    assert endpoints.metadata.labels["endpoints.kubernetes.io/managed-by"] == "endpoint-controller"

    async def sliced():
        slices = await slices_of(api)
        return len(slice_entries(slices)) == 3 and slices
    [slice_] = await eventually(sliced)
    assert slice_.address_type == "IPv4" and [(p.port, p.protocol) for p in slice_.ports] == [(8080, "TCP")]
    [owner] = slice_.metadata.owner_references
    assert (owner.kind, owner.uid, owner.controller) == ("Service", service.metadata.uid, True)
    assert slice_entries([slice_])["10.244.0.13"] == {"ready": False, "serving": False, "terminating": False}
    assert slice_entries([slice_])["10.244.0.11"] == {"ready": True, "serving": True, "terminating": False}


async def test_publish_not_ready_addresses_lists_every_pod_as_ready(api):
    await api.create(a_service(publishNotReadyAddresses=True))
    await running_pod(api, "web-1", "10.244.0.11", ready=False)

    await eventually(lambda: endpoints_are(api, ["10.244.0.11"]))


async def test_pods_without_an_ip_and_finished_pods_are_left_out(api):
    await api.create(a_service())
    await api.create(a_pod("pending"))
    await running_pod(api, "done", "10.244.0.20")
    await set_status(api, "done", phase="Succeeded", ready=False)
    await running_pod(api, "other-app", "10.244.0.21", labels={"app": "db"})
    await running_pod(api, "web-1", "10.244.0.11")

    await eventually(lambda: endpoints_are(api, ["10.244.0.11"]))

    async def sliced():
        return set(slice_entries(await slices_of(api))) == {"10.244.0.11"}
    await eventually(sliced)


async def test_a_pod_being_deleted_leaves_the_endpoints_and_is_terminating_in_the_slices(api):
    await api.create(a_service())
    await running_pod(api, "web-1", "10.244.0.11")
    await running_pod(api, "web-2", "10.244.0.12")
    await eventually(lambda: endpoints_are(api, ["10.244.0.11", "10.244.0.12"]))

    # Bound to a node, the pod waits for the node to confirm its deletion: it is Terminating meanwhile.
    _, gone = await api.delete("Pod", "web-2", namespace="default")
    assert not gone

    await eventually(lambda: endpoints_are(api, ["10.244.0.11"]))

    async def terminating():
        entries = slice_entries(await slices_of(api))
        return entries.get("10.244.0.12", {}).get("terminating") and entries
    entries = await eventually(terminating)
    assert entries["10.244.0.12"] == {"ready": False, "serving": True, "terminating": True}


async def test_a_readiness_change_moves_the_address(api):
    await api.create(a_service())
    await running_pod(api, "web-1", "10.244.0.11")
    await eventually(lambda: endpoints_are(api, ["10.244.0.11"]))

    await set_status(api, "web-1", ready=False)
    await eventually(lambda: endpoints_are(api, [], ["10.244.0.11"]))

    await set_status(api, "web-1", ready=True)
    await eventually(lambda: endpoints_are(api, ["10.244.0.11"]))


async def test_a_selector_change_picks_other_pods(api):
    service = await api.create(a_service())
    await running_pod(api, "web-1", "10.244.0.11")
    await running_pod(api, "canary-1", "10.244.0.31", labels={"app": "canary"})
    await eventually(lambda: endpoints_are(api, ["10.244.0.11"]))

    manifest = to_dict(service)
    manifest["spec"]["selector"] = {"app": "canary"}
    await api.update(to_message(manifest))

    await eventually(lambda: endpoints_are(api, ["10.244.0.31"]))


async def test_a_named_target_port_is_resolved_in_each_pod(api):
    await api.create(a_service(ports=[{"name": "http", "port": 80, "targetPort": "http"}]))
    await running_pod(api, "web-1", "10.244.0.11", ports=[{"name": "http", "containerPort": 8080}])
    await running_pod(api, "web-2", "10.244.0.12", ports=[{"name": "http", "containerPort": 9090}])
    await running_pod(api, "web-3", "10.244.0.13", ports=[{"name": "metrics", "containerPort": 9100}])

    endpoints = await eventually(lambda: endpoints_are(api, ["10.244.0.11", "10.244.0.12"]))

    served = sorted((s.addresses[0].ip, s.ports[0].port, s.ports[0].name) for s in endpoints.subsets)
    assert served == [("10.244.0.11", 8080, "http"), ("10.244.0.12", 9090, "http")]

    async def two_slices():
        slices = await slices_of(api)
        return len(slice_entries(slices)) == 2 and slices
    slices = await eventually(two_slices)
    assert sorted((s.endpoints[0].addresses[0], s.ports[0].port) for s in slices if s.endpoints) == [
        ("10.244.0.11", 8080), ("10.244.0.12", 9090)]


async def test_pods_of_a_headless_service_get_their_hostname(api):
    await api.create(a_service("db", selector={"app": "db"}, clusterIP="None", ports=[]))
    await running_pod(api, "db-0", "10.244.0.40", labels={"app": "db"}, hostname="db-0", subdomain="db")
    await running_pod(api, "db-x", "10.244.0.41", labels={"app": "db"}, hostname="db-x", subdomain="other")

    endpoints = await eventually(lambda: endpoints_are(api, ["10.244.0.40", "10.244.0.41"], name="db"))

    hostnames = {a.ip: a.hostname for s in endpoints.subsets for a in s.addresses}
    assert hostnames == {"10.244.0.40": "db-0", "10.244.0.41": ""}
    assert endpoints.metadata.labels["service.kubernetes.io/headless"] == ""


# ------------------------------------------------------------ lifecycle


async def test_endpoints_deleted_by_hand_come_back(api):
    await api.create(a_service())
    await running_pod(api, "web-1", "10.244.0.11")
    first = await eventually(lambda: endpoints_are(api, ["10.244.0.11"]))

    await api.delete("Endpoints", "web", namespace="default")

    async def recreated():
        again = await endpoints_are(api, ["10.244.0.11"])
        return again and again.metadata.uid != first.metadata.uid
    await eventually(recreated)


async def test_deleting_the_service_removes_its_endpoints_and_slices(api):
    await api.create(a_service())
    await running_pod(api, "web-1", "10.244.0.11")
    await eventually(lambda: endpoints_are(api, ["10.244.0.11"]))

    await api.delete("Service", "web", namespace="default")

    async def gone():
        try:
            await api.get("Endpoints", "web", namespace="default")
            return False
        except errors.NotFoundError:
            return not await slices_of(api)
    await eventually(gone)


class WriteLog:
    """The API, with every write the controller sends through it noted (reads pass straight through)."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.writes: list[tuple[str, str, str]] = []

    def __getattr__(self, name: str):
        return getattr(self.api, name)

    async def create(self, obj):
        self.writes.append(("create", obj.kind, obj.metadata.name or obj.metadata.generate_name))
        return await self.api.create(obj)

    async def update(self, obj, **options):
        self.writes.append(("update", obj.kind, obj.metadata.name))
        return await self.api.update(obj, **options)

    async def delete(self, kind, name, **options):
        self.writes.append(("delete", kind, name))
        return await self.api.delete(kind, name, **options)


async def private_controller(api: Client) -> tuple[EndpointsController, Informers, WriteLog]:
    """An endpoints controller whose passes the test runs itself, on informers of its own, its writes noted."""
    informers = Informers(api)
    log = WriteLog(api)
    controller = EndpointsController(ControllerContext(log, informers), recorder=EventRecorder(api))
    informers.start()
    await informers.wait_synced(["Service", "Pod", "Endpoints", "EndpointSlice"])
    return controller, informers, log


async def test_a_service_without_a_selector_keeps_its_hand_written_endpoints(api):
    await api.create(a_service("external", with_selector=False))
    manual = await api.create(to_message({
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]}))
    controller, informers, log = await private_controller(api)
    try:
        async def cached():
            return controller.endpoints.get("default", "external") is not None
        await eventually(cached)
        await controller.reconcile(("default", "external"))
    finally:
        await informers.stop()

    assert log.writes == []
    kept = await api.get("Endpoints", "external", namespace="default")
    assert kept.metadata.resource_version == manual.metadata.resource_version
    assert not await slices_of(api, "external")


async def test_nothing_is_rewritten_when_nothing_changed(api):
    await api.create(a_service())
    await running_pod(api, "web-1", "10.244.0.11")
    await running_pod(api, "web-2", "10.244.0.12", ready=False)
    await eventually(lambda: endpoints_are(api, ["10.244.0.11"], ["10.244.0.12"]))

    async def settled():
        return len(slice_entries(await slices_of(api))) == 2
    await eventually(settled)
    before = (await api.get("Endpoints", "web", namespace="default")).metadata.resource_version
    slices_before = {s.metadata.name: s.metadata.resource_version for s in await slices_of(api)}
    controller, informers, log = await private_controller(api)
    try:
        async def cached():
            return len(controller.slices.list("default")) == len(slices_before)
        await eventually(cached)
        await controller.reconcile(("default", "web"))
        await controller.reconcile(("default", "web"))
    finally:
        await informers.stop()

    assert log.writes == []
    assert (await api.get("Endpoints", "web", namespace="default")).metadata.resource_version == before
    assert {s.metadata.name: s.metadata.resource_version for s in await slices_of(api)} == slices_before


async def test_slices_hold_at_most_max_endpoints_per_slice(tmp_path):
    service = ControlService(ControlConfig(store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0",
                                           metrics_listen="", shutdown_grace=0.5,
                                           controller_options={"max_endpoints_per_slice": 2}))
    await service.start()
    try:
        async with Client.connect(f"127.0.0.1:{service.port}") as api:
            await api.create(a_service())
            for i in range(5):
                await running_pod(api, f"web-{i}", f"10.244.0.{10 + i}")

            async def split():
                slices = await slices_of(api)
                return len(slice_entries(slices)) == 5 and slices
            slices = await eventually(split)
            assert sorted(len(s.endpoints) for s in slices) == [1, 2, 2]
    finally:
        await service.stop()


# ------------------------------------------------------------ slice planning (pure)


def endpoint(ip: str, *, ready: bool = True, port: int = 8080) -> PodEndpoint:
    return PodEndpoint(ip=ip, ports=(ResolvedPort("", port, "TCP", ""),), ready=ready, serving=ready,
                       terminating=False, hostname="", node_name=NODE, pod_name=f"pod-{ip}", pod_uid=f"uid-{ip}")


def planned_service():
    service = a_service()
    service.metadata.uid = "svc-uid"
    return service


def existing_slices(plan, start: int = 0) -> list:
    """The slices a plan creates, as they would read back (named)."""
    slices = []
    for i, created in enumerate(plan.create, start):
        written = type(created)()
        written.CopyFrom(created)
        written.metadata.name = f"web-{i}"
        written.metadata.uid = f"slice-{i}"
        slices.append(written)
    return slices


def test_endpoints_are_split_into_slices_of_the_maximum_size():
    plan = plan_slices(planned_service(), [endpoint(f"10.0.0.{i}") for i in range(1, 6)], [], max_per_slice=2)

    assert [len(s.endpoints) for s in plan.create] == [2, 2, 1]
    assert not plan.update and not plan.delete
    assert all(s.metadata.labels[SERVICE_NAME_LABEL] == "web" for s in plan.create)


def test_endpoints_keep_their_slice_and_new_ones_fill_slices_with_room():
    service = planned_service()
    first = existing_slices(plan_slices(service, [endpoint(f"10.0.0.{i}") for i in range(1, 6)], [],
                                        max_per_slice=2))
    # 10.0.0.2 goes, 10.0.0.9 comes: only the slices they touch change; the new one fills the freed room.
    pods = [endpoint(ip) for ip in ("10.0.0.1", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.9")]
    plan = plan_slices(service, pods, first, max_per_slice=2)

    assert not plan.create and not plan.delete
    [updated] = plan.update
    assert updated.metadata.name == "web-0"
    assert sorted(e.addresses[0] for e in updated.endpoints) == ["10.0.0.1", "10.0.0.9"]


def test_an_unchanged_set_of_endpoints_plans_no_writes():
    service = planned_service()
    pods = [endpoint("10.0.0.1"), endpoint("10.0.0.2", ready=False)]
    first = existing_slices(plan_slices(service, pods, [], max_per_slice=100))

    plan = plan_slices(service, pods, first, max_per_slice=100)

    assert (plan.create, plan.update, plan.delete) == ([], [], [])


def test_a_service_without_endpoints_keeps_one_empty_slice():
    service = planned_service()
    first = existing_slices(plan_slices(service, [endpoint("10.0.0.1"), endpoint("10.0.0.2")], [],
                                        max_per_slice=1))

    plan = plan_slices(service, [], first, max_per_slice=1)

    assert not plan.create
    [kept] = plan.update
    [deleted] = plan.delete
    assert not kept.endpoints and not kept.ports and kept.metadata.name != deleted.metadata.name


def test_a_pod_serving_other_port_numbers_goes_to_a_slice_of_its_own():
    plan = plan_slices(planned_service(), [endpoint("10.0.0.1", port=8080), endpoint("10.0.0.2", port=9090)], [],
                       max_per_slice=100)

    assert sorted((s.ports[0].port, s.endpoints[0].addresses[0]) for s in plan.create) == [
        (8080, "10.0.0.1"), (9090, "10.0.0.2")]


def test_a_ready_pod_becoming_unready_updates_its_slice_in_place():
    service = planned_service()
    first = existing_slices(plan_slices(service, [endpoint("10.0.0.1")], [], max_per_slice=100))

    plan = plan_slices(service, [endpoint("10.0.0.1", ready=False)], first, max_per_slice=100)

    [updated] = plan.update
    assert updated.metadata.name == "web-0" and not updated.endpoints[0].conditions.ready

