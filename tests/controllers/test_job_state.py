"""The Job controller's pure rules (control/controllers/job_state.py): the
spec read with Kubernetes' defaults, completion indexes in their compressed
form, which pods count as failed, and moving recorded pods into the counts."""

from __future__ import annotations

from control.api.manifest import to_message
from control.controllers.job_state import (
    TRACKING_FINALIZER, backoff_limit, completions, counts_as_failed, format_indexes, move_counted, parallelism,
    parse_indexes, restarts, set_condition,
)
from protos.api.v1 import batch_pb2, core_pb2


def job(**spec) -> batch_pb2.Job:
    return to_message({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": spec})


def pod(uid: str, phase: str = "Running", *, deleting: bool = False, tracked: bool = True) -> core_pb2.Pod:
    found = core_pb2.Pod()
    found.metadata.uid = uid
    found.status.phase = phase
    if deleting:
        found.metadata.deletion_timestamp = "2024-05-01T12:00:00Z"
    if tracked:
        found.metadata.finalizers.append(TRACKING_FINALIZER)
    return found


def test_unset_fields_read_as_kubernetes_defaults():
    assert (parallelism(job()), completions(job()), backoff_limit(job())) == (1, None, 6)
    assert completions(job(completionMode="Indexed")) == 1
    assert (parallelism(job(parallelism=0)), completions(job(completions=0)), backoff_limit(job(backoffLimit=0))) == (
        0, 0, 0)


def test_completion_indexes_compress_runs_into_ranges_and_back():
    assert format_indexes([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert format_indexes([]) == "" and parse_indexes("") == set()
    assert parse_indexes("1,x,3-") == {1}  # malformed parts are skipped


def test_failed_or_deleted_before_success_counts_as_failed():
    assert counts_as_failed(pod("a", "Failed"))
    assert counts_as_failed(pod("b", "Running", deleting=True))
    assert counts_as_failed(pod("c", "Pending", deleting=True))
    assert not counts_as_failed(pod("d", "Succeeded", deleting=True))
    assert not counts_as_failed(pod("e", "Running"))


def test_restarts_add_up_over_containers_and_init_containers():
    running = pod("a")
    running.status.container_statuses.add(name="main", restart_count=2)
    running.status.init_container_statuses.add(name="setup", restart_count=1)
    assert restarts([running, pod("b")]) == 3


def test_only_recorded_pods_that_no_longer_hold_the_finalizer_move_into_the_counts():
    status = batch_pb2.JobStatus(succeeded=4, failed=1)
    status.uncounted_terminated_pods.succeeded.extend(["released", "still-held", "gone"])
    status.uncounted_terminated_pods.failed.extend(["failed-gone"])
    pods = [pod("released", "Succeeded", tracked=False), pod("still-held", "Succeeded")]
    move_counted(job(), status, pods)
    assert (status.succeeded, status.failed) == (6, 2)
    assert list(status.uncounted_terminated_pods.succeeded) == ["still-held"]
    assert not status.uncounted_terminated_pods.failed


def test_an_emptied_uncounted_list_is_cleared():
    status = batch_pb2.JobStatus()
    status.uncounted_terminated_pods.failed.append("gone")
    move_counted(job(), status, [])
    assert status.failed == 1 and not status.HasField("uncounted_terminated_pods")


def test_a_condition_moves_its_transition_time_only_when_its_status_changes():
    status = batch_pb2.JobStatus()
    assert set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", 100.0)
    assert not set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", 200.0)
    assert set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", 300.0)
    [found] = status.conditions
    assert (found.status, found.reason, found.last_transition_time) == ("False", "JobResumed", "1970-01-01T00:05:00Z")
