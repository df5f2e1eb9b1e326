"""The node lifecycle and taint eviction controllers on a real control service
with shortened periods (a 2 s grace period, checks every 0.1 s).

Nodes are registered, and kept alive, by the agent's own code
(agent/node.py: register_node, NodeLease, NodeStatusReporter); a node
"fails" when the test stops its heartbeats. Covered: a silent node's
conditions become Unknown and it is tainted unreachable (NoSchedule and
NoExecute), its pods marked not Ready; pods that do not tolerate a NoExecute
taint are deleted at once, those with tolerationSeconds after that long,
those tolerating it for good never; the default toleration follows
--default-toleration-seconds; a node heard from again loses the taints;
Ready False, pressure and cordoning give their taints; tainting is rate
limited; and when every node is silent nothing is evicted until one is heard
from again. Two steps that end in an eviction are checked against the API,
not only the cache: a NoExecute taint for a node whose agent reported
meanwhile, and an eviction for a taint already removed (controllers driven by
hand over caches the test fills).
The zone arithmetic, the toleration rule and ``sampan control``'s flags are
checked as plain functions.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.node import LEASE_NAMESPACE, MachineFacts, NodeIdentity, NodeLease, NodeStatusReporter, register_node
from control.api import errors
from control.cli.main import build_parser
from control.client import Client
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext, ControllerOptions
from control.controllers.node_lifecycle import NodeLifecycleController, TokenBucket, ZoneState, eviction_rate, zone_state
from control.controllers.taint_eviction import TaintEvictionController, toleration_limit
from control.service import ControlConfig, ControlService, node_lifecycle_from_args
from protos.api.v1 import core_pb2

FAST = {"node_monitor_grace_period": 2.0, "node_monitor_period": 0.1, "node_eviction_rate": 100.0}
HEARTBEAT_SECONDS = 0.3


async def start_service(tmp_path: Path, **overrides) -> ControlService:
    svc = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="", shutdown_grace=0.5,
        leader_election=None, **overrides))
    await svc.start()
    return svc


@pytest.fixture
async def api(tmp_path):
    svc = await start_service(tmp_path, controller_options=FAST)
    async with Client.connect(f"127.0.0.1:{svc.port}") as client:
        yield client
    await svc.stop()


class Agent:
    """A node registered and kept alive as its agent would, without running pods."""

    def __init__(self, api: Client, name: str, data_dir: Path) -> None:
        self.api, self.name, self.data_dir = api, name, data_dir
        self.identity = NodeIdentity(name=name)
        self.tasks: list[asyncio.Task] = []

    async def register(self) -> "Agent":
        facts = await asyncio.to_thread(MachineFacts.read, data_dir=str(self.data_dir), node_ip="127.0.0.1")
        await register_node(self.api, self.identity, facts)
        return self

    def beat(self) -> "Agent":
        self.tasks = [
            asyncio.create_task(NodeLease(self.api, self.name, interval=HEARTBEAT_SECONDS).run()),
            asyncio.create_task(NodeStatusReporter(self.api, self.identity, data_dir=str(self.data_dir),
                                                   node_ip="127.0.0.1", interval=HEARTBEAT_SECONDS).run()),
        ]
        return self

    async def go_silent(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []


@pytest.fixture
async def agents(api, tmp_path):
    started: list[Agent] = []

    async def agent(name: str, *, beating: bool = True) -> Agent:
        node = await Agent(api, name, tmp_path).register()
        started.append(node.beat() if beating else node)
        return node

    yield agent
    for node in started:
        await node.go_silent()


def bound_pod(name: str, node: str, *, tolerations: tuple[dict, ...] = ()) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.spec.node_name = node
    pod.spec.containers.add(name="app", image="busybox:1.36")
    for toleration in tolerations:
        pod.spec.tolerations.add(**toleration)
    return pod


def unreachable_toleration(seconds: int | None) -> dict:
    toleration = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        toleration["toleration_seconds"] = seconds
    return toleration


async def eventually(check, *, timeout: float = 20.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.05)
    return result


async def node(api: Client, name: str) -> core_pb2.Node:
    return await api.get("Node", name)


def taints(node_obj: core_pb2.Node) -> set[str]:
    return {f"{t.key}:{t.effect}" for t in node_obj.spec.taints}


def ready(node_obj: core_pb2.Node) -> str:
    return next((c.status for c in node_obj.status.conditions if c.type == "Ready"), "")


async def terminating(api: Client, pod: str) -> bool:
    try:
        return (await api.get("Pod", pod, namespace="default")).metadata.HasField("deletion_timestamp")
    except errors.NotFoundError:
        return True


async def wait_for_taint(api: Client, name: str, taint: str) -> core_pb2.Node:
    async def tainted():
        current = await node(api, name)
        return current if taint in taints(current) else None

    return await eventually(tainted, what=f"{name} tainted {taint}")


async def passes(seconds: float = 1.0) -> None:
    """Let the controllers make a few more passes (10 at the test's 0.1 s period)."""
    await asyncio.sleep(seconds)


UNREACHABLE_NO_EXECUTE = "node.kubernetes.io/unreachable:NoExecute"
UNREACHABLE_NO_SCHEDULE = "node.kubernetes.io/unreachable:NoSchedule"


# ---------------------------------------------------------------- node health


async def test_a_silent_node_becomes_unknown_and_unreachable(api, agents):
    await agents("alive")
    await agents("silent", beating=False)
    silent = await wait_for_taint(api, "silent", UNREACHABLE_NO_EXECUTE)
    assert UNREACHABLE_NO_SCHEDULE in taints(silent)
    assert silent.status.conditions and all(c.status == "Unknown" for c in silent.status.conditions)
    readiness = next(c for c in silent.status.conditions if c.type == "Ready")
    assert (readiness.reason, readiness.message) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
    no_execute = next(t for t in silent.spec.taints if t.effect == "NoExecute")
    assert no_execute.time_added, "a NoExecute taint records when it was added"
    alive = await node(api, "alive")
    assert ready(alive) == "True" and UNREACHABLE_NO_EXECUTE not in taints(alive)

    async def node_not_ready_event():
        events, _ = await api.list("Event", namespace="default")
        return [e for e in events if e.reason == "NodeNotReady" and e.involved_object.name == "silent"]

    await eventually(node_not_ready_event, what="a NodeNotReady event")


async def test_a_lease_alone_keeps_a_node_healthy(api, agents, tmp_path):
    await agents("alive")
    lease_only = await agents("lease-only", beating=False)
    renewing = asyncio.create_task(NodeLease(api, "lease-only", interval=HEARTBEAT_SECONDS).run())
    try:
        await passes(FAST["node_monitor_grace_period"] + 1.0)
        assert ready(await node(api, lease_only.name)) == "True"
    finally:
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
    assert (await api.get("Lease", "lease-only", namespace=LEASE_NAMESPACE)).spec.renew_time


async def test_pods_of_a_silent_node_are_marked_not_ready(api, agents):
    await agents("alive")
    await agents("silent", beating=False)
    pod = await api.create(bound_pod("web", "silent", tolerations=(unreachable_toleration(None),)))
    pod.status.conditions.add(type="Ready", status="True")
    await api.update_status(pod)

    async def pod_not_ready():
        current = await api.get("Pod", "web", namespace="default")
        return [c for c in current.status.conditions if c.type == "Ready" and c.status == "False"]

    await eventually(pod_not_ready, what="the pod's Ready condition False")


async def test_a_node_heard_from_again_loses_its_taints(api, agents):
    await agents("alive")
    flaky = await agents("flaky")
    await flaky.go_silent()
    await wait_for_taint(api, "flaky", UNREACHABLE_NO_EXECUTE)
    flaky.beat()

    async def healed():
        current = await node(api, "flaky")
        return ready(current) == "True" and not {UNREACHABLE_NO_EXECUTE, UNREACHABLE_NO_SCHEDULE} & taints(current)

    await eventually(healed, what="the unreachable taints removed")


async def test_conditions_a_node_reports_give_their_taints(api, agents):
    await agents("alive")
    sick = await agents("sick", beating=False)
    current = await node(api, sick.name)
    for found in current.status.conditions:
        if found.type == "Ready":
            found.status, found.reason = "False", "KubeletNotReady"
        if found.type in ("MemoryPressure", "PIDPressure"):
            found.status = "True"
    await api.update_status(current)
    tainted = await wait_for_taint(api, "sick", "node.kubernetes.io/not-ready:NoExecute")
    assert {"node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/memory-pressure:NoSchedule",
            "node.kubernetes.io/pid-pressure:NoSchedule"} <= taints(tainted)
    assert "node.kubernetes.io/disk-pressure:NoSchedule" not in taints(tainted)


async def test_cordoning_adds_and_uncordoning_removes_the_unschedulable_taint(api, agents):
    await agents("alive")
    current = await node(api, "alive")
    current.spec.unschedulable = True
    await api.update(current)
    await wait_for_taint(api, "alive", "node.kubernetes.io/unschedulable:NoSchedule")
    await api.patch("Node", "alive", {"spec": {"unschedulable": False}})

    async def untainted():
        return "node.kubernetes.io/unschedulable:NoSchedule" not in taints(await node(api, "alive"))

    await eventually(untainted, what="the unschedulable taint removed")


# ---------------------------------------------------------------- evictions


async def test_a_no_execute_taint_evicts_the_pods_that_do_not_tolerate_it(api, agents):
    await agents("alive")
    await api.create(bound_pod("intolerant", "alive"))
    await api.create(bound_pod("tolerant", "alive", tolerations=(
        {"key": "maintenance", "operator": "Exists", "effect": "NoExecute"},)))
    current = await node(api, "alive")
    current.spec.taints.add(key="maintenance", value="yes", effect="NoExecute")
    await api.update(current)
    await eventually(lambda: terminating(api, "intolerant"), what="the intolerant pod evicted")

    async def eviction_event():
        events, _ = await api.list("Event", namespace="default")
        return [e for e in events if e.reason == "TaintManagerEviction" and e.involved_object.name == "intolerant"]

    await eventually(eviction_event, what="a TaintManagerEviction event")
    await passes()
    assert not await terminating(api, "tolerant")


async def test_toleration_seconds_delay_the_eviction(api, agents):
    await agents("alive")
    await agents("silent", beating=False)
    await api.create(bound_pod("brief", "silent", tolerations=(unreachable_toleration(1),)))
    await api.create(bound_pod("forever", "silent", tolerations=(unreachable_toleration(None),)))
    defaulted = await api.create(bound_pod("defaulted", "silent"))
    assert [t.toleration_seconds for t in defaulted.spec.tolerations] == [300, 300]
    await wait_for_taint(api, "silent", UNREACHABLE_NO_EXECUTE)
    await eventually(lambda: terminating(api, "brief"), what="the pod tolerating 1 s evicted")
    assert not await terminating(api, "defaulted"), "the default toleration is five minutes"
    await passes()
    assert not await terminating(api, "forever")


async def test_the_default_toleration_follows_the_service_setting(tmp_path):
    svc = await start_service(tmp_path, controller_options=FAST, default_toleration_seconds=1)
    try:
        async with Client.connect(f"127.0.0.1:{svc.port}") as client:
            alive = await Agent(client, "alive", tmp_path).register()
            alive.beat()
            await Agent(client, "silent", tmp_path).register()
            pod = await client.create(bound_pod("web", "silent"))
            assert [t.toleration_seconds for t in pod.spec.tolerations] == [1, 1]
            await wait_for_taint(client, "silent", UNREACHABLE_NO_EXECUTE)
            await eventually(lambda: terminating(client, "web"), what="the pod evicted after 1 s")
            await alive.go_silent()
    finally:
        await svc.stop()


async def test_tainting_is_rate_limited(tmp_path):
    svc = await start_service(tmp_path, controller_options={**FAST, "node_eviction_rate": 0.001})
    try:
        async with Client.connect(f"127.0.0.1:{svc.port}") as client:
            alive = await Agent(client, "alive", tmp_path).register()
            alive.beat()
            for name in ("silent-1", "silent-2"):
                await Agent(client, name, tmp_path).register()

            async def both_unknown():
                return all([ready(await node(client, n)) == "Unknown" for n in ("silent-1", "silent-2")])

            await eventually(both_unknown, what="both silent nodes Unknown")
            await passes()
            tainted = [n for n in ("silent-1", "silent-2") if UNREACHABLE_NO_EXECUTE in taints(await node(client, n))]
            assert len(tainted) == 1, "one token, then one every 1000 s"
            await alive.go_silent()
    finally:
        await svc.stop()


async def test_no_evictions_while_every_node_is_silent(api, agents):
    first = await agents("first")
    second = await agents("second")
    await api.create(bound_pod("web", "first", tolerations=(unreachable_toleration(0),)))
    # Nodes falling silent together are not always noticed in one monitor pass (their last heartbeats, and
    # when the controller saw them, differ). The first one noticed is then one silent node of two, no
    # disruption, and is rightly tainted NoExecute (Kubernetes does the same). So the node without pods
    # goes silent first and is tainted; the pod's node goes silent last, and is noticed only when every node is.
    await second.go_silent()
    await wait_for_taint(api, "second", UNREACHABLE_NO_EXECUTE)
    await first.go_silent()

    async def both_unknown():
        return all([ready(await node(api, n)) == "Unknown" for n in ("first", "second")])

    await eventually(both_unknown, what="both nodes Unknown")

    async def second_untainted():
        return UNREACHABLE_NO_EXECUTE not in taints(await node(api, "second"))

    await eventually(second_untainted, what="the NoExecute taint removed once every node is silent")
    await passes()
    for name in ("first", "second"):
        current = await node(api, name)
        assert UNREACHABLE_NO_SCHEDULE in taints(current)
        assert UNREACHABLE_NO_EXECUTE not in taints(current), "no node is tainted NoExecute in full disruption"
    assert not await terminating(api, "web")

    second.beat()
    await wait_for_taint(api, "first", UNREACHABLE_NO_EXECUTE)
    await eventually(lambda: terminating(api, "web"), what="the pod evicted once the disruption is partial")


# ---------------------------------------------------------------- decisions checked against the API


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def quiet_api(tmp_path):
    """A service whose own node controller never marks a node Unknown nor taints it NoExecute, so a
    controller the test drives by hand over a cache it fills is the only one deciding."""
    svc = await start_service(tmp_path, controller_options={"node_monitor_grace_period": 3600.0,
                                                            "node_eviction_rate": 0.0})
    async with Client.connect(f"127.0.0.1:{svc.port}") as client:
        yield client
    await svc.stop()


async def node_with_ready(api: Client, name: str, status: str) -> core_pb2.Node:
    created = core_pb2.Node(api_version="v1", kind="Node")
    created.metadata.name = name
    created = await api.create(created)
    created.status.conditions.add(type="Ready", status=status, last_heartbeat_time="2024-01-01T00:00:00Z")
    return await api.update_status(created)


def with_ready(node_obj: core_pb2.Node, status: str) -> core_pb2.Node:
    changed = core_pb2.Node()
    changed.CopyFrom(node_obj)
    next(c for c in changed.status.conditions if c.type == "Ready").status = status
    return changed


async def test_no_no_execute_taint_for_a_node_ready_again_before_the_cache_knows(quiet_api):
    """Informers never started: the cache (filled by hand) says Ready Unknown, the API says True."""
    api = quiet_api
    clock = Clock()
    informers = Informers(api)
    controller = NodeLifecycleController(
        ControllerContext(api, informers, ControllerOptions(node_eviction_rate=1.0)), clock=clock)
    controller.nodes.assume(await node_with_ready(api, "healthy", "True"))
    stale = await node_with_ready(api, "stale", "True")
    controller.nodes.assume(with_ready(stale, "Unknown"))
    await controller.monitor()
    assert UNREACHABLE_NO_EXECUTE not in taints(await node(api, "stale")), "the live node is Ready"

    # The same pass taints once the API agrees (a second later, the zone's bucket has a token again).
    controller.nodes.assume(await api.update_status(with_ready(await node(api, "stale"), "Unknown")))
    clock.now += 1.0
    await controller.monitor()
    assert UNREACHABLE_NO_EXECUTE in taints(await node(api, "stale"))


async def test_no_eviction_for_a_taint_gone_before_the_cache_knows(quiet_api):
    """Informers never started: the cache (filled by hand) has a NoExecute taint the API no longer has."""
    api = quiet_api
    clock = Clock()
    informers = Informers(api)
    controller = TaintEvictionController(ControllerContext(api, informers, ControllerOptions()), clock=clock)
    live = await node_with_ready(api, "worker", "True")
    cached = core_pb2.Node()
    cached.CopyFrom(live)
    cached.spec.taints.add(key="maintenance", effect="NoExecute")
    controller.nodes.assume(cached)
    pod = await api.create(bound_pod("web", "worker", tolerations=(
        {"key": "maintenance", "operator": "Exists", "effect": "NoExecute", "toleration_seconds": 3600},)))
    controller.pods.assume(pod)
    assert await controller.reconcile(("default", "web")) == 3600
    clock.now += 3601
    assert await controller.reconcile(("default", "web")) is None
    assert not await terminating(api, "web"), "the live node has no taint"

    # Once the API has the taint too, the same pod, past its toleration, is evicted.
    tainted = await node(api, "worker")
    tainted.spec.taints.add(key="maintenance", effect="NoExecute")
    controller.nodes.assume(await api.update(tainted))
    assert await controller.reconcile(("default", "web")) is None
    assert await terminating(api, "web")


# ---------------------------------------------------------------- the rules, as functions


def test_zone_states_follow_kubernetes():
    assert zone_state(["True", "True"], unhealthy_threshold=0.55) is ZoneState.NORMAL
    assert zone_state(["True", "Unknown", "False"], unhealthy_threshold=0.55) is ZoneState.NORMAL
    assert zone_state(["True", "Unknown", "Unknown", "False"], unhealthy_threshold=0.55) \
        is ZoneState.PARTIAL_DISRUPTION
    assert zone_state(["Unknown", "False"], unhealthy_threshold=0.55) is ZoneState.FULL_DISRUPTION


def test_eviction_rates_by_zone_state_and_size():
    options = ControllerOptions(node_eviction_rate=0.1, secondary_node_eviction_rate=0.01,
                                large_cluster_size_threshold=50)
    assert eviction_rate(ZoneState.NORMAL, 10, options) == 0.1
    assert eviction_rate(ZoneState.PARTIAL_DISRUPTION, 51, options) == 0.01
    assert eviction_rate(ZoneState.PARTIAL_DISRUPTION, 50, options) == 0.0
    assert eviction_rate(ZoneState.FULL_DISRUPTION, 10, options) == 0.1


def test_the_token_bucket_holds_one_token():
    bucket = TokenBucket(0.5, now=100.0)
    assert bucket.take(100.0) and not bucket.take(100.0)
    assert not bucket.take(101.0) and bucket.take(102.0)
    assert bucket.take(110.0) and not bucket.take(110.0), "idle time does not save up more than one"
    assert not TokenBucket(0.0, now=0.0).take(1e9)


def test_the_shortest_matching_toleration_sets_the_limit():
    pod = bound_pod("p", "n", tolerations=(unreachable_toleration(60), unreachable_toleration(30),
                                           {"operator": "Exists"}))
    unreachable = core_pb2.Taint(key="node.kubernetes.io/unreachable", effect="NoExecute")
    assert toleration_limit(pod, [unreachable]) == 30
    assert toleration_limit(bound_pod("p", "n"), [unreachable]) == 0
    forever = bound_pod("p", "n", tolerations=(unreachable_toleration(None),))
    assert toleration_limit(forever, [unreachable]) is None
    other = core_pb2.Taint(key="maintenance", effect="NoExecute")
    assert toleration_limit(forever, [unreachable, other]) == 0, "every taint must be tolerated"


# ---------------------------------------------------------------- sampan control's flags


def control_flags(*flags: str) -> dict:
    return node_lifecycle_from_args(build_parser().parse_args(["control", *flags]))


def test_control_flags_set_the_node_lifecycle_options():
    assert control_flags() == {}
    assert control_flags("--node-monitor-grace-period=40", "--node-monitor-period=2", "--node-eviction-rate=0",
                         "--default-toleration-seconds=60") == {
        "controller_options": {"node_monitor_grace_period": 40.0, "node_monitor_period": 2.0,
                               "node_eviction_rate": 0.0},
        "default_toleration_seconds": 60}


@pytest.mark.parametrize(("flag", "message"), [
    ("--node-monitor-grace-period=0", "--node-monitor-grace-period: Invalid value: 0: must be > 0"),
    ("--node-monitor-period=-1", "--node-monitor-period: Invalid value: -1: must be > 0"),
    ("--node-eviction-rate=-0.5", "--node-eviction-rate: Invalid value: -0.5: must be >= 0"),
    ("--default-toleration-seconds=-1", "--default-toleration-seconds: Invalid value: -1: must be >= 0"),
])
def test_control_flags_refuse_bad_values(flag, message):
    with pytest.raises(ValueError, match=message):
        control_flags(flag)
