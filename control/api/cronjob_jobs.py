"""The Job a CronJob runs, made from its ``jobTemplate``.

Shared by the CronJob controller (a run at a scheduled time, named
``NAME-<minutes since the epoch>`` and annotated with that time) and by
``sampan create job NAME --from=cronjob/CRON`` (a run by hand, annotated
``cronjob.kubernetes.io/instantiate: manual`` as kubectl does). Either way
the Job carries the template's labels, annotations and spec, and a
controlling ownerReference to the CronJob, so the CronJob counts it among
its Jobs and deleting the CronJob deletes it.
"""

from __future__ import annotations

from typing import Mapping

from protos.api.v1 import batch_pb2, meta_pb2

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
INSTANTIATE = "cronjob.kubernetes.io/instantiate"


def job_for_cronjob(cronjob: batch_pb2.CronJob, *, name: str, annotations: Mapping[str, str] | None = None,
                    block_owner_deletion: bool = True) -> batch_pb2.Job:
    """A new Job named name in the CronJob's namespace, from its jobTemplate, controlled by it."""
    template = cronjob.spec.job_template
    job = batch_pb2.Job(api_version="batch/v1", kind="Job")
    job.metadata.name = name
    job.metadata.namespace = cronjob.metadata.namespace
    job.metadata.labels.update(template.metadata.labels)
    job.metadata.annotations.update(template.metadata.annotations)
    job.metadata.annotations.update(annotations or {})
    job.metadata.owner_references.append(meta_pb2.OwnerReference(
        api_version="batch/v1", kind="CronJob", name=cronjob.metadata.name, uid=cronjob.metadata.uid,
        controller=True, block_owner_deletion=block_owner_deletion))
    job.spec.CopyFrom(template.spec)
    return job
