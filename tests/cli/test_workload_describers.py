"""``describe`` for the workload kinds (control/cli/describers/apps.py, batch.py,
autoscaling.py, pod_template.py): kubectl's layout for a Deployment (replica
line, strategy, pod template, conditions, New/Old ReplicaSets from the
ReplicaSets it controls), ReplicaSets, DaemonSets and StatefulSets with their
pods' statuses, Jobs, CronJobs and autoscalers, and the generic layout for a
ControllerRevision."""

from __future__ import annotations

import re
from typing import Any

from control.api import kinds, manifest
from control.cli import durations
from control.cli.describers import describe
from control.server.defaults import apply_defaults
from tests.cli.test_describers import NOW

TEMPLATE = {"metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]}}


def obj(kind: str, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
        **metadata: Any):
    found = kinds.by_kind(kind)
    message = manifest.to_message({
        "apiVersion": found.api_version, "kind": kind,
        "metadata": {"name": "web", "namespace": "default", "uid": f"{kind}-uid",
                     "creationTimestamp": "2024-05-01T11:00:00Z", **metadata},
        **({"spec": spec} if spec is not None else {}), **({"status": status} if status is not None else {})})
    apply_defaults(found, message)
    return message


def deployment(**spec: Any):
    return obj("Deployment", {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}}, "template": TEMPLATE,
                              **spec},
               {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "unavailableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                               {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})


def replica_set(name: str, *, image: str = "nginx:1.14.2", owner: str = "Deployment-uid", created: str,
                replicas: int = 3):
    template = {"metadata": {"labels": {"app": "nginx", "pod-template-hash": name[-4:]}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}}
    return obj("ReplicaSet", {"replicas": replicas, "template": template}, {"replicas": replicas}, name=name,
               creationTimestamp=created, ownerReferences=[{"apiVersion": "apps/v1", "kind": "Deployment",
                                                            "name": "web", "uid": owner, "controller": True}])


def fields(text: str) -> dict[str, str]:
    """The unindented ``Key:  value`` lines of a description (alignment aside)."""
    return {match[1]: match[2] for match in re.finditer(r"^(\S[^:\n]*):[ \t]+(\S.*)$", text, re.MULTILINE)}


def pod(phase: str, owner: str = "ReplicaSet-uid"):
    return manifest.to_message({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"web-{phase.lower()}", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                            "name": "web", "uid": owner, "controller": True}]},
        "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": phase}})


def test_a_deployment_reads_as_kubectls() -> None:
    text = describe(deployment(), events=[], now=NOW, replica_sets=[replica_set("web-abcd", created=NOW.isoformat())])
    assert text.splitlines()[5:] == [
        "Selector:               app=nginx",
        "Replicas:               3 desired | 3 updated | 3 total | 2 available | 1 unavailable",
        "StrategyType:           RollingUpdate",
        "MinReadySeconds:        0",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "Pod Template:",
        "  Labels:  app=nginx",
        "  Containers:",
        "   nginx:",
        "    Image:         nginx:1.14.2",
        "    Port:          80/TCP",
        "    Host Port:     0/TCP",
        "    Environment:   <none>",
        "    Mounts:        <none>",
        "  Volumes:         <none>",
        "  Node-Selectors:  <none>",
        "  Tolerations:     <none>",
        "Conditions:",
        "  Type           Status  Reason",
        "  ----           ------  ------",
        "  Available      True    MinimumReplicasAvailable",
        "  Progressing    True    NewReplicaSetAvailable",
        "OldReplicaSets:  <none>",
        "NewReplicaSet:   web-abcd (3/3 replicas created)",
        "Events:          <none>",
    ]
    assert text.splitlines()[2] == f"CreationTimestamp:      {durations.rfc1123z('2024-05-01T11:00:00Z')}"


def test_the_new_replica_set_is_the_one_running_the_current_template() -> None:
    old = replica_set("web-old1", image="nginx:1.13", created="2024-05-01T10:00:00Z", replicas=1)
    older = replica_set("web-old0", image="nginx:1.12", created="2024-05-01T09:00:00Z", replicas=0)
    new = replica_set("web-new1", created="2024-05-01T11:00:00Z")
    stranger = replica_set("other-abcd", created="2024-05-01T11:00:00Z", owner="someone-else")
    text = describe(deployment(), events=None, now=NOW, replica_sets=[new, old, stranger, older])
    assert "OldReplicaSets:  web-old0 (0/0 replicas created), web-old1 (1/1 replicas created)\n" in text
    assert "NewReplicaSet:   web-new1 (3/3 replicas created)\n" in text


def test_without_its_replica_sets_a_deployment_leaves_them_out() -> None:
    text = describe(deployment(), events=None, now=NOW)
    assert "OldReplicaSets" not in text and "NewReplicaSet:" not in text and "Events" not in text


def test_a_recreate_deployment_has_no_rolling_update_line() -> None:
    text = describe(deployment(strategy={"type": "Recreate"}), events=None, now=NOW)
    assert fields(text)["StrategyType"] == "Recreate" and "RollingUpdateStrategy" not in text


def test_a_replica_set_counts_its_own_pods_by_phase() -> None:
    rs = obj("ReplicaSet", {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}}, "template": TEMPLATE},
             {"replicas": 3}, ownerReferences=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                "uid": "d", "controller": True}])
    pods = [pod("Running"), pod("Running"), pod("Pending"), pod("Failed")]
    lines = describe(rs, events=None, now=NOW, pods=pods).splitlines()
    assert lines[:7] == ["Name:           web", "Namespace:      default", "Selector:       app=nginx",
                         "Labels:         <none>", "Annotations:    <none>", "Controlled By:  Deployment/web",
                         "Replicas:       3 current / 3 desired"]
    assert lines[7] == "Pods Status:    2 Running / 1 Waiting / 0 Succeeded / 1 Failed"
    assert "Pods Status" not in describe(rs, events=None, now=NOW)


def test_a_daemon_set_shows_its_node_counts_and_node_selector() -> None:
    template = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "nodeSelector": {"disk": "ssd"}}}
    ds = obj("DaemonSet", {"selector": {"matchLabels": {"app": "nginx"}}, "template": template},
             {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "updatedNumberScheduled": 2,
              "numberAvailable": 3, "numberMisscheduled": 0})
    text = describe(ds, events=None, now=NOW, pods=[])
    assert "Node-Selector:  disk=ssd\n" in text
    assert ("Desired Number of Nodes Scheduled: 3\nCurrent Number of Nodes Scheduled: 3\n"
            "Number of Nodes Scheduled with Up-to-date Pods: 2\nNumber of Nodes Scheduled with Available Pods: 3\n"
            "Number of Nodes Misscheduled: 0\n") in text
    assert "  Node-Selectors:  disk=ssd\n" in text


def test_a_stateful_set_shows_replicas_and_its_partition() -> None:
    sts = obj("StatefulSet", {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}}, "template": TEMPLATE,
                              "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
              {"replicas": 2})
    text = describe(sts, events=None, now=NOW)
    assert "Replicas:           3 desired | 2 total\nUpdate Strategy:    RollingUpdate\n  Partition:        2\n" in text
    assert fields(text)["Volume Claims"] == "<none>" and text.endswith("<none>\n")


def test_a_job_shows_its_counts_times_and_template() -> None:
    job = obj("Job", {"parallelism": 2, "completions": 4, "selector": {"matchLabels": {"job-name": "web"}},
                      "template": {**TEMPLATE, "spec": {**TEMPLATE["spec"], "restartPolicy": "Never"}}},
              {"startTime": "2024-05-01T11:00:00Z", "completionTime": "2024-05-01T11:02:05Z", "active": 0,
               "ready": 0, "succeeded": 4, "failed": 1})
    text = describe(job, events=None, now=NOW)
    assert fields(text) | {"Start Time": "", "Completed At": ""} == {
        "Name": "web", "Namespace": "default", "Selector": "job-name=web", "Labels": "app=nginx",
        "Annotations": "<none>", "Parallelism": "2", "Completions": "4", "Completion Mode": "NonIndexed",
        "Suspend": "false", "Backoff Limit": "6", "Start Time": "", "Completed At": "", "Duration": "2m5s",
        "Pods Statuses": "0 Active (0 Ready) / 4 Succeeded / 1 Failed"}
    assert "\nPod Template:\n  Labels:  app=nginx\n  Containers:\n   nginx:\n" in text


def test_a_work_queue_job_has_no_completions_and_an_indexed_job_shows_its_indexes() -> None:
    work_queue = describe(obj("Job", {"parallelism": 3, "template": TEMPLATE}), events=None, now=NOW)
    assert fields(work_queue)["Completions"] == "<unset>"
    indexed = obj("Job", {"completions": 200, "completionMode": "Indexed", "template": TEMPLATE},
                  {"completedIndexes": ",".join(str(i) for i in range(0, 60, 2))})
    assert fields(describe(indexed, events=None, now=NOW))["Completed Indexes"] == \
        "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,..."


def test_a_cron_job_shows_its_schedule_policies_and_active_jobs() -> None:
    cron_job = obj("CronJob", {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}},
                   {"active": [{"name": "web-28583040"}, {"name": "web-28583045"}]})
    assert fields(describe(cron_job, events=None, now=NOW)) == {
        "Name": "web", "Namespace": "default", "Labels": "<none>", "Annotations": "<none>",
        "Schedule": "*/5 * * * *", "Concurrency Policy": "Allow", "Suspend": "False",
        "Successful Job History Limit": "3", "Failed Job History Limit": "1", "Starting Deadline Seconds": "<unset>",
        "Selector": "<unset>", "Parallelism": "<unset>", "Completions": "<unset>",
        "Last Schedule Time": "<unset>", "Active Jobs": "web-28583040, web-28583045"}


def test_an_autoscaler_shows_each_metric_against_its_target() -> None:
    hpa = obj("HorizontalPodAutoscaler",
              {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 10,
               "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                   "type": "Utilization", "averageUtilization": 80}}},
                   {"type": "Resource", "resource": {"name": "memory", "target": {
                       "type": "AverageValue", "averageValue": "200Mi"}}}],
               "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
              {"currentReplicas": 2, "desiredReplicas": 3,
               "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
                   "averageUtilization": 95, "averageValue": "190m"}}}],
               "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale",
                               "message": "the HPA controller was able to update the target scale to 3"}]})
    lines = describe(hpa, events=None, now=NOW).splitlines()
    assert lines[5:] == [
        "Reference:                                             Deployment/web",
        "Metrics:                                               ( current / target )",
        "  resource cpu on pods  (as a percentage of request):  95% (190m) / 80%",
        "  resource memory on pods:                             <unknown> / 200Mi",
        "Min replicas:                                          1",
        "Max replicas:                                          10",
        "Behavior:",
        "  Scale Up:",
        "    Stabilization Window: 0 seconds",
        "    Select Policy: Max",
        "    Policies:",
        "      - Type: Pods     Value: 4    Period: 15 seconds",
        "      - Type: Percent  Value: 100  Period: 15 seconds",
        "  Scale Down:",
        "    Stabilization Window: 60 seconds",
        "    Select Policy: Max",
        "    Policies:",
        "      - Type: Percent  Value: 100  Period: 15 seconds",
        # Tab-aligned with the policy line above it, as Go's tabwriter aligns kubectl's.
        "Deployment pods:       2 current / 3 desired",
        "Conditions:",
        "  Type         Status  Reason            Message",
        "  ----         ------  ------            -------",
        "  AbleToScale  True    SucceededRescale  the HPA controller was able to update the target scale to 3",
    ]


def test_a_controller_revision_gets_the_generic_description() -> None:
    revision = obj("ControllerRevision")
    revision.revision = 2
    text = describe(revision, events=None, now=NOW)
    assert text.startswith("Name:         web\nNamespace:    default\n") and fields(text)["Revision"] == "2"
