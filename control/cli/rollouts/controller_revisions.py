"""History and undo for the kinds whose rollouts are ControllerRevisions: DaemonSets and StatefulSets.

As kubectl does for them:

- history: one revision per ControllerRevision the object controls,
  numbered by its ``revision``, its CHANGE-CAUSE the revision's
  ``kubernetes.io/change-cause`` annotation (copied from the object when
  the revision was made);
- undo: the chosen revision's template (default: the one before the
  newest) is written back into the object's spec.template; the controller
  then finds that template among its revisions and gives it the next
  number. Going back to the template the object already has is skipped.
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.controller_revisions import controlled_by, revision_template
from control.api.deployments import CHANGE_CAUSE_ANNOTATION
from control.cli.errors import CommandError
from control.cli.rollouts.base import Revision
from control.client import Client
from protos.api.v1 import apps_pb2


async def _revisions(api: Client, obj: Message) -> list[apps_pb2.ControllerRevision]:
    items, _ = await api.list("ControllerRevision", namespace=obj.metadata.namespace)
    return controlled_by(items, obj)


async def revision_history(api: Client, obj: Message) -> list[Revision]:
    return [Revision(r.revision, r.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION, ""), revision_template(r))
            for r in await _revisions(api, obj)]


async def undo_to_revision(api: Client, obj: Message, to_revision: int) -> str:
    if to_revision < 0:
        raise CommandError(f"error: unable to find specified revision {to_revision} in history")
    revisions = await _revisions(api, obj)
    if to_revision == 0:
        if len(revisions) <= 1:
            raise CommandError("error: no last revision to roll back to")
        chosen = revisions[-2]
    else:
        found = [r for r in revisions if r.revision == to_revision]
        if not found:
            raise CommandError(f"error: unable to find specified revision {to_revision} in history")
        chosen = found[0]
    if revision_template(chosen) == obj.spec.template:  # type: ignore[attr-defined]
        return f"skipped rollback (current template already matches revision {chosen.revision})"
    changed = type(obj)()
    changed.CopyFrom(obj)
    changed.spec.template.CopyFrom(revision_template(chosen))  # type: ignore[attr-defined]
    await api.update(changed)  # CAS on the resourceVersion read
    return "rolled back"
