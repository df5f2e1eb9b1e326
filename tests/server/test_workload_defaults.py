"""Defaulting of the workload kinds (control/server/defaults.py): Kubernetes'
apps/v1, batch/v1 and autoscaling/v2 defaults.

Covered: replicas, update strategies and their rolling-update numbers (only
for the RollingUpdate type), history limits and progress deadlines; a Job's
parallelism and completions (Kubernetes' rule for which stays unset), its
policies and labels; a CronJob's policies and limits; an autoscaler's minimum,
default CPU metric and behavior rules. Pod templates get the per-spec pod
defaults but not what only Pods get (tolerations, service account, service
links, requests from limits). Client values are kept, and defaulting twice
changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from control.api import kinds
from control.api.manifest import from_dict, to_dict
from control.server.defaults import apply_defaults
from tests.server.validation.workloads import a_cron_job, a_job, a_template, a_workload, an_autoscaler


def defaulted(obj: dict[str, Any]) -> Message:
    kind = kinds.by_api_version_kind(obj["apiVersion"], obj["kind"])
    message = from_dict(kind, obj)
    apply_defaults(kind, message)
    return message


def spec_dict(obj: dict[str, Any]) -> dict[str, Any]:
    return to_dict(defaulted(obj))["spec"]


# ---------------------------------------------------------------- apps/v1


def test_a_deployment_gets_kubernetes_defaults() -> None:
    spec = spec_dict(a_workload("Deployment"))
    assert (spec["replicas"], spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (1, 10, 600)
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}


def test_a_deployment_keeps_its_own_values_including_zero_replicas() -> None:
    spec = spec_dict(a_workload("Deployment", replicas=0, strategy={"rollingUpdate": {"maxSurge": 0}}))
    assert spec["replicas"] == 0
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": 0}


def test_a_recreate_deployment_gets_no_rolling_update() -> None:
    assert spec_dict(a_workload("Deployment", strategy={"type": "Recreate"}))["strategy"] == {"type": "Recreate"}


def test_a_replica_set_gets_one_replica() -> None:
    assert spec_dict(a_workload("ReplicaSet"))["replicas"] == 1


def test_a_daemon_set_rolls_one_node_at_a_time_without_surge() -> None:
    spec = spec_dict(a_workload("DaemonSet"))
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["revisionHistoryLimit"] == 10


def test_an_on_delete_daemon_set_gets_no_rolling_update() -> None:
    assert spec_dict(a_workload("DaemonSet", updateStrategy={"type": "OnDelete"}))["updateStrategy"] == {
        "type": "OnDelete"}


def test_a_stateful_set_gets_kubernetes_defaults() -> None:
    spec = spec_dict(a_workload("StatefulSet"))
    assert (spec["replicas"], spec["podManagementPolicy"], spec["revisionHistoryLimit"]) == (1, "OrderedReady", 10)
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}


def test_a_stateful_set_partition_defaults_only_inside_a_given_rolling_update() -> None:
    # Kubernetes adds an empty rollingUpdate only when it defaults the type itself.
    explicit = spec_dict(a_workload("StatefulSet", updateStrategy={"type": "RollingUpdate"}))
    assert explicit["updateStrategy"] == {"type": "RollingUpdate"}
    given = spec_dict(a_workload("StatefulSet", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {}}))
    assert given["updateStrategy"]["rollingUpdate"] == {"partition": 0}


# ------------------------------------------------------------ pod templates


def test_a_template_gets_the_pod_spec_defaults() -> None:
    template = defaulted(a_workload("Deployment")).spec.template.spec
    container = template.containers[0]
    assert (template.restart_policy, template.termination_grace_period_seconds, template.dns_policy,
            template.scheduler_name) == ("Always", 30, "ClusterFirst", "default-scheduler")
    assert (container.image_pull_policy, container.termination_message_path,
            container.termination_message_policy) == ("IfNotPresent", "/dev/termination-log", "File")


def test_a_template_gets_probe_and_port_defaults() -> None:
    template = a_template(containers=[{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                                       "readinessProbe": {"httpGet": {"port": 80}}}])
    container = defaulted(a_workload("Deployment", template=template)).spec.template.spec.containers[0]
    assert (container.ports[0].protocol, container.readiness_probe.period_seconds,
            container.readiness_probe.http_get.path, container.image_pull_policy) == ("TCP", 10, "/", "Always")


@pytest.mark.parametrize("kind", ["ReplicaSet", "Deployment", "DaemonSet", "StatefulSet"])
def test_a_template_gets_none_of_the_defaults_only_pods_get(kind: str) -> None:
    template = a_template(hostNetwork=True, containers=[{
        "name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
        "resources": {"limits": {"cpu": "500m"}}}])
    spec = defaulted(a_workload(kind, template=template)).spec.template.spec
    assert list(spec.tolerations) == []
    assert not spec.HasField("service_account_name") and not spec.HasField("enable_service_links")
    assert dict(spec.containers[0].resources.requests) == {}
    assert spec.containers[0].ports[0].host_port == 0


def test_a_template_takes_its_service_account_from_the_deprecated_field() -> None:
    template = a_template(serviceAccount="builder")
    assert defaulted(a_workload("Deployment", template=template)).spec.template.spec.service_account_name == "builder"


# ---------------------------------------------------------------- batch/v1


def test_a_job_runs_one_pod_to_one_completion_by_default() -> None:
    spec = spec_dict(a_job())
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"], spec["manualSelector"], spec["podReplacementPolicy"]) == (
        "NonIndexed", False, False, "TerminatingOrFailed")


def test_a_job_with_parallelism_alone_is_a_work_queue_without_completions() -> None:
    spec = spec_dict(a_job(parallelism=3))
    assert spec["parallelism"] == 3 and "completions" not in spec


def test_a_job_with_completions_alone_runs_one_pod_at_a_time() -> None:
    spec = spec_dict(a_job(completions=5))
    assert (spec["parallelism"], spec["completions"]) == (1, 5)


def test_a_job_template_gets_pod_spec_defaults_and_keeps_its_restart_policy() -> None:
    template = defaulted(a_job()).spec.template.spec
    assert (template.restart_policy, template.dns_policy) == ("Never", "ClusterFirst")


def test_a_job_without_labels_takes_its_templates() -> None:
    job = a_job()
    job["spec"]["template"]["metadata"]["labels"] = {"app": "pi"}
    assert dict(defaulted(job).metadata.labels) == {"app": "pi"}
    job["metadata"]["labels"] = {"team": "math"}
    assert dict(defaulted(job).metadata.labels) == {"team": "math"}


def test_a_cron_job_gets_kubernetes_defaults() -> None:
    spec = spec_dict(a_cron_job())
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)


def test_a_cron_job_template_gets_pod_defaults_but_its_job_spec_stays_as_written() -> None:
    job_spec = defaulted(a_cron_job()).spec.job_template.spec
    assert job_spec.template.spec.dns_policy == "ClusterFirst"
    assert not job_spec.HasField("backoff_limit") and not job_spec.HasField("parallelism")


# ---------------------------------------------------------- autoscaling/v2


def test_an_autoscaler_defaults_to_one_replica_and_80_percent_cpu() -> None:
    spec = spec_dict(an_autoscaler())
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert "behavior" not in spec


def test_an_autoscaler_keeps_its_own_metrics() -> None:
    metrics = [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                             "averageValue": "200Mi"}}}]
    assert spec_dict(an_autoscaler(metrics=metrics))["metrics"] == metrics


def test_a_given_behavior_is_completed_with_kubernetes_rules() -> None:
    behavior = spec_dict(an_autoscaler(behavior={"scaleDown": {"stabilizationWindowSeconds": 60}}))["behavior"]
    assert behavior["scaleUp"] == {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert behavior["scaleDown"] == {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]}


def test_an_empty_behavior_gets_the_default_scale_down_window() -> None:
    behavior = spec_dict(an_autoscaler(behavior={}))["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300


# ------------------------------------------------------------------ general


@pytest.mark.parametrize("obj", [
    a_workload("ReplicaSet"), a_workload("Deployment"), a_workload("DaemonSet"), a_workload("StatefulSet"),
    a_job(), a_cron_job(), an_autoscaler(behavior={}),
], ids=lambda obj: obj["kind"])
def test_defaulting_a_workload_twice_changes_nothing(obj: dict[str, Any]) -> None:
    once = defaulted(obj)
    twice = type(once)()
    twice.CopyFrom(once)
    apply_defaults(kinds.by_kind(obj["kind"]), twice)
    assert twice == once
