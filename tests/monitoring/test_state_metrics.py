"""The cluster-state gauges (control/monitoring/state_metrics.py): each names
the object by kube-state-metrics' labels and encodes phases and condition
statuses as kube-state-metrics does, one sample per possible value."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control.monitoring.state_metrics import ClusterSnapshot, ClusterStateCollector, state_families
from protos.api.v1 import apps_pb2, core_pb2


def samples(snapshot: ClusterSnapshot) -> dict[tuple[str, tuple], float]:
    """name and sorted labels -> value, as a scrape of the collector shows them."""
    registry = CollectorRegistry()
    registry.register(ClusterStateCollector(lambda: snapshot))
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def pod(name: str, *, phase: str = "Running", ready: str | None = "True", node: str = "n1") -> core_pb2.Pod:
    obj = core_pb2.Pod(api_version="v1", kind="Pod")
    obj.metadata.name, obj.metadata.namespace, obj.metadata.uid = name, "web", f"uid-{name}"
    obj.spec.node_name = node
    obj.status.phase = phase
    if ready is not None:
        obj.status.conditions.add(type="Ready", status=ready)
    return obj


def labels(**pairs: str) -> tuple:
    return tuple(sorted(pairs.items()))


def test_a_pod_has_1_for_its_phase_and_0_for_the_four_others():
    found = samples(ClusterSnapshot(pods=[pod("api", phase="Pending")]))
    values = {phase: found[("sampan_pod_status_phase", labels(namespace="web", pod="api", uid="uid-api",
                                                              phase=phase))]
              for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown")}
    assert values == {"Pending": 1, "Running": 0, "Succeeded": 0, "Failed": 0, "Unknown": 0}


def test_a_pod_without_a_phase_has_no_phase_series():
    found = samples(ClusterSnapshot(pods=[pod("new", phase="")]))
    assert not [key for key in found if key[0] == "sampan_pod_status_phase"]
    assert found[("sampan_pod_info", labels(namespace="web", pod="new", uid="uid-new", node="n1", host_ip="",
                                            pod_ip="", created_by_kind="<none>", created_by_name="<none>"))] == 1


def test_pod_readiness_is_true_false_or_unknown():
    found = samples(ClusterSnapshot(pods=[pod("a", ready="False"), pod("b", ready="Unknown"), pod("c", ready=None)]))
    ready = {(dict(key[1])["pod"], dict(key[1])["condition"]): value
             for key, value in found.items() if key[0] == "sampan_pod_status_ready"}
    assert ready == {("a", "true"): 0, ("a", "false"): 1, ("a", "unknown"): 0,
                     ("b", "true"): 0, ("b", "false"): 0, ("b", "unknown"): 1}


def test_containers_report_restarts_readiness_running_and_why_they_wait():
    crashing = pod("api", ready="False")
    crashing.metadata.owner_references.add(kind="ReplicaSet", name="api-5d8f", controller=True)
    status = crashing.status.container_statuses.add(name="app", restart_count=4, ready=False)
    status.state.waiting.reason = "CrashLoopBackOff"
    sidecar = crashing.status.container_statuses.add(name="sidecar", restart_count=0, ready=True)
    sidecar.state.running.started_at = "2024-01-01T00:00:00Z"
    found = samples(ClusterSnapshot(pods=[crashing]))
    ids = dict(namespace="web", pod="api", uid="uid-api")
    assert found[("sampan_pod_container_status_restarts_total", labels(**ids, container="app"))] == 4
    assert found[("sampan_pod_container_status_waiting_reason",
                  labels(**ids, container="app", reason="CrashLoopBackOff"))] == 1
    assert not [key for key in found
                if key[0] == "sampan_pod_container_status_waiting_reason" and ("container", "sidecar") in key[1]]
    assert found[("sampan_pod_container_status_running", labels(**ids, container="app"))] == 0
    assert found[("sampan_pod_container_status_running", labels(**ids, container="sidecar"))] == 1
    assert found[("sampan_pod_container_status_ready", labels(**ids, container="sidecar"))] == 1
    info = [key for key in found if key[0] == "sampan_pod_info"]
    assert dict(info[0][1])["created_by_kind"] == "ReplicaSet" and dict(info[0][1])["created_by_name"] == "api-5d8f"


def test_every_node_condition_is_reported_with_its_status():
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = "n1"
    node.status.conditions.add(type="Ready", status="Unknown")
    node.status.conditions.add(type="MemoryPressure", status="False")
    node.status.addresses.add(type="InternalIP", address="10.0.0.5")
    node.spec.unschedulable = True
    found = samples(ClusterSnapshot(nodes=[node]))
    conditions = {(dict(key[1])["condition"], dict(key[1])["status"]): value
                  for key, value in found.items() if key[0] == "sampan_node_status_condition"}
    assert conditions == {("Ready", "true"): 0, ("Ready", "false"): 0, ("Ready", "unknown"): 1,
                          ("MemoryPressure", "true"): 0, ("MemoryPressure", "false"): 1,
                          ("MemoryPressure", "unknown"): 0}
    assert found[("sampan_node_spec_unschedulable", labels(node="n1"))] == 1
    assert [dict(key[1])["internal_ip"] for key in found if key[0] == "sampan_node_info"] == ["10.0.0.5"]


def test_deployments_report_desired_and_observed_replicas():
    deployment = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    deployment.metadata.name, deployment.metadata.namespace, deployment.metadata.generation = "api", "web", 3
    deployment.spec.replicas = 3
    status = deployment.status
    status.replicas, status.available_replicas, status.unavailable_replicas = 3, 2, 1
    status.updated_replicas, status.ready_replicas, status.observed_generation = 3, 2, 3
    found = samples(ClusterSnapshot(deployments=[deployment]))
    by_name = {key[0]: value for key, value in found.items() if key[1] == labels(namespace="web", deployment="api")}
    assert by_name == {
        "sampan_deployment_spec_replicas": 3, "sampan_deployment_status_replicas": 3,
        "sampan_deployment_status_replicas_available": 2, "sampan_deployment_status_replicas_unavailable": 1,
        "sampan_deployment_status_replicas_updated": 3, "sampan_deployment_status_replicas_ready": 2,
        "sampan_deployment_metadata_generation": 3, "sampan_deployment_status_observed_generation": 3,
    }


def test_without_a_snapshot_or_when_taking_one_fails_nothing_is_reported():
    def broken() -> ClusterSnapshot:
        raise TimeoutError("the event loop did not answer")

    for source in (lambda: None, broken):
        registry = CollectorRegistry()
        registry.register(ClusterStateCollector(source))
        assert generate_latest(registry) == b""


def test_an_empty_cluster_gives_families_without_samples():
    families = state_families(ClusterSnapshot())
    assert {family.name for family in families} >= {"sampan_pod_status_phase", "sampan_node_status_condition",
                                                     "sampan_deployment_status_replicas_available"}
    assert all(not family.samples for family in families)
