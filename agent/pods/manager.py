"""The pod lifecycle manager: Sampan's kubelet core.

Shape (kubelet's sync loop):

    pods bound to this node (list+watch) ─┐
    runtime lifecycle events (relister) ──┤
    probe results, back-off wake-ups ─────┼─▶ inbox ─▶ sync loop ─▶ one worker per pod ─▶ PodSyncer
    ConfigMap/Secret changes ─────────────┤
    resync tick, housekeeping tick ───────┘

Every source only records a message in the inbox; the one loop turns each
message into "sync pod X" (or, for housekeeping, into the clean-up of what no
longer belongs here) and hands it to ``PodWorkers``, which runs at most one
sync per pod at a time. A worker's sync reads the newest desired pod and the
newest runtime state and acts:

- the pod is live: ``PodSyncer.sync_pod``;
- it carries a deletionTimestamp: stop it within its grace period, remove its
  containers and sandbox, then confirm the deletion to the API (grace 0);
- it is gone from the API (force-deleted, or deleted while the agent was
  down): stop and remove whatever the runtime still has of it.

Absence is acted on only after the first successful list: while the control
service is unreachable the agent keeps every pod running as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from agent.pods import runtime_specs
from agent.pods.backoff import BackoffTracker, RestartBackoff
from agent.pods.config_cache import ConfigCache, references
from agent.pods.dns import RESOLV_CONF, ClusterDNS, read_resolv_conf
from control.recorder import EventRecorder
from agent.pods.pod_sync import PodSyncer
from agent.pods.probes import ProbeManager
from control.reflector import Reflector
from agent.pods.relister import PodRelister
from agent.pods.service_account import ServiceAccountTokens
from agent.pods.starter import ContainerStarter
from agent.pods.status_manager import StatusManager
from agent.pods.volumes import VolumeManager
from agent.pods.workers import PodWorkers
from agent.runtime.base import RUNNING, ContainerRuntime
from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2, meta_pb2

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 2.0


def _uid_of(pod: core_pb2.Pod) -> str:
    return pod.metadata.uid


def _matters_to_agent(old: core_pb2.Pod | None, new: core_pb2.Pod) -> bool:
    """Whether a pod update calls for a sync (the agent's own status writes echo back and do not)."""
    if old is None:
        return True
    return old.spec != new.spec or _meta_without_version(old) != _meta_without_version(new)


def _meta_without_version(pod: core_pb2.Pod) -> meta_pb2.ObjectMeta:
    meta = meta_pb2.ObjectMeta()
    meta.CopyFrom(pod.metadata)
    meta.ClearField("resource_version")
    return meta


class PodManager:
    """Runs the pods bound to one node; see the module docstring. Call ``recover()``, then ``run()``."""

    def __init__(
        self, *, api: Client, runtime: ContainerRuntime, node_name: str, data_dir: str, host_ip: str,
        backoff: RestartBackoff | None = None, resync_seconds: float = 10.0, relist_seconds: float = 1.0,
        on_pod_started: Callable[[core_pb2.Pod], None] | None = None,
        cluster_dns: ClusterDNS = runtime_specs.NO_CLUSTER_DNS, resolv_conf: str = RESOLV_CONF,
    ) -> None:
        """on_pod_started is called once per pod when it is first reported Running; pods' DNS settings
        start from the host's resolv_conf and cluster_dns (agent/pods/dns.py)."""
        self._api = api
        self._runtime = runtime
        self.node_name = node_name
        self._resync_seconds = resync_seconds
        self._inbox: asyncio.Queue[tuple] = asyncio.Queue()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._removed: dict[str, core_pb2.Pod] = {}  # last known copy of pods gone from the API
        policy = backoff or RestartBackoff()

        self.pods: Reflector[core_pb2.Pod] = Reflector(
            api, "Pod", field_selector=f"spec.nodeName={node_name}", key=_uid_of, on_change=self._pod_changed)
        self.configs = ConfigCache(api, on_change=lambda kind, ns, name: self._inbox.put_nowait(
            ("config", kind, ns, name)))
        self.events = EventRecorder(api, node_name=node_name)
        self.relister = PodRelister(runtime, interval=relist_seconds,
                                    emit=lambda event: self._inbox.put_nowait(("lifecycle", event.pod_uid)))
        self.statuses = StatusManager(api, pod_of=self.pods.get, on_started=on_pod_started)
        self.probes = ProbeManager(runtime, on_change=lambda uid: self._inbox.put_nowait(("probe", uid)),
                                   recorder=self.events)
        self.tokens = ServiceAccountTokens(api)
        self.volumes = VolumeManager(data_dir, self.configs, self.tokens)
        crash_backoff = BackoffTracker(policy)
        starter = ContainerStarter(
            runtime=runtime, configs=self.configs, volumes=self.volumes, events=self.events,
            crash_backoff=crash_backoff, image_backoff=BackoffTracker(policy), host_ip=host_ip,
            schedule=self._schedule)
        self.syncer = PodSyncer(
            runtime=runtime, relister=self.relister, volumes=self.volumes, starter=starter, probes=self.probes,
            events=self.events, statuses=self.statuses, crash_backoff=crash_backoff, host_ip=host_ip,
            host_dns=read_resolv_conf(resolv_conf), cluster_dns=cluster_dns, schedule=self._schedule)
        self.workers = PodWorkers(self._sync, on_retry=self._schedule)

    # ------------------------------------------------------------ public

    async def recover(self) -> None:
        """Adopt what the runtime already runs (after an agent restart) as the relister's baseline.

        Nothing is started or stopped here: the first sync of each pod finds
        its containers running and keeps them (same ids, same restart counts);
        what belongs to no pod bound here is removed by housekeeping once the
        API has answered."""
        await self._learn_runtime_name()
        snapshot = await self.relister.list_now()
        self.relister.prime(snapshot)
        running = sum(1 for containers in snapshot.containers.values() for c in containers if c.state == RUNNING)
        log.info("recovered %d pods (%d running containers) from the runtime", len(snapshot.pod_uids()), running)

    async def run(self) -> None:
        """Until cancelled. Cancelling stops the agent's work, never the pods."""
        await self._learn_runtime_name()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.pods.run(), name="pods reflector")
                group.create_task(self.relister.run(), name="relister")
                group.create_task(self.statuses.run(), name="status manager")
                group.create_task(self.events.run(), name="event recorder")
                group.create_task(self._tick("resync", self._resync_seconds), name="resync tick")
                group.create_task(self._housekeeping_tick(), name="housekeeping tick")
                group.create_task(self._sync_loop(), name="sync loop")
        finally:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            self.probes.stop_all()
            await self.workers.stop()
            await self.configs.close()

    def pod_counts(self) -> tuple[int, int]:
        """Pods with a ready sandbox, and running containers (for metrics)."""
        snapshot = self.relister.snapshot
        pods = sum(1 for sandboxes in snapshot.sandboxes.values() if any(s.ready for s in sandboxes))
        containers = sum(1 for found in snapshot.containers.values() for c in found if c.state == RUNNING)
        return pods, containers

    # ------------------------------------------------------ message sources

    async def _learn_runtime_name(self) -> None:
        if not self.syncer.runtime_name:
            self.syncer.runtime_name = (await self._runtime.info()).name

    def _pod_changed(self, old: core_pb2.Pod | None, new: core_pb2.Pod | None) -> None:
        if new is None:
            self._removed[old.metadata.uid] = old
            self.configs.unregister(old.metadata.uid)
            self.tokens.forget(old.metadata.uid)
            self._inbox.put_nowait(("pod", old.metadata.uid))
        elif _matters_to_agent(old, new):
            self.configs.register(new)
            self._inbox.put_nowait(("pod", new.metadata.uid))

    def _schedule(self, uid: str, delay: float) -> None:
        """A sync of uid in delay seconds (the earliest request wins)."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        timer = self._timers.get(uid)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[uid] = loop.call_at(when, self._wake, uid)

    def _wake(self, uid: str) -> None:
        self._timers.pop(uid, None)
        self._inbox.put_nowait(("wake", uid))

    async def _tick(self, message: str, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self._inbox.put_nowait((message,))

    async def _housekeeping_tick(self) -> None:
        # At once when the first list has arrived (orphans of a restart go quickly), then periodically.
        await self.pods.synced.wait()
        self._inbox.put_nowait(("housekeeping",))
        await self._tick("housekeeping", HOUSEKEEPING_SECONDS)

    # ------------------------------------------------------------ the loop

    async def _sync_loop(self) -> None:
        while True:
            message = await self._inbox.get()
            kind = message[0]
            if kind in ("pod", "lifecycle", "probe", "wake"):
                self.workers.dispatch(message[1])
            elif kind == "resync":
                for uid in {*self.pods.items, *self._removed}:
                    self.workers.dispatch(uid)
            elif kind == "config":
                _, config_kind, namespace, name = message
                for uid, pod in self.pods.items.items():
                    if pod.metadata.namespace == namespace and (config_kind, name) in references(pod):
                        self.workers.dispatch(uid)
            elif kind == "housekeeping":
                self._housekeeping()

    def _housekeeping(self) -> None:
        """Sync what the runtime or the disk has of pods no longer bound here."""
        if not self.pods.synced.is_set():
            return
        known = set(self.pods.items)
        on_runtime = self.relister.snapshot.pod_uids()
        for uid in on_runtime - known:
            if not self.workers.busy(uid):
                self.workers.dispatch(uid)
        for uid in self.volumes.pod_dir_uids().keys() - known - on_runtime:
            if not self.workers.busy(uid):
                self.volumes.cleanup(uid)

    # -------------------------------------------------------- one pod's sync

    async def _sync(self, uid: str) -> None:
        pod = self.pods.get(uid)
        if pod is None:
            if self.pods.synced.is_set():
                await self._remove_orphan(uid)
            return
        if pod.metadata.HasField("deletion_timestamp"):
            await self._finish_deletion(pod)
            return
        await self.syncer.sync_pod(pod)

    async def _finish_deletion(self, pod: core_pb2.Pod) -> None:
        uid = pod.metadata.uid
        snapshot = await self.relister.newer_than(time.time())
        await self.syncer.terminate(pod, snapshot, grace=float(runtime_specs.grace_period(pod)))
        await self.syncer.remove(uid)
        try:
            await self._api.delete("Pod", pod.metadata.name, namespace=pod.metadata.namespace,
                                   grace_period_seconds=0, uid=uid)
        except (errors.NotFoundError, errors.ConflictError):
            pass  # already gone, or the name now belongs to another pod
        self.statuses.forget(uid)

    async def _remove_orphan(self, uid: str) -> None:
        pod = self._removed.get(uid)
        snapshot = await self.relister.newer_than(time.time())
        if snapshot.containers_of(uid) or snapshot.sandboxes_of(uid):
            if pod is not None:
                grace = float(runtime_specs.grace_period(pod))
            else:
                labels = next((s.labels for s in snapshot.sandboxes_of(uid)), {})
                grace = float(labels.get(runtime_specs.LABEL_GRACE_PERIOD, "30"))
            log.info("pod %s is no longer bound to this node; stopping it", uid)
            await self.syncer.terminate(pod, snapshot, grace=grace, uid=uid)
        await self.syncer.remove(uid)
        self.statuses.forget(uid)
        self._removed.pop(uid, None)
