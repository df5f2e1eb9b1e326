"""The labels that tie a Job to its pods, for the API server, the Job controller and the CLI alike.

Unless a Job asks to choose its own selector (``spec.manualSelector``), the
API server labels the Job's pod template with the Job's uid and name and
selects on the uid: uids are unique, so no two Jobs ever claim the same pods.
Kubernetes writes each label twice, under the ``batch.kubernetes.io/`` prefix
and under the older unprefixed name that tools and manifests still select
on; Sampan does the same.
"""

from __future__ import annotations

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
# The index label and annotation of an Indexed Job's pods.
JOB_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
