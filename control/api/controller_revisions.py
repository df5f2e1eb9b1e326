"""How DaemonSet and StatefulSet rollouts are recorded as ControllerRevisions, for the controllers and the CLI alike.

A DaemonSet or StatefulSet saves each pod template it has rolled out as a
ControllerRevision it controls (control/controllers/history.py writes them;
``sampan rollout history`` and ``undo`` read them back):

- ``data.spec.template`` is the owner's pod template exactly as it was, so
  going back to a revision is copying it into the owner's spec.template;
- ``revision`` numbers them, the highest being the owner's current template;
- the label ``controller-revision-hash`` holds the template's hash, and the
  owner's pods carry it too (a DaemonSet's pods the hash, a StatefulSet's
  pods the revision's name), which tells an updated pod from an old one;
- the owner's annotations (``kubernetes.io/change-cause`` among them) are
  copied onto a revision when it is made.
"""

from __future__ import annotations

from typing import Iterable

from google.protobuf.message import Message

from protos.api.v1 import apps_pb2, core_pb2

REVISION_HASH_LABEL = "controller-revision-hash"


def revision_template(revision: apps_pb2.ControllerRevision) -> core_pb2.PodTemplateSpec:
    return revision.data.spec.template


def sorted_by_revision(revisions: Iterable[apps_pb2.ControllerRevision]) -> list[apps_pb2.ControllerRevision]:
    """Oldest first; equal numbers (which should not happen) by creation time, then name."""
    return sorted(revisions, key=lambda r: (r.revision, r.metadata.creation_timestamp, r.metadata.name))


def controlled_by(revisions: Iterable[apps_pb2.ControllerRevision],
                  owner: Message) -> list[apps_pb2.ControllerRevision]:
    """The revisions owner controls, oldest first."""
    return sorted_by_revision(r for r in revisions if any(
        ref.controller and ref.uid == owner.metadata.uid for ref in r.metadata.owner_references))
