"""``get`` table cells for the workload kinds, with kubectl's columns and wording.

One pure function per kind, from an object to its cells (registered with
their headers in printers.COLUMNS):

- Deployment: READY is ready/desired replicas, UP-TO-DATE and AVAILABLE from
  the status; ReplicaSet: DESIRED, CURRENT, READY; DaemonSet: the numbers of
  nodes (desired, current, ready, up-to-date, available) and the template's
  NODE SELECTOR; StatefulSet: READY as ready/desired;
- ControllerRevision: its CONTROLLER as ``daemonset.apps/name`` and REVISION;
- Job: STATUS (Complete, Failed, Terminating, Suspended, FailureTarget,
  SuccessCriteriaMet or Running, from its conditions), COMPLETIONS as
  succeeded/completions (``0/1 of 3`` for a work queue), and DURATION from
  start to completion (or to now);
- CronJob: SCHEDULE, TIMEZONE, SUSPEND, ACTIVE jobs and LAST SCHEDULE;
- HorizontalPodAutoscaler: REFERENCE ``Kind/name``, TARGETS as
  ``cpu: 45%/80%`` (``<unknown>`` until the autoscaler has measured; the
  first two metrics, then ``+ N more...``), MINPODS, MAXPODS, REPLICAS.

With ``-o wide`` the pod-making kinds add CONTAINERS and IMAGES of their
template and (but a StatefulSet) their SELECTOR, as kubectl's
FormatLabelSelector writes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping, Sequence

from google.protobuf.message import Message

from control.cli import durations

NONE = "<none>"
UNSET = "<unset>"
UNKNOWN = "<unknown>"
# A Job's STATUS is the first of these conditions that is True (Terminating is checked in between).
_JOB_FINISHED = ("Complete", "Failed")
_JOB_PENDING = ("Suspended", "FailureTarget", "SuccessCriteriaMet")
_MAX_HPA_METRICS = 2


def format_labels(labels: Mapping[str, str]) -> str:
    """k8s labels.FormatLabels: sorted key=value pairs, or <none>."""
    text = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    return text or NONE


def format_label_selector(selector: Message, *, present: bool = True) -> str:
    """kubectl's FormatLabelSelector: requirements sorted by key, ``<none>`` when it selects nothing or all."""
    if not present:
        return NONE
    parts: list[tuple[str, str]] = [(key, f"{key}={value}") for key, value in selector.match_labels.items()]
    for expression in selector.match_expressions:
        key, values = expression.key, ",".join(sorted(expression.values))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                "DoesNotExist": f"!{key}"}.get(expression.operator)
        if text is None:
            return "<error>"
        parts.append((key, text))
    return ",".join(text for _, text in sorted(parts, key=lambda part: part[0])) or NONE


def container_cells(pod_spec: Message) -> list[str]:
    """The wide CONTAINERS and IMAGES cells: the template's containers, comma separated."""
    return [",".join(c.name for c in pod_spec.containers), ",".join(c.image for c in pod_spec.containers)]


def _age(obj: Message, now: datetime) -> str:
    return durations.age(obj.metadata.creation_timestamp, at=now)


def _wide(spec: Message, cells: list[str], *, selector: bool = True) -> list[str]:
    cells += container_cells(spec.template.spec)
    if selector:
        cells.append(format_label_selector(spec.selector, present=spec.HasField("selector")))
    return cells


# ----------------------------------------------------------------- apps/v1


def deployment_cells(deployment: Message, *, now: datetime, wide: bool) -> list[str]:
    spec, status = deployment.spec, deployment.status
    cells = [deployment.metadata.name, f"{status.ready_replicas}/{spec.replicas}", str(status.updated_replicas),
             str(status.available_replicas), _age(deployment, now)]
    return _wide(spec, cells) if wide else cells


def replica_set_cells(rs: Message, *, now: datetime, wide: bool) -> list[str]:
    spec, status = rs.spec, rs.status
    cells = [rs.metadata.name, str(spec.replicas), str(status.replicas), str(status.ready_replicas), _age(rs, now)]
    return _wide(spec, cells) if wide else cells


def daemon_set_cells(ds: Message, *, now: datetime, wide: bool) -> list[str]:
    status = ds.status
    cells = [ds.metadata.name, str(status.desired_number_scheduled), str(status.current_number_scheduled),
             str(status.number_ready), str(status.updated_number_scheduled), str(status.number_available),
             format_labels(ds.spec.template.spec.node_selector), _age(ds, now)]
    return _wide(ds.spec, cells) if wide else cells


def stateful_set_cells(sts: Message, *, now: datetime, wide: bool) -> list[str]:
    cells = [sts.metadata.name, f"{sts.status.ready_replicas}/{sts.spec.replicas}", _age(sts, now)]
    return _wide(sts.spec, cells, selector=False) if wide else cells


def controller_of(obj: Message) -> Message | None:
    return next((ref for ref in obj.metadata.owner_references if ref.controller), None)


def controller_revision_cells(revision: Message, *, now: datetime, wide: bool) -> list[str]:
    controller = controller_of(revision)
    name = NONE
    if controller is not None:
        group = controller.api_version.rpartition("/")[0]
        kind = controller.kind.lower() + (f".{group}" if group else "")
        name = f"{kind}/{controller.name}"
    return [revision.metadata.name, name, str(revision.revision), _age(revision, now)]


# ---------------------------------------------------------------- batch/v1


def _condition_true(conditions: Sequence[Message], condition_type: str) -> bool:
    return any(c.type == condition_type and c.status == "True" for c in conditions)


def job_status(job: Message) -> str:
    conditions = job.status.conditions
    for condition_type in _JOB_FINISHED:
        if _condition_true(conditions, condition_type):
            return condition_type
    if job.metadata.HasField("deletion_timestamp"):
        return "Terminating"
    for condition_type in _JOB_PENDING:
        if _condition_true(conditions, condition_type):
            return condition_type
    return "Running"


def job_completions(job: Message) -> str:
    spec, succeeded = job.spec, job.status.succeeded
    if spec.HasField("completions"):
        return f"{succeeded}/{spec.completions}"
    if spec.parallelism > 1:
        return f"{succeeded}/1 of {spec.parallelism}"
    return f"{succeeded}/1"


def job_duration(job: Message, *, now: datetime) -> str:
    """From start to completion, or to now while it runs; empty before it starts."""
    start = durations.parse_timestamp(job.status.start_time)
    if start is None:
        return ""
    end = durations.parse_timestamp(job.status.completion_time) or now
    return durations.human_duration((end - start).total_seconds())


def job_cells(job: Message, *, now: datetime, wide: bool) -> list[str]:
    cells = [job.metadata.name, job_status(job), job_completions(job), job_duration(job, now=now), _age(job, now)]
    return _wide(job.spec, cells) if wide else cells


def _bool_cell(message: Message, field: str) -> str:
    if not message.HasField(field):
        return UNSET
    return "True" if getattr(message, field) else "False"


def cron_job_cells(cron_job: Message, *, now: datetime, wide: bool) -> list[str]:
    spec, status = cron_job.spec, cron_job.status
    last = durations.age(status.last_schedule_time, at=now) if status.last_schedule_time else NONE
    cells = [cron_job.metadata.name, spec.schedule, spec.time_zone if spec.HasField("time_zone") else NONE,
             _bool_cell(spec, "suspend"), str(len(status.active)), last, _age(cron_job, now)]
    return _wide(spec.job_template.spec, cells) if wide else cells


# ---------------------------------------------------------- autoscaling/v2


def hpa_targets(hpa: Message) -> str:
    """kubectl's formatHPAMetrics for resource metrics: ``cpu: 45%/80%``, ``memory: 120Mi/200Mi``."""
    specs, statuses = hpa.spec.metrics, hpa.status.current_metrics
    if not specs:
        return NONE
    shown: list[str] = []
    for i, metric in enumerate(specs):
        if len(shown) == _MAX_HPA_METRICS:
            return ", ".join(shown) + f" + {len(specs) - len(shown)} more..."
        if metric.type != "Resource":
            shown.append("<unknown type>")
            continue
        source, target = metric.resource, metric.resource.target
        status = statuses[i] if i < len(statuses) and statuses[i].HasField("resource") else None
        if target.HasField("average_value"):
            current = status.resource.current.average_value if status is not None else ""
            shown.append(f"{source.name}: {current or UNKNOWN}/{target.average_value}")
        else:
            current = UNKNOWN
            if status is not None and status.resource.current.HasField("average_utilization"):
                current = f"{status.resource.current.average_utilization}%"
            wanted = f"{target.average_utilization}%" if target.HasField("average_utilization") else "<auto>"
            shown.append(f"{source.name}: {current}/{wanted}")
    return ", ".join(shown)


def hpa_cells(hpa: Message, *, now: datetime, wide: bool) -> list[str]:
    spec, ref = hpa.spec, hpa.spec.scale_target_ref
    return [hpa.metadata.name, f"{ref.kind}/{ref.name}", hpa_targets(hpa),
            str(spec.min_replicas) if spec.HasField("min_replicas") else UNSET, str(spec.max_replicas),
            str(hpa.status.current_replicas), _age(hpa, now)]
