"""The node lifecycle controller: notices nodes whose agents went silent, and
taints nodes by their state.

Every agent renews its Lease in ``kube-node-lease`` (every 10 s) and
rewrites its Node's status (agent/node.py). Handlers only record, by this
controller's own clock, when either last changed (the Lease's renewTime,
the Ready condition's lastHeartbeatTime): clocks of other machines are never
compared with ours. Every ``node_monitor_period`` one pass (``monitor``):

1. Health. A node heard from neither way for ``node_monitor_grace_period``
   gets every condition set to Unknown (reason NodeStatusUnknown, "Kubelet
   stopped posting node status."; a node that never posted a status gets a
   Ready Unknown condition, NodeStatusNeverUpdated) through the status
   subresource. When a node's Ready stops being True, a NodeNotReady event
   is recorded and its pods' Ready conditions become False (Kubernetes'
   MarkPodsNotReady), so nothing keeps routing to them.
2. NoSchedule taints from conditions (Kubernetes' TaintNodesByCondition):
   not-ready, unreachable, memory-, disk- and pid-pressure, network-unavailable
   and, for a cordoned node, unschedulable; each is removed once its cause is.
3. NoExecute taints, which make the taint eviction controller
   (control/controllers/taint_eviction.py) delete the pods that do not
   tolerate them: ``node.kubernetes.io/not-ready`` for Ready False,
   ``node.kubernetes.io/unreachable`` for Ready Unknown. Removing one (the
   node is Ready again) is immediate; adding one to a node takes a token from
   its zone's bucket (``topology.kubernetes.io/zone``; one zone when nodes
   have none): ``node_eviction_rate`` nodes per second while the zone is
   healthy; when more than ``unhealthy_zone_threshold`` of its nodes (and at
   least three) are unhealthy, ``secondary_node_eviction_rate`` in a zone of
   more than ``large_cluster_size_threshold`` nodes and none in a smaller
   one. When every node of every zone is unhealthy, the fault is most likely
   the control plane's own network, not the nodes: no node is tainted
   NoExecute, the ones that were are untainted, and once any node is heard
   from again every node gets a fresh grace period. The zone state is that
   of one pass: nodes falling silent together but noticed a pass apart leave
   the first noticed tainted until the pass that sees them all (Kubernetes
   alike; the default five-minute tolerations outlast that). A NoExecute
   taint is added only if the live node's Ready still calls for it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from google.protobuf.message import Message

from control.api import errors
from control.api.timestamps import format_time
from control.controllers.manager import ControllerContext, ControllerOptions
from control.recorder import EventRecorder
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)

COMPONENT = "node-controller"
LEASE_NAMESPACE = "kube-node-lease"
ZONE_LABEL = "topology.kubernetes.io/zone"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# Condition type -> (status that taints, taint key), as TaintNodesByCondition.
CONDITION_TAINTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Ready": (("False", NOT_READY), ("Unknown", UNREACHABLE)),
    "MemoryPressure": (("True", "node.kubernetes.io/memory-pressure"),),
    "DiskPressure": (("True", "node.kubernetes.io/disk-pressure"),),
    "PIDPressure": (("True", "node.kubernetes.io/pid-pressure"),),
    "NetworkUnavailable": (("True", "node.kubernetes.io/network-unavailable"),),
}
NO_SCHEDULE_KEYS = frozenset(key for pairs in CONDITION_TAINTS.values() for _, key in pairs) | {UNSCHEDULABLE}
NO_EXECUTE_KEYS = frozenset({NOT_READY, UNREACHABLE})
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_UPDATED_REASON = "NodeStatusNeverUpdated"
NEVER_UPDATED_MESSAGE = "Kubelet never posted node status."
_WRITE_RETRIES = 5


# ------------------------------------------------------------------ pure helpers


def condition(node: Message, kind: str) -> Message | None:
    for found in node.status.conditions:
        if found.type == kind:
            return found
    return None


def ready_status(node: Message) -> str:
    """True, False or Unknown (a node that never reported is Unknown)."""
    ready = condition(node, "Ready")
    return ready.status if ready is not None and ready.status else "Unknown"


def no_schedule_taints(node: Message) -> set[str]:
    """The keys of the NoSchedule taints the node's conditions and cordon call for."""
    keys = set()
    for found in node.status.conditions:
        for status, key in CONDITION_TAINTS.get(found.type, ()):
            if found.status == status:
                keys.add(key)
    if node.spec.unschedulable:
        keys.add(UNSCHEDULABLE)
    return keys


def no_execute_taint(node: Message) -> str | None:
    """The key of the NoExecute taint the node's Ready condition calls for, if any."""
    ready = condition(node, "Ready")
    if ready is None:
        return None  # not heard from yet: the grace period decides
    return {"False": NOT_READY, "Unknown": UNREACHABLE}.get(ready.status)


class ZoneState(enum.Enum):
    NORMAL = "Normal"
    PARTIAL_DISRUPTION = "PartialDisruption"
    FULL_DISRUPTION = "FullDisruption"


def zone_state(ready: Iterable[str], *, unhealthy_threshold: float) -> ZoneState:
    """Kubernetes' ComputeZoneState over the Ready statuses of one zone's nodes."""
    statuses = list(ready)
    unhealthy = sum(1 for status in statuses if status != "True")
    if statuses and unhealthy == len(statuses):
        return ZoneState.FULL_DISRUPTION
    if unhealthy > 2 and unhealthy / len(statuses) >= unhealthy_threshold:
        return ZoneState.PARTIAL_DISRUPTION
    return ZoneState.NORMAL


def eviction_rate(state: ZoneState, zone_size: int, options: ControllerOptions) -> float:
    """Nodes per second that may be tainted NoExecute in a zone in this state."""
    if state is ZoneState.PARTIAL_DISRUPTION:
        return options.secondary_node_eviction_rate if zone_size > options.large_cluster_size_threshold else 0.0
    return options.node_eviction_rate


class TokenBucket:
    """``rate`` tokens a second, holding at most one; starts full. A rate of 0 never gives one."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._tokens = 1.0 if rate > 0 else 0.0
        self._at = now

    def take(self, now: float) -> bool:
        if self.rate <= 0:
            return False
        self._tokens = min(1.0, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


# ------------------------------------------------------------------ the controller


@dataclass
class NodeHealth:
    """The last heartbeats seen of one node, and when (by this controller's clock) one last changed."""

    heartbeat: str = ""
    renewed: str = ""
    heard_at: float = 0.0
    # The Ready status this controller last acted on (events and marking pods happen on a change).
    acted_on_ready: str = ""
    pods_marked: bool = False


@dataclass
class Zone:
    state: ZoneState = ZoneState.NORMAL
    bucket: TokenBucket | None = None
    # Nodes waiting for a token, in the order they started waiting.
    waiting: dict[str, None] = field(default_factory=dict)


class NodeLifecycleController:
    """See the module docstring. Build it before the informers start."""

    def __init__(self, ctx: ControllerContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.api = ctx.api
        self.options = ctx.options
        # Heartbeat ages are real elapsed time (not ctx.clock, which tests move to drive schedules).
        self.clock = clock
        self.nodes = ctx.informers.get("Node")
        self.leases = ctx.informers.get("Lease")
        self.pods = ctx.informers.get("Pod")
        self.recorder = EventRecorder(ctx.api, component=COMPONENT)
        self.health: dict[str, NodeHealth] = {}
        self.zones: dict[str, Zone] = {}
        self.full_disruption = False
        self.nodes.add_handler(self._node_changed)
        self.leases.add_handler(self._lease_changed)

    # ------------------------------------------------------------ handlers (record only)

    def _record(self, name: str) -> NodeHealth:
        health = self.health.get(name)
        if health is None:
            # First sight: the grace period starts now.
            health = self.health[name] = NodeHealth(heard_at=self.clock())
        return health

    def _node_changed(self, old: Message | None, new: Message | None) -> None:
        if new is None:
            if old is not None:
                self.health.pop(old.metadata.name, None)
            return
        health = self._record(new.metadata.name)
        ready = condition(new, "Ready")
        heartbeat = ready.last_heartbeat_time if ready is not None else ""
        if heartbeat != health.heartbeat:
            health.heartbeat = heartbeat
            health.heard_at = self.clock()

    def _lease_changed(self, old: Message | None, new: Message | None) -> None:
        if new is None or new.metadata.namespace != LEASE_NAMESPACE:
            return
        health = self._record(new.metadata.name)
        if new.spec.renew_time != health.renewed:
            health.renewed = new.spec.renew_time
            health.heard_at = self.clock()

    # ------------------------------------------------------------ the periodic pass

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(["Node", "Lease", "Pod"])
        recorder = asyncio.create_task(self.recorder.run())
        try:
            while True:
                try:
                    await self.monitor()
                except errors.APIError as err:
                    log.warning("node monitor pass failed (next pass retries): %s", err)
                await asyncio.sleep(self.options.node_monitor_period)
        finally:
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)

    async def monitor(self) -> None:
        """One pass over every node: health, then NoSchedule taints, then NoExecute taints."""
        nodes = sorted(self.nodes.list(), key=lambda node: node.metadata.name)
        current = [await self._check_health(node) for node in nodes]
        for node in current:
            await self._react_to_readiness(node)
            await self._sync_no_schedule_taints(node)
        await self._sync_no_execute_taints(current)

    async def _check_health(self, node: Message) -> Message:
        """The node, with its conditions made Unknown if it has been silent past the grace period."""
        health = self._record(node.metadata.name)
        silent_for = self.clock() - health.heard_at
        if silent_for <= self.options.node_monitor_grace_period or already_unknown(node):
            return node
        for _ in range(_WRITE_RETRIES):
            marked = core_pb2.Node()
            marked.CopyFrom(node)
            mark_unknown(marked, now=format_time(time.time()))
            log.info("node %s: no heartbeat for %.0fs; its conditions are now Unknown", node.metadata.name, silent_for)
            try:
                written = await self.api.update_status(marked)
                self.nodes.assume(written)
                return written
            except errors.ConflictError:
                try:
                    node = await self.api.get("Node", node.metadata.name)
                except errors.NotFoundError:
                    return node
                ready = condition(node, "Ready")
                if already_unknown(node) or (ready is not None and ready.last_heartbeat_time != health.heartbeat):
                    return node  # marked meanwhile, or its agent has just reported after all
            except errors.NotFoundError:
                return node
        return node

    async def _react_to_readiness(self, node: Message) -> None:
        """Event and pods' readiness when a node's Ready leaves True; reset when it is back."""
        health = self._record(node.metadata.name)
        status = ready_status(node)
        if status == "True":
            health.acted_on_ready, health.pods_marked = status, False
            return
        if condition(node, "Ready") is None:
            return
        if health.acted_on_ready == "True":
            self.recorder.normal(node, "NodeNotReady", f"Node {node.metadata.name} status is now: NodeNotReady")
        health.acted_on_ready = status
        if not health.pods_marked:
            health.pods_marked = await self._mark_pods_not_ready(node)

    async def _mark_pods_not_ready(self, node: Message) -> bool:
        """Set Ready False on every pod of the node; True when none is left to change."""
        done = True
        now = format_time(time.time())
        for pod in self.pods.list():
            if pod.spec.node_name != node.metadata.name:
                continue
            ready = condition(pod, "Ready")
            if ready is None or ready.status == "False":
                continue
            changed = core_pb2.Pod()
            changed.CopyFrom(pod)
            target = condition(changed, "Ready")
            target.status = "False"
            target.last_transition_time = now
            try:
                self.pods.assume(await self.api.update_status(changed))
                self.recorder.warning(pod, "NodeNotReady", "Node is not ready")
            except errors.NotFoundError:
                continue
            except errors.ConflictError:
                done = False  # the next pass tries again with a fresher copy
        return done

    async def _sync_no_schedule_taints(self, node: Message) -> None:
        wanted = no_schedule_taints(node)
        have = {t.key for t in node.spec.taints if t.effect == "NoSchedule" and t.key in NO_SCHEDULE_KEYS}
        if wanted != have:
            await self._set_taints(node.metadata.name, effect="NoSchedule", managed=NO_SCHEDULE_KEYS, keys=wanted)

    async def _sync_no_execute_taints(self, nodes: list[Message]) -> None:
        now = self.clock()
        by_zone: dict[str, list[Message]] = {}
        for node in nodes:
            by_zone.setdefault(node.metadata.labels.get(ZONE_LABEL, ""), []).append(node)
        threshold = self.options.unhealthy_zone_threshold
        states = {zone: zone_state((ready_status(member) for member in members), unhealthy_threshold=threshold)
                  for zone, members in by_zone.items()}
        everything_down = bool(states) and all(s is ZoneState.FULL_DISRUPTION for s in states.values())
        if everything_down:
            if not self.full_disruption:
                log.warning("every node is unhealthy: the control plane's network is the likely fault; "
                            "no pods are evicted until a node is heard from")
                self.full_disruption = True
                self.zones.clear()
            for node in nodes:
                await self._set_no_execute(node, None)
            return
        if self.full_disruption:
            log.info("a node is heard from again: every node gets a fresh grace period")
            self.full_disruption = False
            for health in self.health.values():
                health.heard_at = now
        for zone_name, members in by_zone.items():
            zone = self.zones.setdefault(zone_name, Zone())
            rate = eviction_rate(states[zone_name], len(members), self.options)
            if zone.bucket is None or zone.state is not states[zone_name]:
                if zone.bucket is not None:
                    log.info("zone %r is now %s: tainting %.3g nodes/s", zone_name, states[zone_name].value, rate)
                zone.state, zone.bucket = states[zone_name], TokenBucket(rate, now)
            await self._sync_zone_no_execute(zone, members, now)

    async def _sync_zone_no_execute(self, zone: Zone, members: list[Message], now: float) -> None:
        """Remove or swap NoExecute taints at once; add new ones as the zone's bucket allows, first come first."""
        needing: dict[str, Message] = {}
        for node in members:
            wanted = no_execute_taint(node)
            have = {t.key for t in node.spec.taints if t.effect == "NoExecute" and t.key in NO_EXECUTE_KEYS}
            if wanted is not None and not have:
                needing[node.metadata.name] = node
            elif have != ({wanted} if wanted else set()):
                # Healthy again, or not-ready swapped for unreachable: no new eviction starts, no token needed.
                await self._set_no_execute(node, wanted)
        for name in [name for name in zone.waiting if name not in needing]:
            del zone.waiting[name]
        for name in needing:
            zone.waiting.setdefault(name, None)
        while zone.waiting and zone.bucket is not None and zone.bucket.take(now):
            name = next(iter(zone.waiting))
            del zone.waiting[name]
            await self._set_no_execute(needing[name], no_execute_taint(needing[name]))

    async def _set_no_execute(self, node: Message, key: str | None) -> None:
        have = {t.key for t in node.spec.taints if t.effect == "NoExecute" and t.key in NO_EXECUTE_KEYS}
        wanted = {key} if key else set()
        if have != wanted:
            if key:
                log.info("node %s: tainting %s:NoExecute", node.metadata.name, key)
            await self._set_taints(node.metadata.name, effect="NoExecute", managed=NO_EXECUTE_KEYS, keys=wanted)

    async def _set_taints(self, name: str, *, effect: str, managed: frozenset[str], keys: set[str]) -> None:
        """Make the node's managed taints of effect exactly keys (others' taints untouched)."""
        for _ in range(_WRITE_RETRIES):
            try:
                node = await self.api.get("Node", name)
            except errors.NotFoundError:
                return
            if effect == "NoExecute" and keys and no_execute_taint(node) not in keys:
                # Decided on a cached Ready that the live node no longer has (its agent reported meanwhile):
                # a NoExecute taint evicts, so it waits for the next pass, which sees the news.
                return
            kept = [t for t in node.spec.taints if not (t.effect == effect and t.key in managed and t.key not in keys)]
            present = {t.key for t in kept if t.effect == effect}
            added = [core_pb2.Taint(key=key, effect=effect) for key in sorted(keys - present)]
            if effect == "NoExecute":
                for taint in added:
                    taint.time_added = format_time(time.time())
            if not added and len(kept) == len(node.spec.taints):
                return
            del node.spec.taints[:]
            node.spec.taints.extend(kept + added)
            try:
                self.nodes.assume(await self.api.update(node))
                return
            except errors.ConflictError:
                continue
            except errors.NotFoundError:
                return


def already_unknown(node: Message) -> bool:
    ready = condition(node, "Ready")
    return ready is not None and ready.status == "Unknown"


def mark_unknown(node: Message, *, now: str) -> None:
    """Every condition of the node Unknown, as when its agent stopped reporting (in place)."""
    if condition(node, "Ready") is None:
        node.status.conditions.add(type="Ready", status="Unknown", reason=NEVER_UPDATED_REASON,
                                   message=NEVER_UPDATED_MESSAGE, last_transition_time=now)
    for found in node.status.conditions:
        if found.status != "Unknown":
            found.status = "Unknown"
            found.reason = UNKNOWN_REASON
            found.message = UNKNOWN_MESSAGE
            found.last_transition_time = now


async def run_node_lifecycle_controller(ctx: ControllerContext) -> None:
    """Run the node lifecycle controller until cancelled."""
    await NodeLifecycleController(ctx).run()
