"""What a Job's status says, and the rules the Job controller counts its pods by.

Pure functions over Job and Pod messages, shared by the Job controller
(control/controllers/job.py), the CronJob controller (is a Job finished,
and how) and the TTL-after-finished controller (when did it finish):

- the Job's conditions (Complete, Failed, Suspended, and the interim
  SuccessCriteriaMet and FailureTarget), set only when they change;
- its spec read with Kubernetes' defaults where a field is unset
  (parallelism 1, backoffLimit 6; completions 1 for an Indexed Job, none
  otherwise);
- the pod-counting rules: a pod counts as failed when Failed, or deleted
  before it succeeded; the tracking finalizer marks a pod not yet counted;
  a uid listed in ``status.uncountedTerminatedPods`` moves into the counts
  once its pod no longer holds the finalizer;
- an Indexed Job's completion indexes, compressed as Kubernetes writes them
  ("0-2,5").
"""

from __future__ import annotations

from typing import Iterable

from google.protobuf.message import Message

from control.api import job_labels
from control.api.timestamps import format_time, parse_time
from control.controllers.pods import is_terminating
from protos.api.v1 import apps_pb2, batch_pb2, core_pb2

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = job_labels.JOB_COMPLETION_INDEX
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
DEFAULT_BACKOFF_LIMIT = 6

COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


# ---------------------------------------------------------------- conditions and times


def finished_condition(job: batch_pb2.Job) -> apps_pb2.WorkloadCondition | None:
    """The Job's Complete or Failed condition when it is True: the Job is over."""
    for found in job.status.conditions:
        if found.type in (COMPLETE, FAILED) and found.status == "True":
            return found
    return None


def finish_time(job: batch_pb2.Job) -> float | None:
    """When a finished Job finished (completionTime, else its condition's transition), else None."""
    done = finished_condition(job)
    if done is None:
        return None
    return parse_time(job.status.completion_time) or parse_time(done.last_transition_time) or None


def set_condition(status: batch_pb2.JobStatus, type_: str, value: str, reason: str, message: str,
                  now: float) -> bool:
    """Set a condition on status; True when that changed it (times move only on a change)."""
    for found in status.conditions:
        if found.type == type_:
            if (found.status, found.reason, found.message) == (value, reason, message):
                return False
            if found.status != value:
                found.last_transition_time = format_time(now)
            found.status, found.reason, found.message = value, reason, message
            found.last_probe_time = format_time(now)
            return True
    status.conditions.add(type=type_, status=value, reason=reason, message=message,
                          last_probe_time=format_time(now), last_transition_time=format_time(now))
    return True


def true_condition(status: batch_pb2.JobStatus, type_: str) -> apps_pb2.WorkloadCondition | None:
    """The status's condition of this type if it is True."""
    for found in status.conditions:
        if found.type == type_ and found.status == "True":
            return found
    return None


# ---------------------------------------------------------------- the spec, with defaults


def is_indexed(job: batch_pb2.Job) -> bool:
    return job.spec.completion_mode == "Indexed"


def completions(job: batch_pb2.Job) -> int | None:
    """Succeeded pods wanted; None: any one success ends the Job (a work queue)."""
    if job.spec.HasField("completions"):
        return job.spec.completions
    return 1 if is_indexed(job) else None


def parallelism(job: batch_pb2.Job) -> int:
    return job.spec.parallelism if job.spec.HasField("parallelism") else 1


def backoff_limit(job: batch_pb2.Job) -> int:
    return job.spec.backoff_limit if job.spec.HasField("backoff_limit") else DEFAULT_BACKOFF_LIMIT


def deadline(job: batch_pb2.Job, status: batch_pb2.JobStatus) -> float | None:
    """When the Job's activeDeadlineSeconds runs out (epoch seconds), if it has one and has started."""
    if not job.spec.HasField("active_deadline_seconds") or not status.start_time:
        return None
    return parse_time(status.start_time) + job.spec.active_deadline_seconds


# ---------------------------------------------------------------- completion indexes


def parse_indexes(text: str) -> set[int]:
    """Kubernetes' compressed index list ("0-2,5") as a set."""
    found: set[int] = set()
    for part in filter(None, text.split(",")):
        first, dash, last = part.partition("-")
        last = last if dash else first
        if first.isdigit() and last.isdigit():  # a malformed part is skipped
            found.update(range(int(first), int(last) + 1))
    return found


def format_indexes(indexes: Iterable[int]) -> str:
    """A set of indexes as Kubernetes writes it: sorted, runs as ranges ("0-2,5")."""
    runs: list[list[int]] = []
    for index in sorted(set(indexes)):
        if runs and runs[-1][1] == index - 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def completion_index(pod: core_pb2.Pod) -> int | None:
    """The pod's completion index (Indexed Jobs), or None when it has none or a malformed one."""
    text = pod.metadata.annotations.get(COMPLETION_INDEX, "")
    return int(text) if text.isdigit() else None


# ---------------------------------------------------------------- counting pods


def counts_as_failed(pod: core_pb2.Pod) -> bool:
    """Failed, or deleted before it succeeded (a pod deleted from a dead node never reaches Failed)."""
    return pod.status.phase == "Failed" or (is_terminating(pod) and pod.status.phase != "Succeeded")


def restarts(pods: Iterable[core_pb2.Pod]) -> int:
    """Container restarts (init containers too) across pods: the failures of restartPolicy OnFailure."""
    return sum(status.restart_count for pod in pods
               for status in (*pod.status.init_container_statuses, *pod.status.container_statuses))


def job_reference(pod: core_pb2.Pod) -> Message | None:
    """The pod's controlling ownerReference when a Job controls it."""
    for ref in pod.metadata.owner_references:
        if ref.controller and ref.kind == "Job":
            return ref
    return None


def holds_finalizer(pod: core_pb2.Pod) -> bool:
    """Not yet counted: the pod still carries the tracking finalizer."""
    return TRACKING_FINALIZER in pod.metadata.finalizers


def move_counted(job: batch_pb2.Job, status: batch_pb2.JobStatus, pods: list[core_pb2.Pod]) -> None:
    """Move uncounted uids whose pods no longer hold the finalizer (or are gone) into the counts."""
    holding = {pod.metadata.uid for pod in pods if holds_finalizer(pod)}
    uncounted = status.uncounted_terminated_pods
    done_succeeded = [uid for uid in uncounted.succeeded if uid not in holding]
    done_failed = [uid for uid in uncounted.failed if uid not in holding]
    if not is_indexed(job):
        status.succeeded += len(done_succeeded)
    status.failed += len(done_failed)
    remaining_succeeded = [uid for uid in uncounted.succeeded if uid in holding]
    remaining_failed = [uid for uid in uncounted.failed if uid in holding]
    del uncounted.succeeded[:]
    del uncounted.failed[:]
    uncounted.succeeded.extend(remaining_succeeded)
    uncounted.failed.extend(remaining_failed)
    if not remaining_succeeded and not remaining_failed:
        status.ClearField("uncounted_terminated_pods")
