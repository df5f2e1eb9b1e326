"""``describe`` for Jobs and CronJobs, laid out as kubectl's.

A Job: its selector, parallelism and completions, policies, start and
completion times with the duration between them, pod counts from its status
and its pod template. A CronJob: schedule and policies, history limits, its
job template (selector, parallelism, completions, pod template), last
schedule time and active Jobs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from google.protobuf.message import Message

from control.cli import durations
from control.cli.describers import sections
from control.cli.describers.pod_template import controlled_by_line, pod_template_section, selector_line
from control.cli.describers.writer import DescriptionWriter

NONE = sections.NONE
UNSET = "<unset>"
# kubectl shows the completed indexes up to about this many characters.
_INDEXES_SOFT_LIMIT = 50


def _header(w: DescriptionWriter, obj: Message) -> None:
    w.line(0, f"Name:\t{obj.metadata.name}")
    w.line(0, f"Namespace:\t{obj.metadata.namespace}")


def _optional(message: Message, field: str, *, suffix: str = "") -> str:
    return f"{getattr(message, field)}{suffix}" if message.HasField(field) else UNSET


def _bool(value: bool) -> str:
    return "true" if value else "false"


# ----------------------------------------------------------------------- Job


def describe_job(job: Message, *, events: Sequence[Message] | None, now: datetime,
                 pods: Sequence[Message] | None = None, replica_sets: Sequence[Message] | None = None) -> str:
    w = DescriptionWriter()
    spec, status = job.spec, job.status
    _header(w, job)
    selector_line(w, spec)
    sections.labels_multiline(w, job.metadata.labels)
    sections.annotations_multiline(w, job.metadata.annotations)
    controlled_by_line(w, job)
    if spec.HasField("parallelism"):
        w.line(0, f"Parallelism:\t{spec.parallelism}")
    w.line(0, f"Completions:\t{_optional(spec, 'completions')}")
    if spec.HasField("completion_mode"):
        w.line(0, f"Completion Mode:\t{spec.completion_mode}")
    if spec.HasField("suspend"):
        w.line(0, f"Suspend:\t{_bool(spec.suspend)}")
    if spec.HasField("backoff_limit"):
        w.line(0, f"Backoff Limit:\t{spec.backoff_limit}")
    if spec.HasField("ttl_seconds_after_finished"):
        w.line(0, f"TTL Seconds After Finished:\t{spec.ttl_seconds_after_finished}")
    if status.start_time:
        w.line(0, f"Start Time:\t{durations.rfc1123z(status.start_time)}")
    if status.completion_time:
        w.line(0, f"Completed At:\t{durations.rfc1123z(status.completion_time)}")
    start, end = durations.parse_timestamp(status.start_time), durations.parse_timestamp(status.completion_time)
    if start is not None and end is not None:
        w.line(0, f"Duration:\t{durations.human_duration((end - start).total_seconds())}")
    if spec.HasField("active_deadline_seconds"):
        w.line(0, f"Active Deadline Seconds:\t{spec.active_deadline_seconds}s")
    ready = f" ({status.ready} Ready)" if status.HasField("ready") else ""
    w.line(0, f"Pods Statuses:\t{status.active} Active{ready} / {status.succeeded} Succeeded / {status.failed} Failed")
    if spec.completion_mode == "Indexed":
        w.line(0, f"Completed Indexes:\t{_capped_indexes(status.completed_indexes)}")
    pod_template_section(w, spec.template)
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()


def _capped_indexes(indexes: str) -> str:
    """The completed indexes ("1,3-5"), cut after the interval that passes the soft limit."""
    if not indexes:
        return NONE
    cut = indexes.find(",", _INDEXES_SOFT_LIMIT)
    return indexes if cut < 0 else indexes[:cut + 1] + "..."


# ------------------------------------------------------------------- CronJob


def describe_cron_job(cron_job: Message, *, events: Sequence[Message] | None, now: datetime,
                      pods: Sequence[Message] | None = None, replica_sets: Sequence[Message] | None = None) -> str:
    w = DescriptionWriter()
    spec, status = cron_job.spec, cron_job.status
    _header(w, cron_job)
    sections.labels_multiline(w, cron_job.metadata.labels)
    sections.annotations_multiline(w, cron_job.metadata.annotations)
    w.line(0, f"Schedule:\t{spec.schedule}")
    w.line(0, f"Concurrency Policy:\t{spec.concurrency_policy}")
    w.line(0, f"Suspend:\t{('True' if spec.suspend else 'False') if spec.HasField('suspend') else UNSET}")
    w.line(0, f"Successful Job History Limit:\t{_optional(spec, 'successful_jobs_history_limit')}")
    w.line(0, f"Failed Job History Limit:\t{_optional(spec, 'failed_jobs_history_limit')}")
    w.line(0, f"Starting Deadline Seconds:\t{_optional(spec, 'starting_deadline_seconds', suffix='s')}")
    job_spec = spec.job_template.spec
    if job_spec.HasField("selector"):
        selector_line(w, job_spec)
    else:
        w.line(0, f"Selector:\t{UNSET}")
    w.line(0, f"Parallelism:\t{_optional(job_spec, 'parallelism')}")
    w.line(0, f"Completions:\t{_optional(job_spec, 'completions')}")
    if job_spec.HasField("active_deadline_seconds"):
        w.line(0, f"Active Deadline Seconds:\t{job_spec.active_deadline_seconds}s")
    pod_template_section(w, job_spec.template)
    last = durations.rfc1123z(status.last_schedule_time) if status.last_schedule_time else UNSET
    w.line(0, f"Last Schedule Time:\t{last}")
    w.line(0, f"Active Jobs:\t{', '.join(ref.name for ref in status.active) or NONE}")
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()
