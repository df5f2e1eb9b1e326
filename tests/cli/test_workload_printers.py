"""``get`` tables for the workload kinds (control/cli/workload_cells.py via
printers.COLUMNS): kubectl's headers and wide headers, and each kind's cells
from its spec and status: ready counts, node selectors, controller names,
a Job's STATUS, COMPLETIONS and DURATION, a CronJob's schedule columns, an
autoscaler's TARGETS, and label selectors as kubectl formats them."""

from __future__ import annotations

from typing import Any

import pytest

from control.api import kinds, manifest
from control.cli import printers
from tests.cli.test_printers import CREATED, NOW

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.25"},
                                    {"name": "log", "image": "busybox:1.36"}]}}


def obj(kind: str, *, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None):
    found = kinds.by_kind(kind)
    return manifest.to_message({
        "apiVersion": found.api_version, "kind": kind,
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED, **(metadata or {})},
        **({"spec": spec} if spec is not None else {}), **({"status": status} if status is not None else {}),
    })


def cells(message, *, wide: bool = False) -> list[str]:
    kind = kinds.by_type_url(kinds.TYPE_URL_PREFIX + message.DESCRIPTOR.full_name)
    return printers.row(kind, message, now=NOW, wide=wide)


@pytest.mark.parametrize(("kind", "headers", "wide"), [
    ("Deployment", "NAME READY UP-TO-DATE AVAILABLE AGE", "CONTAINERS IMAGES SELECTOR"),
    ("ReplicaSet", "NAME DESIRED CURRENT READY AGE", "CONTAINERS IMAGES SELECTOR"),
    ("DaemonSet", "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE_SELECTOR AGE", "CONTAINERS IMAGES SELECTOR"),
    ("StatefulSet", "NAME READY AGE", "CONTAINERS IMAGES"),
    ("ControllerRevision", "NAME CONTROLLER REVISION AGE", ""),
    ("Job", "NAME STATUS COMPLETIONS DURATION AGE", "CONTAINERS IMAGES SELECTOR"),
    ("CronJob", "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST_SCHEDULE AGE", "CONTAINERS IMAGES SELECTOR"),
    ("HorizontalPodAutoscaler", "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE", ""),
])
def test_headers_are_kubectls(kind: str, headers: str, wide: str) -> None:
    expected = [header.replace("_", " ") for header in headers.split()]
    assert printers.headers(kinds.by_kind(kind)) == expected
    assert printers.headers(kinds.by_kind(kind), wide=True) == expected + wide.split()
    assert printers.headers(kinds.by_kind(kind), all_namespaces=True)[0] == "NAMESPACE"


def test_a_deployment_shows_ready_of_desired_and_its_template_when_wide() -> None:
    deployment = obj("Deployment", spec={"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                         "template": TEMPLATE},
                     status={"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2})
    assert cells(deployment) == ["web", "2/3", "3", "2", "60s"]
    assert cells(deployment, wide=True)[5:] == ["web,log", "nginx:1.25,busybox:1.36", "app=web"]


def test_a_new_deployment_reads_zero_of_desired() -> None:
    deployment = obj("Deployment", spec={"replicas": 2, "template": TEMPLATE})
    assert cells(deployment, wide=True) == ["web", "0/2", "0", "0", "60s", "web,log", "nginx:1.25,busybox:1.36",
                                            "<none>"]


def test_a_replica_set_shows_desired_current_and_ready() -> None:
    rs = obj("ReplicaSet", spec={"replicas": 3, "template": TEMPLATE, "selector": {
        "matchLabels": {"pod-template-hash": "5d9c7f"},
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]},
                             {"key": "canary", "operator": "DoesNotExist"}]}},
             status={"replicas": 3, "readyReplicas": 1})
    assert cells(rs) == ["web", "3", "3", "1", "60s"]
    assert cells(rs, wide=True)[-1] == "app in (api,web),!canary,pod-template-hash=5d9c7f"


def test_a_daemon_set_counts_nodes_and_shows_its_node_selector() -> None:
    template = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "nodeSelector": {"kubernetes.io/os": "linux",
                                                                          "disk": "ssd"}}}
    ds = obj("DaemonSet", spec={"template": template},
             status={"desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberReady": 3,
                     "updatedNumberScheduled": 2, "numberAvailable": 3})
    assert cells(ds) == ["web", "4", "4", "3", "2", "3", "disk=ssd,kubernetes.io/os=linux", "60s"]
    assert cells(obj("DaemonSet", spec={"template": TEMPLATE}))[6] == "<none>"


def test_a_stateful_set_shows_ready_of_desired_and_no_selector_when_wide() -> None:
    sts = obj("StatefulSet", spec={"replicas": 3, "template": TEMPLATE, "selector": {"matchLabels": {"app": "web"}}},
              status={"readyReplicas": 3})
    assert cells(sts) == ["web", "3/3", "60s"]
    assert cells(sts, wide=True) == ["web", "3/3", "60s", "web,log", "nginx:1.25,busybox:1.36"]


def test_a_controller_revision_names_its_controller_with_its_group() -> None:
    owned = obj("ControllerRevision", metadata={"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u1", "controller": True}]})
    owned.revision = 3
    assert cells(owned) == ["web", "daemonset.apps/agent", "3", "60s"]
    assert cells(obj("ControllerRevision"))[1] == "<none>"


# ----------------------------------------------------------------------- Job


@pytest.mark.parametrize(("conditions", "deleting", "status"), [
    ([], False, "Running"),
    ([{"type": "Complete", "status": "True"}], False, "Complete"),
    ([{"type": "Failed", "status": "True"}], True, "Failed"),
    ([{"type": "Suspended", "status": "True"}], False, "Suspended"),
    ([{"type": "Suspended", "status": "False"}], False, "Running"),
    ([{"type": "Suspended", "status": "True"}], True, "Terminating"),
    ([{"type": "FailureTarget", "status": "True"}], False, "FailureTarget"),
])
def test_a_job_status_comes_from_its_conditions(conditions, deleting: bool, status: str) -> None:
    metadata = {"deletionTimestamp": CREATED} if deleting else {}
    job = obj("Job", spec={"completions": 1, "template": TEMPLATE}, status={"conditions": conditions},
              metadata=metadata)
    assert cells(job)[1] == status


@pytest.mark.parametrize(("spec", "completions"), [
    ({"completions": 5, "parallelism": 2}, "2/5"),
    ({"parallelism": 3}, "2/1 of 3"),
    ({"parallelism": 1}, "2/1"),
])
def test_job_completions_read_succeeded_of_wanted(spec: dict, completions: str) -> None:
    assert cells(obj("Job", spec={**spec, "template": TEMPLATE}, status={"succeeded": 2}))[2] == completions


def test_a_job_duration_runs_from_start_to_completion_or_now() -> None:
    assert cells(obj("Job", spec={"template": TEMPLATE}))[3] == ""
    running = obj("Job", spec={"template": TEMPLATE}, status={"startTime": "2024-05-01T11:58:00Z"})
    assert cells(running)[3] == "2m"
    done = obj("Job", spec={"template": TEMPLATE}, status={"startTime": "2024-05-01T11:00:00Z",
                                                            "completionTime": "2024-05-01T11:03:20Z"})
    assert cells(done)[3] == "3m20s"


def test_a_job_shows_its_generated_selector_when_wide() -> None:
    job = obj("Job", spec={"template": TEMPLATE, "selector": {"matchLabels": {
        "batch.kubernetes.io/controller-uid": "u1"}}})
    assert cells(job, wide=True)[5:] == ["web,log", "nginx:1.25,busybox:1.36", "batch.kubernetes.io/controller-uid=u1"]


# ------------------------------------------------------------------- CronJob


def test_a_cron_job_shows_its_schedule_suspension_and_activity() -> None:
    cron_job = obj("CronJob", spec={"schedule": "*/5 * * * *", "suspend": False,
                                    "jobTemplate": {"spec": {"template": TEMPLATE}}},
                   status={"active": [{"name": "web-28583040"}], "lastScheduleTime": "2024-05-01T11:55:00Z"})
    assert cells(cron_job) == ["web", "*/5 * * * *", "<none>", "False", "1", "5m", "60s"]
    assert cells(cron_job, wide=True)[7:] == ["web,log", "nginx:1.25,busybox:1.36", "<none>"]


def test_a_cron_job_that_never_ran_and_has_a_time_zone() -> None:
    cron_job = obj("CronJob", spec={"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "suspend": True})
    assert cells(cron_job) == ["web", "0 3 * * *", "Europe/Paris", "True", "0", "<none>", "60s"]
    assert cells(obj("CronJob", spec={"schedule": "@daily"}))[3] == "<unset>"


# ---------------------------------------------------------------------- HPA


def hpa(metrics: list[dict], current: list[dict] | None = None, **spec: Any):
    return obj("HorizontalPodAutoscaler",
               spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 10, "metrics": metrics, **spec},
               status={"currentReplicas": 3, "currentMetrics": current or []})


def cpu(utilization: int) -> dict:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                      "averageUtilization": utilization}}}


def test_an_autoscaler_target_is_unknown_until_measured() -> None:
    assert cells(hpa([cpu(80)], minReplicas=2)) == ["web", "Deployment/web", "cpu: <unknown>/80%", "2", "10", "3",
                                                    "60s"]


def test_an_autoscaler_shows_current_against_target() -> None:
    measured = [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45}}}]
    assert cells(hpa([cpu(80)], measured))[2] == "cpu: 45%/80%"


def test_an_average_value_target_shows_quantities() -> None:
    memory = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                           "averageValue": "200Mi"}}}
    measured = [{"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "120Mi"}}}]
    assert cells(hpa([memory], measured))[2] == "memory: 120Mi/200Mi"
    assert cells(hpa([memory]))[2] == "memory: <unknown>/200Mi"


def test_an_autoscaler_shows_two_metrics_and_counts_the_rest() -> None:
    assert cells(hpa([cpu(80), cpu(70), cpu(60)]))[2] == "cpu: <unknown>/80%, cpu: <unknown>/70% + 1 more..."
    assert cells(hpa([]))[2] == "<none>"


def test_an_unset_minimum_reads_unset() -> None:
    assert cells(hpa([cpu(80)]))[3] == "<unset>"


def test_a_workload_table_lines_up_like_kubectl() -> None:
    deployment = obj("Deployment", spec={"replicas": 3, "template": TEMPLATE}, status={"readyReplicas": 3})
    table = printers.table(kinds.by_kind("Deployment"), [deployment], now=NOW)
    assert printers.render(table) == ("NAME   READY   UP-TO-DATE   AVAILABLE   AGE\n"
                                      "web    3/3     0            0           60s\n")
