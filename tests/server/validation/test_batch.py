"""batch/v1 validation (control/server/validation/batch.py).

Covered, with Kubernetes' messages: a Job's restart policy (OnFailure or
Never; unset is refused as the Always it defaults to), non-negative counts,
completion modes and the Indexed rules, the pod replacement policy, manual
selectors, the selector and labels the API generates (checked on create:
uid and name on the template, selector on the uid), and what an update may
not change (template, selector, completion mode, a NonIndexed Job's
completions) or may (an Indexed Job's completions with its parallelism; a
suspended, never-started Job's scheduling directives). A CronJob's schedule,
name length, policies, history limits and job template.
"""

from __future__ import annotations

import pytest

from tests.server.validation.support import errors_of
from tests.server.validation.workloads import UID, a_created_job, a_cron_job, a_job, a_template, changed

RESTART_REQUIRED = 'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'


# ----------------------------------------------------------------------- Job


def test_a_job_as_written_and_as_created_is_valid() -> None:
    assert errors_of(a_job()) == []
    assert errors_of(a_job(), defaulted=True) == []
    assert errors_of(a_created_job(), defaulted=True) == []


@pytest.mark.parametrize("restart", [None, "Always"])
def test_a_job_pod_must_not_restart_always(restart) -> None:
    job = changed(a_job(), "spec.template", a_template(labels={}, restart=restart))
    assert errors_of(job) == [RESTART_REQUIRED]


def test_an_unset_restart_policy_is_refused_after_defaulting_too() -> None:
    job = changed(a_job(), "spec.template", a_template(labels={}))
    assert errors_of(job, defaulted=True) == [RESTART_REQUIRED]


def test_an_unknown_restart_policy_is_reported_once() -> None:
    job = changed(a_job(), "spec.template", a_template(labels={}, restart="Sometimes"))
    assert errors_of(job) == ['spec.template.spec.restartPolicy: Unsupported value: "Sometimes": '
                              'supported values: "Always", "OnFailure", "Never"']


@pytest.mark.parametrize("field", ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds",
                                   "ttlSecondsAfterFinished"])
def test_job_counts_may_not_be_negative(field: str) -> None:
    assert errors_of(a_job(**{field: -1})) == [f"spec.{field}: Invalid value: -1: must be greater than or equal to 0"]


def test_the_completion_mode_must_be_known() -> None:
    assert errors_of(a_job(completionMode="Sharded")) == [
        'spec.completionMode: Unsupported value: "Sharded": supported values: "NonIndexed", "Indexed"']


def test_an_indexed_job_needs_its_completions() -> None:
    assert errors_of(a_job(completionMode="Indexed", parallelism=2)) == [
        "spec.completions: Required value: when completion mode is Indexed"]


def test_an_indexed_job_runs_at_most_100000_pods_at_once() -> None:
    assert errors_of(a_job(completionMode="Indexed", completions=200000, parallelism=100001)) == [
        "spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed"]


def test_an_indexed_job_name_leaves_room_for_the_pod_index() -> None:
    job = changed(a_job(completionMode="Indexed", completions=100), "metadata.name", "j" * 62)
    assert errors_of(job) == [f'metadata.name: Invalid value: "{"j" * 62}": will not able to create pod with '
                              f"invalid DNS label: {'j' * 62}-99"]


def test_the_pod_replacement_policy_must_be_known() -> None:
    assert errors_of(a_job(podReplacementPolicy="Never")) == [
        'spec.podReplacementPolicy: Unsupported value: "Never": supported values: "Failed", "TerminatingOrFailed"']


def test_a_manual_selector_must_be_given() -> None:
    assert errors_of(a_job(manualSelector=True)) == ["spec.selector: Required value"]


def test_a_manual_selector_must_match_the_template() -> None:
    job = a_job(manualSelector=True, selector={"matchLabels": {"app": "batch"}})
    assert errors_of(job) == [
        "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"]
    job["spec"]["template"]["metadata"]["labels"] = {"app": "batch"}
    assert errors_of(job) == []


def test_the_template_pod_spec_is_checked_at_the_template_path() -> None:
    job = changed(a_job(), "spec.template", a_template(labels={}, restart="Never", containers=[{"image": "perl"}]))
    assert errors_of(job) == ["spec.template.spec.containers[0].name: Required value"]


def test_generated_labels_must_carry_the_jobs_uid() -> None:
    job = a_created_job()
    job["spec"]["template"]["metadata"]["labels"]["controller-uid"] = "someone-else"
    assert errors_of(job) == [f"spec.template.metadata.labels[controller-uid]: Invalid value: must be '{UID}'"]


def test_generated_labels_must_all_be_there() -> None:
    job = a_created_job()
    del job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"]
    assert errors_of(job) == ["spec.template.metadata.labels[batch.kubernetes.io/job-name]: Required value: "
                              "batch.kubernetes.io/job-name"]


def test_a_generated_selector_selects_exactly_the_jobs_pods() -> None:
    job = a_created_job()
    job["spec"]["selector"]["matchLabels"]["app"] = "pi"
    job["spec"]["template"]["metadata"]["labels"]["app"] = "pi"
    assert errors_of(job) == ["spec.selector: Invalid value: `selector` not auto-generated"]


def test_a_generated_selector_needs_the_uid() -> None:
    job = a_created_job()
    del job["metadata"]["uid"]
    assert errors_of(job)[0] == "metadata.uid: Required value"


def test_generated_selector_rules_apply_on_create_only() -> None:
    job = a_created_job()
    job["spec"]["template"]["metadata"]["labels"]["controller-uid"] = "someone-else"
    assert errors_of(job, old=job) == []


def test_a_job_template_is_immutable() -> None:
    old = a_created_job()
    new = changed(old, "spec.template.spec.containers", [{"name": "web", "image": "perl:5.36"}])
    assert errors_of(new, old=old) == ["spec.template: Invalid value: field is immutable"]


def test_a_job_selector_and_completion_mode_are_immutable() -> None:
    old = a_created_job(completionMode="NonIndexed", completions=1, parallelism=1)
    new = changed(changed(old, "spec.selector.matchLabels", {"job-name": "pi"}), "spec.completionMode", "Indexed")
    assert errors_of(new, old=old) == ["spec.selector: Invalid value: field is immutable",
                                       'spec.completionMode: Invalid value: "Indexed": field is immutable']


def test_non_indexed_completions_are_immutable_but_parallelism_is_not() -> None:
    old = a_created_job(completions=3, parallelism=1)
    assert errors_of(changed(old, "spec.parallelism", 3), old=old) == []
    assert errors_of(changed(old, "spec.completions", 4), old=old) == [
        "spec.completions: Invalid value: 4: field is immutable"]


def test_indexed_completions_change_only_with_parallelism() -> None:
    old = a_created_job(completionMode="Indexed", completions=3, parallelism=3)
    grown = changed(changed(old, "spec.completions", 5), "spec.parallelism", 5)
    assert errors_of(grown, old=old) == []
    assert errors_of(changed(old, "spec.completions", 5), old=old) == [
        "spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"]


def test_a_suspended_job_that_never_started_may_move_its_pods() -> None:
    old = a_created_job(suspend=True)
    new = changed(old, "spec.template.spec.nodeSelector", {"disk": "ssd"})
    new["spec"]["template"]["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    assert errors_of(new, old=old) == []


def test_a_started_job_may_not_move_its_pods() -> None:
    old = changed(a_created_job(suspend=True), "status", {"startTime": "2024-05-01T12:00:00Z"})
    new = changed(old, "spec.template.spec.nodeSelector", {"disk": "ssd"})
    assert errors_of(new, old=old) == ["spec.template: Invalid value: field is immutable"]


def test_a_suspended_job_may_not_change_its_containers() -> None:
    old = a_created_job(suspend=True)
    new = changed(old, "spec.template.spec.containers", [{"name": "web", "image": "perl:5.36"}])
    assert errors_of(new, old=old) == ["spec.template: Invalid value: field is immutable"]


# ------------------------------------------------------------------- CronJob


def test_a_cron_job_is_valid_before_and_after_defaulting() -> None:
    assert errors_of(a_cron_job()) == errors_of(a_cron_job(), defaulted=True) == []


def test_a_schedule_is_required() -> None:
    assert errors_of(changed(a_cron_job(), "spec.schedule", None)) == ["spec.schedule: Required value"]


def test_a_cron_job_name_leaves_room_for_its_jobs_suffix_on_create() -> None:
    cron_job = changed(a_cron_job(), "metadata.name", "r" * 53)
    assert errors_of(cron_job) == [f'metadata.name: Invalid value: "{"r" * 53}": must be no more than 52 characters']
    assert errors_of(changed(a_cron_job(), "metadata.name", "r" * 52)) == []
    assert errors_of(cron_job, old=cron_job) == []


def test_the_concurrency_policy_must_be_known() -> None:
    assert errors_of(a_cron_job(concurrencyPolicy="Queue")) == [
        'spec.concurrencyPolicy: Unsupported value: "Queue": supported values: "Allow", "Forbid", "Replace"']


@pytest.mark.parametrize("field", ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"])
def test_cron_job_limits_may_not_be_negative(field: str) -> None:
    assert errors_of(a_cron_job(**{field: -1})) == [
        f"spec.{field}: Invalid value: -1: must be greater than or equal to 0"]


def test_a_job_template_has_no_selector_of_its_own() -> None:
    cron_job = a_cron_job()
    cron_job["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"app": "report"}}
    cron_job["spec"]["jobTemplate"]["spec"]["manualSelector"] = True
    assert errors_of(cron_job) == [
        "spec.jobTemplate.spec.selector: Invalid value: `selector` will be auto-generated",
        'spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: "nil", "false"']


def test_a_job_template_is_checked_as_a_job_spec_at_its_path() -> None:
    cron_job = a_cron_job()
    cron_job["spec"]["jobTemplate"]["spec"]["backoffLimit"] = -1
    cron_job["spec"]["jobTemplate"]["spec"]["template"] = a_template(labels={}, restart="Always")
    assert errors_of(cron_job) == [
        "spec.jobTemplate.spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
        'spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']
