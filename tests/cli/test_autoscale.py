"""``sampan autoscale`` end to end against a real control service: the
HorizontalPodAutoscaler it creates for a Deployment, ReplicaSet or
StatefulSet (with the server's defaults for what is left out), its output
forms, and kubectl's errors for a missing --max, --max below --min, a kind
that cannot scale and a target that does not exist."""

from __future__ import annotations

import pytest
import yaml

from tests.cli import sampan

WORKLOAD = """\
apiVersion: apps/v1
kind: {kind}
metadata: {{name: web}}
spec:
  replicas: 1
  serviceName: web
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: busybox:1.36, resources: {{requests: {{cpu: 100m}}}}}}]
"""


def create_workload(capsys, server, kind: str = "Deployment") -> None:
    manifest = yaml.safe_load(WORKLOAD.format(kind=kind))
    if kind != "StatefulSet":
        del manifest["spec"]["serviceName"]
    result = sampan(capsys, server, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    assert result.code == 0, result.err


def get_hpa(capsys, server, name: str = "web") -> dict:
    result = sampan(capsys, server, "get", "hpa", name, "-o", "yaml")
    assert result.code == 0, result.err
    return yaml.safe_load(result.out)


def test_autoscale_creates_an_hpa_for_the_deployment(capsys, control_server):
    create_workload(capsys, control_server)
    result = sampan(capsys, control_server, "autoscale", "deployment/web", "--min", "2", "--max", "5",
                    "--cpu-percent", "60")
    assert (result.code, result.out, result.err) == (0, "horizontalpodautoscaler.autoscaling/web autoscaled\n", "")
    spec = get_hpa(capsys, control_server)["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 5)
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]


@pytest.mark.parametrize("kind", ["ReplicaSet", "StatefulSet"])
def test_autoscale_takes_kind_and_name_apart_and_leaves_the_rest_to_the_servers_defaults(
        capsys, control_server, kind):
    create_workload(capsys, control_server, kind)
    result = sampan(capsys, control_server, "autoscale", kind.lower(), "web", "--max", "3", "--name", "web-hpa")
    assert result.out == "horizontalpodautoscaler.autoscaling/web-hpa autoscaled\n"
    spec = get_hpa(capsys, control_server, "web-hpa")["spec"]
    assert spec["scaleTargetRef"]["kind"] == kind
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 3)
    assert spec["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}


def test_autoscale_output_and_client_dry_run(capsys, control_server):
    create_workload(capsys, control_server)
    dry = sampan(capsys, control_server, "autoscale", "deploy/web", "--max", "4", "--dry-run=client", "-o", "yaml")
    assert dry.code == 0
    assert yaml.safe_load(dry.out)["spec"]["maxReplicas"] == 4
    assert sampan(capsys, control_server, "get", "hpa", "web").code == 1  # nothing was created
    named = sampan(capsys, control_server, "autoscale", "deploy/web", "--max", "4", "-o", "name")
    assert named.out == "horizontalpodautoscaler.autoscaling/web\n"


def test_max_is_required(capsys, control_server):
    result = sampan(capsys, control_server, "autoscale", "deployment/web")
    assert (result.code, result.err) == (1, "error: --max=MAXPODS is required and must be at least 1, max: -1\n")


def test_max_below_min_is_refused(capsys, control_server):
    result = sampan(capsys, control_server, "autoscale", "deployment/web", "--min", "4", "--max", "2")
    assert (result.code, result.err) == (
        1, "error: --max=MAXPODS must be larger or equal to --min=MINPODS, max: 2, min: 4\n")


def test_a_kind_that_cannot_scale_is_refused(capsys, control_server):
    result = sampan(capsys, control_server, "autoscale", "pod/web", "--max", "2")
    assert (result.code, result.err) == (
        1, "error: cannot autoscale a Pod: only Deployments, ReplicaSets and StatefulSets can be autoscaled\n")


def test_a_missing_target_is_not_found(capsys, control_server):
    result = sampan(capsys, control_server, "autoscale", "deployment/absent", "--max", "2")
    assert result.code == 1
    assert result.err.startswith("Error from server (NotFound): ") and '"absent" not found' in result.err
    assert sampan(capsys, control_server, "get", "hpa", "absent").code == 1


def test_the_server_refuses_a_min_below_one(capsys, control_server):
    create_workload(capsys, control_server)
    result = sampan(capsys, control_server, "autoscale", "deployment/web", "--min", "0", "--max", "2")
    assert result.code == 1
    assert "spec.minReplicas" in result.err
