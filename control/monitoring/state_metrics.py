"""Cluster-state gauges: what kube-state-metrics reports, from the control service.

Kubernetes leaves "how many pods are Running, is every node Ready, does each
Deployment have its replicas" to a separate exporter, kube-state-metrics,
which lists and watches the API and turns objects into series at scrape
time. The control service's leader already holds those objects in its
informers (the scheduler's and the controllers' shared copies), so Sampan
computes the same series there, with the same names under ``sampan_`` and
the same label sets, so kube-state-metrics dashboards and alerts need only
the prefix changed:

- ``sampan_pod_status_phase{namespace,pod,uid,phase}``: 1 for the pod's phase,
  0 for the four others (a pod with no phase yet has no series);
- ``sampan_pod_status_ready{namespace,pod,uid,condition}``: the Ready condition
  as true/false/unknown, 1 for its status;
- ``sampan_pod_info{namespace,pod,uid,node,host_ip,pod_ip,created_by_kind,created_by_name}``;
- ``sampan_pod_container_status_restarts_total{namespace,pod,uid,container}`` (a counter);
- ``sampan_pod_container_status_ready`` and ``..._running{namespace,pod,uid,container}``;
- ``sampan_pod_container_status_waiting_reason{namespace,pod,uid,container,reason}``:
  1 while the container waits for that reason (CrashLoopBackOff, ErrImagePull...);
- ``sampan_node_status_condition{node,condition,status}``: every condition
  the node reports, 1 for its status among true/false/unknown;
- ``sampan_node_info{node,internal_ip,kernel_version,os_image,container_runtime_version,kubelet_version}``,
  ``sampan_node_spec_unschedulable{node}``;
- ``sampan_deployment_spec_replicas``, ``sampan_deployment_status_replicas``
  (``_available``, ``_unavailable``, ``_updated``, ``_ready``),
  ``sampan_deployment_metadata_generation`` and
  ``sampan_deployment_status_observed_generation{namespace,deployment}``.

``state_families`` is a pure function of a ``ClusterSnapshot``.
``ClusterStateCollector`` asks for a snapshot at each scrape (from the
scraping thread; the caller takes it on its event loop) and reports nothing
while there is none: a replica that does not lead, or informers not yet
synced, would otherwise report an empty cluster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from protos.api.v1 import apps_pb2, core_pb2

log = logging.getLogger(__name__)

POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
CONDITION_STATUSES = ("true", "false", "unknown")
# The kinds a snapshot holds, for whoever keeps the copies.
SNAPSHOT_KINDS = ("Pod", "Node", "Deployment")


@dataclass(frozen=True)
class ClusterSnapshot:
    """The objects at one moment; shared copies, never changed."""

    pods: Sequence[core_pb2.Pod] = ()
    nodes: Sequence[core_pb2.Node] = ()
    deployments: Sequence[apps_pb2.Deployment] = ()


def _status_label(status: str) -> str:
    return status.lower() if status.lower() in ("true", "false") else "unknown"


def _status_samples(family: GaugeMetricFamily, labels: list[str], status: str) -> None:
    """One sample per true/false/unknown, 1 for the given condition status (kube-state-metrics' encoding)."""
    actual = _status_label(status)
    for candidate in CONDITION_STATUSES:
        family.add_metric([*labels, candidate], 1.0 if candidate == actual else 0.0)


def _created_by(pod: core_pb2.Pod) -> tuple[str, str]:
    for ref in pod.metadata.owner_references:
        if ref.controller:
            return ref.kind, ref.name
    return "<none>", "<none>"


def pod_families(pods: Iterable[core_pb2.Pod]) -> list[Metric]:
    pod_labels = ["namespace", "pod", "uid"]
    container_labels = [*pod_labels, "container"]
    phase = GaugeMetricFamily("sampan_pod_status_phase", "The pod's current phase.", labels=[*pod_labels, "phase"])
    ready = GaugeMetricFamily("sampan_pod_status_ready", "Whether the pod is ready to serve requests.",
                              labels=[*pod_labels, "condition"])
    info = GaugeMetricFamily("sampan_pod_info", "Information about the pod.", labels=[
        *pod_labels, "node", "host_ip", "pod_ip", "created_by_kind", "created_by_name"])
    restarts = CounterMetricFamily("sampan_pod_container_status_restarts",
                                   "The number of container restarts per container.", labels=container_labels)
    container_ready = GaugeMetricFamily("sampan_pod_container_status_ready",
                                        "Whether the container's readiness check succeeded.", labels=container_labels)
    running = GaugeMetricFamily("sampan_pod_container_status_running",
                                "Whether the container is currently running.", labels=container_labels)
    waiting = GaugeMetricFamily("sampan_pod_container_status_waiting_reason",
                                "Why the container is waiting, while it waits.", labels=[*container_labels, "reason"])
    for pod in pods:
        meta, status = pod.metadata, pod.status
        ids = [meta.namespace, meta.name, meta.uid]
        info.add_metric([*ids, pod.spec.node_name, status.host_ip, status.pod_ip, *_created_by(pod)], 1.0)
        if status.phase:
            for candidate in POD_PHASES:
                phase.add_metric([*ids, candidate], 1.0 if candidate == status.phase else 0.0)
        condition = next((c for c in status.conditions if c.type == "Ready"), None)
        if condition is not None:
            _status_samples(ready, ids, condition.status)
        for container in status.container_statuses:
            labels = [*ids, container.name]
            restarts.add_metric(labels, float(container.restart_count))
            container_ready.add_metric(labels, 1.0 if container.ready else 0.0)
            running.add_metric(labels, 1.0 if container.state.HasField("running") else 0.0)
            if container.state.HasField("waiting") and container.state.waiting.reason:
                waiting.add_metric([*labels, container.state.waiting.reason], 1.0)
    return [phase, ready, info, restarts, container_ready, running, waiting]


def node_families(nodes: Iterable[core_pb2.Node]) -> list[Metric]:
    condition = GaugeMetricFamily("sampan_node_status_condition", "The condition of a cluster node.",
                                  labels=["node", "condition", "status"])
    info = GaugeMetricFamily("sampan_node_info", "Information about a cluster node.", labels=[
        "node", "internal_ip", "kernel_version", "os_image", "container_runtime_version", "kubelet_version"])
    unschedulable = GaugeMetricFamily("sampan_node_spec_unschedulable",
                                      "Whether a node can schedule new pods.", labels=["node"])
    for node in nodes:
        name, status = node.metadata.name, node.status
        for reported in status.conditions:
            _status_samples(condition, [name, reported.type], reported.status)
        internal_ip = next((a.address for a in status.addresses if a.type == "InternalIP"), "")
        node_info = status.node_info
        info.add_metric([name, internal_ip, node_info.kernel_version, node_info.os_image,
                         node_info.container_runtime_version, node_info.kubelet_version], 1.0)
        unschedulable.add_metric([name], 1.0 if node.spec.unschedulable else 0.0)
    return [condition, info, unschedulable]


_DEPLOYMENT_GAUGES = (
    ("sampan_deployment_spec_replicas", "Number of desired pods for a deployment.",
     lambda d: d.spec.replicas if d.spec.HasField("replicas") else 1),
    ("sampan_deployment_status_replicas", "The number of replicas per deployment.",
     lambda d: d.status.replicas),
    ("sampan_deployment_status_replicas_available", "The number of available replicas per deployment.",
     lambda d: d.status.available_replicas),
    ("sampan_deployment_status_replicas_unavailable", "The number of unavailable replicas per deployment.",
     lambda d: d.status.unavailable_replicas),
    ("sampan_deployment_status_replicas_updated", "The number of updated replicas per deployment.",
     lambda d: d.status.updated_replicas),
    ("sampan_deployment_status_replicas_ready", "The number of ready replicas per deployment.",
     lambda d: d.status.ready_replicas),
    ("sampan_deployment_metadata_generation", "Sequence number representing a specific generation of the "
     "desired state.", lambda d: d.metadata.generation),
    ("sampan_deployment_status_observed_generation", "The generation observed by the deployment controller.",
     lambda d: d.status.observed_generation),
)


def deployment_families(deployments: Iterable[apps_pb2.Deployment]) -> list[Metric]:
    families = [(GaugeMetricFamily(name, text, labels=["namespace", "deployment"]), value)
                for name, text, value in _DEPLOYMENT_GAUGES]
    for deployment in deployments:
        labels = [deployment.metadata.namespace, deployment.metadata.name]
        for family, value in families:
            family.add_metric(labels, float(value(deployment)))
    return [family for family, _value in families]


def state_families(snapshot: ClusterSnapshot) -> list[Metric]:
    """Every cluster-state metric family of the snapshot."""
    return [*pod_families(snapshot.pods), *node_families(snapshot.nodes),
            *deployment_families(snapshot.deployments)]


class ClusterStateCollector(Collector):
    """A prometheus_client collector over ``snapshot()`` (None: report nothing)."""

    def __init__(self, snapshot: Callable[[], ClusterSnapshot | None]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = self._snapshot()
        except Exception as err:  # a scrape must not fail over this: the other metrics still count
            log.warning("no cluster-state metrics this scrape: %s", err or type(err).__name__)
            return
        if snapshot is not None:
            yield from state_families(snapshot)
