"""The API verbs for the workload kinds (control/server/strategy.py and
resources.py), on a ResourceService over a real SQLite store.

Covered: a new workload's status starts empty whatever the client sent; an
ordinary update keeps the stored status and a status update changes only the
status; spec changes bump the generation, status changes do not; a Job gets
its generated selector and template labels from its own uid and name (also
with generateName), keeps a manual selector, and is refused when its labels
claim another Job's uid; invalid workloads are refused with every broken
rule named.
"""

from __future__ import annotations

from typing import Any

import pytest

from control.api import errors, job_labels, kinds
from control.api.manifest import to_message
from control.server.resources import ResourceService
from control.service import ensure_system_namespaces
from control.store import open_store
from tests.server.validation.workloads import a_cron_job, a_job, a_workload, an_autoscaler

STATUSES: dict[str, dict[str, Any]] = {
    "ReplicaSet": {"replicas": 3, "readyReplicas": 3},
    "Deployment": {"replicas": 3, "availableReplicas": 3},
    "DaemonSet": {"desiredNumberScheduled": 2, "numberReady": 2},
    "StatefulSet": {"replicas": 3, "currentRevision": "web-1"},
    "Job": {"active": 1, "succeeded": 2},
    "CronJob": {"lastScheduleTime": "2024-05-01T12:00:00Z"},
    "HorizontalPodAutoscaler": {"currentReplicas": 2, "desiredReplicas": 4},
}


def with_status(kind: str) -> dict[str, Any]:
    builders = {"Job": a_job, "CronJob": a_cron_job, "HorizontalPodAutoscaler": an_autoscaler}
    obj = builders[kind]() if kind in builders else a_workload(kind)
    return {**obj, "status": STATUSES[kind]}


@pytest.fixture
async def resources(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path}/state.db")
    service = ResourceService(store)
    await ensure_system_namespaces(service)
    yield service
    await service.close()
    await store.close()


@pytest.mark.parametrize("kind", list(STATUSES))
async def test_a_new_workload_starts_with_an_empty_status(resources: ResourceService, kind: str) -> None:
    created = await resources.create(to_message(with_status(kind)))
    assert not created.HasField("status")
    stored = await resources.get(kinds.by_kind(kind), namespace="default", name=created.metadata.name)
    assert not stored.HasField("status")


@pytest.mark.parametrize("kind", list(STATUSES))
async def test_status_is_written_through_the_status_subresource_only(resources: ResourceService, kind: str) -> None:
    created = await resources.create(to_message(with_status(kind)))
    empty = type(created.status)()
    sent = type(created)()
    sent.CopyFrom(created)
    sent.status.CopyFrom(to_message(with_status(kind)).status)
    # An ordinary update ignores the status it carries (so here it changes nothing at all)...
    updated = await resources.update(sent)
    assert updated.status == empty
    assert updated.metadata.resource_version == created.metadata.resource_version
    # ...the status subresource writes it, and nothing else.
    sent.spec.Clear()
    written = await resources.update(sent, subresource="status")
    assert written.status == sent.status != empty
    assert written.spec == created.spec
    assert written.metadata.generation == created.metadata.generation == 1


async def test_a_spec_change_bumps_the_generation(resources: ResourceService) -> None:
    created = await resources.create(to_message(a_workload("Deployment")))
    created.spec.replicas = 4
    updated = await resources.update(created)
    assert updated.metadata.generation == 2


async def test_a_job_selects_its_pods_by_its_own_uid(resources: ResourceService) -> None:
    job = await resources.create(to_message(a_job()))
    uid, name = job.metadata.uid, job.metadata.name
    assert dict(job.spec.selector.match_labels) == {job_labels.CONTROLLER_UID_LABEL: uid}
    assert dict(job.spec.template.metadata.labels) == {
        job_labels.CONTROLLER_UID_LABEL: uid, job_labels.LEGACY_CONTROLLER_UID_LABEL: uid,
        job_labels.JOB_NAME_LABEL: name, job_labels.LEGACY_JOB_NAME_LABEL: name}
    # A Job without labels of its own shows its template's.
    assert dict(job.metadata.labels) == dict(job.spec.template.metadata.labels)


async def test_a_job_with_a_generated_name_labels_its_pods_with_that_name(resources: ResourceService) -> None:
    manifest = a_job()
    manifest["metadata"] = {"generateName": "pi-", "namespace": "default"}
    job = await resources.create(to_message(manifest))
    assert job.metadata.name.startswith("pi-") and len(job.metadata.name) == len("pi-") + 5
    assert job.spec.template.metadata.labels[job_labels.JOB_NAME_LABEL] == job.metadata.name


async def test_a_job_keeps_its_own_labels_and_template_labels(resources: ResourceService) -> None:
    manifest = a_job()
    manifest["metadata"]["labels"] = {"team": "math"}
    manifest["spec"]["template"]["metadata"]["labels"] = {"app": "pi"}
    job = await resources.create(to_message(manifest))
    assert dict(job.metadata.labels) == {"team": "math"}
    assert job.spec.template.metadata.labels["app"] == "pi"
    assert job.spec.template.metadata.labels[job_labels.CONTROLLER_UID_LABEL] == job.metadata.uid


async def test_a_manual_selector_is_kept_as_written(resources: ResourceService) -> None:
    manifest = a_job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    manifest["spec"]["template"]["metadata"]["labels"] = {"app": "pi"}
    job = await resources.create(to_message(manifest))
    assert dict(job.spec.selector.match_labels) == {"app": "pi"}
    assert dict(job.spec.template.metadata.labels) == {"app": "pi"}


async def test_a_job_claiming_another_jobs_uid_is_refused(resources: ResourceService) -> None:
    manifest = a_job()
    manifest["spec"]["template"]["metadata"]["labels"] = {job_labels.CONTROLLER_UID_LABEL: "not-mine"}
    with pytest.raises(errors.InvalidError) as raised:
        await resources.create(to_message(manifest))
    message = str(raised.value)
    assert f"spec.template.metadata.labels[{job_labels.CONTROLLER_UID_LABEL}]: Invalid value: must be '" in message
    assert "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`" in message


async def test_an_invalid_deployment_is_refused_with_every_broken_rule(resources: ResourceService) -> None:
    manifest = a_workload("Deployment", replicas=-1, strategy={"type": "Recreate", "rollingUpdate": {}})
    manifest["spec"]["selector"] = {"matchLabels": {"app": "api"}}
    with pytest.raises(errors.InvalidError) as raised:
        await resources.create(to_message(manifest))
    assert str(raised.value) == (
        'Deployment "web" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, '
        "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`, "
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate']")
