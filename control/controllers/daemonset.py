"""The DaemonSet controller: one pod of each DaemonSet on every node that should run it.

A node should run a DaemonSet's pod when the pod, with the tolerations every
daemon pod gets (``DAEMON_TOLERATIONS``: not-ready and unreachable NoExecute
with no time limit, the pressure conditions and cordoning NoSchedule),
passes the scheduler's own NodeName, NodeAffinity (nodeSelector and required
node affinity) and TaintToleration filters, reused from
control/scheduler/plugins. A pod already on a node may stay while the node
only gains NoSchedule taints; an untolerated NoExecute taint, or labels that
no longer match, remove it (``node_should_run``).

Daemon pods are not bound by the controller: each gets a required node
affinity ``matchFields metadata.name In [NODE]`` in place of its template's
required terms (already checked here), and the scheduler places it, as in
Kubernetes since 1.12.

Each pass of ``reconcile`` (level-triggered, one DaemonSet at a time):

1. finds or creates the ControllerRevision of the current template
   (control/controllers/history.py); its hash labels the new pods;
2. per node: creates the missing pod; deletes failed and succeeded pods
   (a failed pod's replacement on a node backs off, 1 s doubling to 15 min,
   so a pod the node keeps rejecting does not hot-loop); deletes extra pods
   (the oldest stays) and every pod of a node that should no longer run
   one; deletes unbound pods aimed at nodes that are gone. A new pod waits
   until the node's old pod (even a terminating one) is gone;
3. if that changed nothing, advances a RollingUpdate: without maxSurge it
   deletes old pods, an unavailable one at once, available ones only while
   fewer than maxUnavailable nodes are without an available pod; with
   maxSurge it starts the new pod next to the old one (at most maxSurge
   nodes at a time) and deletes the old pod once the new one is available.
   OnDelete only replaces pods someone deleted;
4. creates and deletes as decided, but first asks the API (not the cache)
   for the DaemonSet's pods: a node where it shows a pod the cache does
   not (``_drop_unseen``) gets no new pod in this pass;
5. truncates the revision history and writes the status, counting for
   each node its oldest live pod (a terminating one only if it is the
   node's only pod).

The re-check of step 4 is there because the caches of different kinds lag
by different amounts: a DaemonSet created right after a pod it should adopt
can be seen before that pod, and an adoption written over a stale copy of
the pod fails; either way the cache shows the node without a pod. Deletions
need no such check: one decided on a stale copy is refused by the API
(uid precondition) or, at worst, replaced in the next pass.

Before each pass the DaemonSet claims its pods and revisions
(control/controllers/ownership.py): it adopts orphans its selector matches
and releases those it no longer matches.

Watched: DaemonSets, their pods and revisions (queue the owner), and nodes
(a new node, or one whose labels or taints changed, queues every DaemonSet).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Hashable

from control.api import errors
from control.api.deployments import scaled_value
from control.api.selectors import from_label_selector_message
from control.controllers.history import (
    REVISION_HASH_LABEL, claim_and_revise, history_limit, revision_hash, truncate_history,
)
from control.controllers.informers import controller_uid, queue_key_of, queue_owner_of
from control.controllers.manager import ControllerContext
from control.controllers.pods import (
    is_available, is_ready, is_terminating, pod_from_template, ready_since,
)
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from control.scheduler.plugins import node_affinity, node_name, taint_toleration
from protos.api.v1 import apps_pb2, core_pb2

log = logging.getLogger(__name__)

COMPONENT = "daemonset-controller"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
NODE_NAME_FIELD = node_affinity.NODE_NAME_FIELD
DAEMON_TOLERATIONS = (
    core_pb2.Toleration(key="node.kubernetes.io/not-ready", operator="Exists", effect="NoExecute"),
    core_pb2.Toleration(key="node.kubernetes.io/unreachable", operator="Exists", effect="NoExecute"),
    core_pb2.Toleration(key="node.kubernetes.io/disk-pressure", operator="Exists", effect="NoSchedule"),
    core_pb2.Toleration(key="node.kubernetes.io/memory-pressure", operator="Exists", effect="NoSchedule"),
    core_pb2.Toleration(key="node.kubernetes.io/pid-pressure", operator="Exists", effect="NoSchedule"),
    core_pb2.Toleration(key="node.kubernetes.io/unschedulable", operator="Exists", effect="NoSchedule"),
)
HOST_NETWORK_TOLERATION = core_pb2.Toleration(
    key="node.kubernetes.io/network-unavailable", operator="Exists", effect="NoSchedule")
FAILED_POD_BACKOFF = 1.0
FAILED_POD_BACKOFF_MAX = 900.0
# A node skipped because the API showed a pod the cache did not is looked at again
# by that pod's watch event; this is the latest it is looked at otherwise.
UNSEEN_POD_RECHECK = 1.0


# ------------------------------------------------------------ which nodes, which pods


def add_daemon_tolerations(spec: core_pb2.PodSpec) -> None:
    """Give a daemon pod's spec the tolerations every daemon pod has (replacing the same ones)."""
    wanted = list(DAEMON_TOLERATIONS) + ([HOST_NETWORK_TOLERATION] if spec.host_network else [])
    for toleration in wanted:
        for existing in list(spec.tolerations):
            if (existing.key, existing.operator, existing.value, existing.effect) == (
                    toleration.key, toleration.operator, toleration.value, toleration.effect):
                spec.tolerations.remove(existing)
        spec.tolerations.append(toleration)


def daemon_pod(ds: apps_pb2.DaemonSet, node: str = "") -> core_pb2.Pod:
    """The pod ds would run (on node, if given): its template with the daemon tolerations."""
    pod = pod_from_template(ds.spec.template, ds)
    add_daemon_tolerations(pod.spec)
    if node:
        pin_to_node(pod.spec, node)
    return pod


def pin_to_node(spec: core_pb2.PodSpec, node: str) -> None:
    """Replace the required node affinity by the one term ``metadata.name In [node]``."""
    required = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    required.ClearField("node_selector_terms")
    required.node_selector_terms.add().match_fields.add(key=NODE_NAME_FIELD, operator="In", values=[node])


def target_node(pod: core_pb2.Pod) -> str:
    """The node a daemon pod is for: its nodeName once bound, else its node affinity's name term."""
    if pod.spec.node_name:
        return pod.spec.node_name
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    for term in required.node_selector_terms:
        for requirement in term.match_fields:
            if requirement.key == NODE_NAME_FIELD and requirement.operator == "In" and len(requirement.values) == 1:
                return requirement.values[0]
    return ""


def node_should_run(pod: core_pb2.Pod, node: core_pb2.Node) -> tuple[bool, bool]:
    """(should run, may continue running) for the daemon pod (from ``daemon_pod``) on node.

    The first says a new pod belongs there; the second that a pod already
    there may stay (true also when only NoSchedule taints keep new pods away).
    """
    if not node_name.fits(pod, node) or not node_affinity.fits(pod, node):
        return False, False
    if taint_toleration.untolerated_taint(pod, node) is None:
        return True, True
    return False, taint_toleration.untolerated_taint(pod, node, ("NoExecute",)) is None


def _oldest_first(pods: list[core_pb2.Pod]) -> list[core_pb2.Pod]:
    """Bound pods before unbound ones, then by creation time, then name."""
    return sorted(pods, key=lambda p: (not p.spec.node_name, p.metadata.creation_timestamp, p.metadata.name))


def allows_surge(ds: apps_pb2.DaemonSet, desired: int) -> bool:
    return _strategy(ds) == "RollingUpdate" and _max_surge(ds, desired) > 0


def _strategy(ds: apps_pb2.DaemonSet) -> str:
    return ds.spec.update_strategy.type or "RollingUpdate"


def _max_surge(ds: apps_pb2.DaemonSet, desired: int) -> int:
    return scaled_value(ds.spec.update_strategy.rolling_update.max_surge, desired, round_up=True)


def _max_unavailable(ds: apps_pb2.DaemonSet, desired: int) -> int:
    rolling = ds.spec.update_strategy.rolling_update
    if not rolling.HasField("max_unavailable"):
        return 0 if _max_surge(ds, desired) > 0 else 1
    unavailable = scaled_value(rolling.max_unavailable, desired, round_up=True)
    return unavailable if unavailable > 0 or _max_surge(ds, desired) > 0 else 1


# ------------------------------------------------------------ one pass


@dataclass
class _Changes:
    """What one pass decided: nodes to start a pod on, pods to delete, when to look again."""

    create_on: list[str] = field(default_factory=list)
    delete: list[core_pb2.Pod] = field(default_factory=list)
    again: float | None = None

    def look_again_in(self, seconds: float) -> None:
        self.again = seconds if self.again is None else min(self.again, seconds)


class DaemonSetController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.api = ctx.api
        self.daemonsets = ctx.informers.get("DaemonSet")
        self.pods = ctx.informers.get("Pod")
        self.nodes = ctx.informers.get("Node")
        self.revisions = ctx.informers.get("ControllerRevision")
        self.queue = WorkQueue()
        self.recorder = EventRecorder(ctx.api, component=COMPONENT)
        # (daemonset uid, generation, node) -> (current delay, when the last failed pod was deleted);
        # a new template (generation) starts without delay.
        self._failed_backoff: dict[tuple[str, int, str], tuple[float, float]] = {}

    async def run(self) -> None:
        self.daemonsets.add_handler(queue_key_of(self.queue.add))
        self.pods.add_handler(queue_owner_of(self.queue.add, "DaemonSet", owners=self.daemonsets))
        self.revisions.add_handler(queue_owner_of(self.queue.add, "DaemonSet", owners=self.daemonsets))
        self.nodes.add_handler(self._node_changed)
        await self.ctx.informers.wait_synced(["DaemonSet", "Pod", "Node", "ControllerRevision"])
        recorder = asyncio.create_task(self.recorder.run())
        try:
            await run_workers(self.queue, self.reconcile, workers=self.ctx.options.workers)
        finally:
            recorder.cancel()
            self.queue.close()

    def _node_changed(self, old: core_pb2.Node | None, new: core_pb2.Node | None) -> None:
        if old is not None and new is not None and (
                old.metadata.labels == new.metadata.labels and old.spec == new.spec):
            return  # a heartbeat: nothing a DaemonSet decides on changed
        for ds in self.daemonsets.list():
            self.queue.add((ds.metadata.namespace, ds.metadata.name))

    async def reconcile(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        ds = self.daemonsets.get(namespace, name)
        if ds is None or is_terminating(ds):
            return None  # the garbage collector removes its pods and revisions
        revisions = await claim_and_revise(self.api, self.pods, self.revisions, ds, self.recorder, noun="daemon set")
        if revisions is None:
            return None
        hash_ = revision_hash(revisions.current)
        nodes = sorted(self.nodes.list(), key=lambda n: n.metadata.name)
        template_pod = daemon_pod(ds)
        verdicts = {n.metadata.name: node_should_run(template_pod, n) for n in nodes}

        self._forget_old_backoffs()
        changes = self._manage(ds, verdicts, hash_)
        if not changes.create_on and not changes.delete and _strategy(ds) == "RollingUpdate":
            self._rolling_update(ds, verdicts, hash_, changes)
        await self._drop_unseen(ds, changes)
        failures = await self._apply(ds, changes, hash_)

        pods = self._pods_by_node(ds)
        running_hashes = {p.metadata.labels.get(REVISION_HASH_LABEL) for ps in pods.values() for p in ps}
        live = {r.metadata.name for r in revisions.all if revision_hash(r) in running_hashes}
        live.add(revisions.current.metadata.name)
        await truncate_history(self.api, self.revisions, revisions.all, live=live, limit=history_limit(ds.spec))
        again = await self._write_status(ds, verdicts, pods, hash_, revisions.collision_count)
        if failures:
            raise failures[0]
        if again is not None:
            changes.look_again_in(again)
        return changes.again

    def _pods_by_node(self, ds: apps_pb2.DaemonSet) -> dict[str, list[core_pb2.Pod]]:
        by_node: dict[str, list[core_pb2.Pod]] = defaultdict(list)
        for pod in self.pods.owned_by(ds.metadata.uid):
            node = target_node(pod)
            if node:  # an adopted pod aimed at no node is left alone, as in Kubernetes
                by_node[node].append(pod)
        return by_node

    def _manage(self, ds: apps_pb2.DaemonSet, verdicts: dict[str, tuple[bool, bool]], hash_: str) -> _Changes:
        """Step 2 of the module docstring: pods created where missing, deleted where not wanted."""
        changes = _Changes()
        by_node = self._pods_by_node(ds)
        surge = allows_surge(ds, sum(1 for run, _ in verdicts.values() if run))
        for node, (should_run, may_continue) in verdicts.items():
            pods = by_node.get(node, [])
            if should_run and not pods:
                changes.create_on.append(node)
            elif may_continue:
                running = self._drop_finished(ds, node, pods, changes)
                changes.delete.extend(self._extra_pods(ds, running, hash_, surge))
            else:
                changes.delete.extend(p for p in pods if not is_terminating(p))
        for node, pods in by_node.items():
            if node not in verdicts:
                # Aimed at a node that is gone: unbound, it would wait forever (the pod
                # garbage collector handles bound pods of deleted nodes).
                changes.delete.extend(p for p in pods if not p.spec.node_name and not is_terminating(p))
        return changes

    def _forget_old_backoffs(self) -> None:
        now = self.ctx.clock()
        for key, (_delay, since) in list(self._failed_backoff.items()):
            if now - since > 2 * FAILED_POD_BACKOFF_MAX:
                del self._failed_backoff[key]

    def _drop_finished(self, ds: apps_pb2.DaemonSet, node: str, pods: list[core_pb2.Pod],
                       changes: _Changes) -> list[core_pb2.Pod]:
        """Queue the node's finished pods for deletion (failed ones with backoff); return the running ones."""
        running = []
        now = self.ctx.clock()
        for pod in pods:
            if is_terminating(pod):
                continue
            if pod.status.phase == "Failed":
                key = (ds.metadata.uid, ds.metadata.generation, node)
                delay, since = self._failed_backoff.get(key, (0.0, 0.0))
                if delay and now < since + delay:
                    changes.look_again_in(since + delay - now)
                    continue
                self._failed_backoff[key] = (min(max(delay * 2, FAILED_POD_BACKOFF), FAILED_POD_BACKOFF_MAX), now)
                self.recorder.warning(ds, "FailedDaemonPod", f"Found failed daemon pod {pod.metadata.namespace}/"
                                                             f"{pod.metadata.name} on node {node}, will try to kill it")
                changes.delete.append(pod)
            elif pod.status.phase == "Succeeded":
                changes.delete.append(pod)
            else:
                running.append(pod)
        return running

    def _extra_pods(self, ds: apps_pb2.DaemonSet, running: list[core_pb2.Pod], hash_: str,
                    surge: bool) -> list[core_pb2.Pod]:
        """More than one pod on a node: which to delete.

        Without surge the oldest stays. With surge the oldest updated and the
        oldest old pod may both stay while the old one is ready and the new
        one not yet available.
        """
        running = _oldest_first(running)
        if not surge:
            return running[1:]
        newest = next((p for p in running if p.metadata.labels.get(REVISION_HASH_LABEL) == hash_), None)
        oldest = next((p for p in running if p.metadata.labels.get(REVISION_HASH_LABEL) != hash_), None)
        extra = [p for p in running if p is not newest and p is not oldest]
        if newest is not None and oldest is not None and (
                not is_ready(oldest) or is_available(newest, ds.spec.min_ready_seconds, self.ctx.clock())):
            extra.append(oldest)
        return extra

    def _rolling_update(self, ds: apps_pb2.DaemonSet, verdicts: dict[str, tuple[bool, bool]], hash_: str,
                        changes: _Changes) -> None:
        """Step 3 of the module docstring; adds to changes."""
        desired = sum(1 for run, _ in verdicts.values() if run)
        now = self.ctx.clock()
        min_ready = ds.spec.min_ready_seconds

        def available(pod: core_pb2.Pod) -> bool:
            return is_available(pod, min_ready, now)

        surge = _max_surge(ds, desired)
        busy = 0  # nodes counted against the budget: without a available pod, or (surge) with two pods
        at_once: list = []  # replaced at once: their old pod is not available anyway
        candidates: list = []
        for node, pods in sorted(self._pods_by_node(ds).items()):
            active = [p for p in pods if not is_terminating(p)]
            new = [p for p in active if p.metadata.labels.get(REVISION_HASH_LABEL) == hash_]
            old = [p for p in active if p.metadata.labels.get(REVISION_HASH_LABEL) != hash_]
            if len(new) > 1 or len(old) > 1:
                busy += 1  # the next pass removes the extra pods first
                continue
            if surge:
                if not old:
                    continue
                if not new:
                    if not verdicts.get(node, (False, False))[0]:
                        continue
                    (candidates if available(old[0]) else at_once).append(node)
                elif available(new[0]):
                    changes.delete.append(old[0])
                else:
                    busy += 1
            else:
                if bool(new) == bool(old):
                    busy += 1  # none (waiting for the old one to go) or both (extra removed first)
                elif new:
                    busy += 0 if available(new[0]) else 1
                elif available(old[0]):
                    candidates.append(old[0])
                else:
                    at_once.append(old[0])
        budget = max(0, (surge if surge else _max_unavailable(ds, desired)) - busy)
        chosen = at_once + candidates[:budget]
        if surge:
            changes.create_on.extend(chosen)
        else:
            changes.delete.extend(chosen)
        if min_ready > 0:
            for pod in self.pods.owned_by(ds.metadata.uid):
                since = ready_since(pod)
                if since is not None and not available(pod):
                    changes.look_again_in(since + min_ready - now + 0.1)

    # ------------------------------------------------------------ writes

    async def _drop_unseen(self, ds: apps_pb2.DaemonSet, changes: _Changes) -> None:
        """Step 4's re-check: no pod for a node where the API shows one of ds's pods the cache does not.

        "One of ds's pods" is one it controls or an orphan it would adopt
        (its selector matches, not being deleted). Every pod on the node
        the cache knows was part of the decision (the old pod next to a
        surge pod, say); only one it does not know stops the creation.
        """
        if not changes.create_on:
            return
        selector = from_label_selector_message(ds.spec.selector)
        live, _ = await self.api.list("Pod", namespace=ds.metadata.namespace, label_selector=str(selector))
        known = {p.metadata.uid for p in self.pods.owned_by(ds.metadata.uid)}
        unseen_on = {target_node(p) for p in live if p.metadata.uid not in known and (
            controller_uid(p) == ds.metadata.uid or (not controller_uid(p) and not is_terminating(p)))}
        if unseen_on & set(changes.create_on):
            log.info("%s/%s: the API shows pods the cache does not yet on %s; not creating there now",
                     ds.metadata.namespace, ds.metadata.name, sorted(unseen_on & set(changes.create_on)))
            changes.create_on = [node for node in changes.create_on if node not in unseen_on]
            changes.look_again_in(UNSEEN_POD_RECHECK)

    async def _apply(self, ds: apps_pb2.DaemonSet, changes: _Changes, hash_: str) -> list[Exception]:
        """Create and delete as decided; returns the failures (the pass is retried with backoff)."""
        failures: list[Exception] = []
        for node in changes.create_on:
            pod = daemon_pod(ds, node)
            pod.metadata.labels[REVISION_HASH_LABEL] = hash_
            pod.metadata.labels[TEMPLATE_GENERATION_LABEL] = str(ds.metadata.generation)
            try:
                created = await self.api.create(pod)
            except errors.PreconditionError:
                return failures  # the namespace is being deleted: nothing more to create
            except errors.APIError as err:
                self.recorder.warning(ds, "FailedCreate", f"Error creating: {err}")
                failures.append(err)
                continue
            self.pods.assume(created)
            self.recorder.normal(ds, "SuccessfulCreate", f"Created pod: {created.metadata.name}")
        for pod in changes.delete:
            try:
                result, gone = await self.api.delete("Pod", pod.metadata.name, namespace=pod.metadata.namespace,
                                                     uid=pod.metadata.uid)
            except (errors.NotFoundError, errors.ConflictError):
                self.pods.assume_deleted(pod)
                continue
            except errors.APIError as err:
                self.recorder.warning(ds, "FailedDelete", f"Error deleting: {err}")
                failures.append(err)
                continue
            if gone:
                self.pods.assume_deleted(pod)
            else:
                self.pods.assume(result)
            self.recorder.normal(ds, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
        return failures

    async def _write_status(self, ds: apps_pb2.DaemonSet, verdicts: dict[str, tuple[bool, bool]],
                            pods: dict[str, list[core_pb2.Pod]], hash_: str, collision_count: int) -> float | None:
        """Write the status if it changed; returns when to look again for a pod becoming available."""
        now = self.ctx.clock()
        status = apps_pb2.DaemonSetStatus()
        status.CopyFrom(ds.status)
        counts = defaultdict(int)
        again = None
        for node, (should_run, _) in verdicts.items():
            on_node = pods.get(node, [])
            if not should_run:
                counts["misscheduled"] += bool(on_node)
                continue
            counts["desired"] += 1
            if not on_node:
                continue
            counts["current"] += 1
            # An extra pod being deleted next to a live one is on its way out (it may be
            # the older by name alone: creation times have whole seconds); the live one counts.
            pod = _oldest_first([p for p in on_node if not is_terminating(p)] or on_node)[0]
            if is_ready(pod):
                counts["ready"] += 1
                if is_available(pod, ds.spec.min_ready_seconds, now):
                    counts["available"] += 1
                else:
                    again = float(ds.spec.min_ready_seconds)
            if pod.metadata.labels.get(REVISION_HASH_LABEL) == hash_:
                counts["updated"] += 1
        status.desired_number_scheduled = counts["desired"]
        status.current_number_scheduled = counts["current"]
        status.number_misscheduled = counts["misscheduled"]
        status.number_ready = counts["ready"]
        status.number_available = counts["available"]
        status.number_unavailable = counts["desired"] - counts["available"]
        status.updated_number_scheduled = counts["updated"]
        status.observed_generation = ds.metadata.generation
        if collision_count:
            status.collision_count = collision_count
        if status != ds.status:
            changed = apps_pb2.DaemonSet()
            changed.CopyFrom(ds)
            changed.status.CopyFrom(status)
            changed.metadata.ClearField("resource_version")  # status only: written over the latest object
            self.daemonsets.assume(await self.api.update_status(changed))
        return again


async def run_daemonset_controller(ctx: ControllerContext) -> None:
    """Run the DaemonSet controller until cancelled."""
    await DaemonSetController(ctx).run()
