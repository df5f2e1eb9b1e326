"""Revision history of DaemonSets and StatefulSets: their ControllerRevisions.

Each distinct pod template an owner has had is saved once, as a
ControllerRevision named ``OWNER-<hash>`` (the hash of the template and the
owner's collision count), controlled by the owner, with a ``revision``
number that orders them. What the fields mean, for the CLI as much as the
controllers, is in control/api/controller_revisions.py.

``ensure_revision`` finds or makes the revision for the owner's current
template, as Kubernetes' controller history does:

- an existing revision with the same template is reused; if it is not
  the newest (the owner went back to an older template: a rollback) its
  number is raised above all others, so the newest number is always the
  current template;
- otherwise a new revision is created with the next number. If its name is
  taken by a different template (a hash collision), the collision count goes
  up, which changes the hash; the caller keeps the count in the owner's
  status.collisionCount.

``truncate_history`` deletes the oldest revisions beyond
revisionHistoryLimit, never one that is current or that a live pod still
runs.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Iterable

from google.protobuf.message import Message

from control.api import errors
from control.api.controller_revisions import REVISION_HASH_LABEL, revision_template, sorted_by_revision
from control.client import Client
from control.recorder import EventRecorder
from control.api.selectors import from_label_selector_message
from control.controllers.informers import Informer
from control.controllers.ownership import claim_dependents
from control.controllers.pods import is_controlled_by, owner_reference
from protos.api.v1 import apps_pb2, core_pb2

log = logging.getLogger(__name__)

__all__ = ["REVISION_HASH_LABEL", "Revisions", "ensure_revision", "history_limit", "new_revision",
           "revision_hash", "revision_template", "template_hash", "truncate_history"]

DEFAULT_HISTORY_LIMIT = 10
# The letters Kubernetes uses in generated names: no vowels (no words), no
# characters easily confused with others.
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_COLLISIONS = 32


def template_hash(template: core_pb2.PodTemplateSpec, collision_count: int = 0) -> str:
    """A short, stable, name-safe hash of the template (and the collision count)."""
    digest = hashlib.sha256(template.SerializeToString(deterministic=True))
    if collision_count:
        digest.update(collision_count.to_bytes(4, "big"))
    number = int.from_bytes(digest.digest()[:5], "big")
    letters = []
    while number:
        number, digit = divmod(number, len(_HASH_ALPHABET))
        letters.append(_HASH_ALPHABET[digit])
    return "".join(letters) or _HASH_ALPHABET[0]


def revision_hash(revision: apps_pb2.ControllerRevision) -> str:
    return revision.metadata.labels.get(REVISION_HASH_LABEL, "")


def new_revision(owner: Message, template: core_pb2.PodTemplateSpec, *, number: int,
                 collision_count: int) -> apps_pb2.ControllerRevision:
    """The ControllerRevision saving template for owner (not yet created), with owner's annotations."""
    hash_ = template_hash(template, collision_count)
    revision = apps_pb2.ControllerRevision(api_version="apps/v1", kind="ControllerRevision", revision=number)
    revision.metadata.name = f"{owner.metadata.name}-{hash_}"
    revision.metadata.namespace = owner.metadata.namespace
    revision.metadata.labels.update(template.metadata.labels)
    revision.metadata.labels[REVISION_HASH_LABEL] = hash_
    revision.metadata.annotations.update(owner.metadata.annotations)
    revision.metadata.owner_references.append(owner_reference(owner))
    revision.data.spec.template.CopyFrom(template)
    return revision


@dataclass(frozen=True)
class Revisions:
    """An owner's revision history after ``ensure_revision``."""

    # The revision of the owner's current template (the newest number).
    current: apps_pb2.ControllerRevision
    # Every revision the owner controls, oldest first, current included.
    all: tuple[apps_pb2.ControllerRevision, ...]
    # The collision count to keep in the owner's status.
    collision_count: int

    def named(self, name: str) -> apps_pb2.ControllerRevision | None:
        return next((r for r in self.all if r.metadata.name == name), None)


async def claim_and_revise(api: Client, pods: Informer, revisions: Informer, owner: Message,
                           recorder: EventRecorder, *, noun: str) -> Revisions | None:
    """How every DaemonSet and StatefulSet pass starts: claim, then find or make the current revision.

    Adopts the orphan pods and revisions the owner's selector matches and
    releases those it no longer matches (the caches follow), then returns
    the owner's revisions with the one for its current template. None (and a
    warning Event) when the selector is empty: it must never claim every pod.
    """
    selector = from_label_selector_message(owner.spec.selector)
    if selector.empty:
        recorder.warning(owner, "SelectingAll", f"This {noun} is selecting all pods. A non-empty selector is required.")
        return None
    await claim_dependents(api, pods, owner, selector)
    await claim_dependents(api, revisions, owner, selector)
    return await ensure_revision(api, revisions, owner, owner.spec.template,
                                 collision_count=owner.status.collision_count)


async def ensure_revision(api: Client, informer: Informer, owner: Message, template: core_pb2.PodTemplateSpec,
                          *, collision_count: int) -> Revisions:
    """Find or create the revision for template; see the module docstring."""
    owned = sorted_by_revision(informer.owned_by(owner.metadata.uid))
    newest = owned[-1].revision if owned else 0
    equal = [r for r in owned if revision_template(r) == template]
    if equal:
        chosen = equal[-1]
        if chosen.revision != newest or sum(1 for r in owned if r.revision == newest) > 1:
            chosen = await _renumber(api, informer, chosen, newest + 1)
        return _result(informer, owner, chosen, collision_count)
    for _ in range(_MAX_COLLISIONS):
        revision = new_revision(owner, template, number=newest + 1, collision_count=collision_count)
        try:
            created = await api.create(revision)
        except errors.AlreadyExistsError:
            existing = await api.get("ControllerRevision", revision.metadata.name,
                                     namespace=revision.metadata.namespace)
            if is_controlled_by(existing, owner) and revision_template(existing) == template:
                # Ours, made by an earlier pass the cache has not shown yet.
                informer.assume(existing)
                if existing.revision != newest + 1:
                    existing = await _renumber(api, informer, existing, newest + 1)
                return _result(informer, owner, existing, collision_count)
            collision_count += 1
            log.info("revision name %s is taken by another template; collision count now %d",
                     revision.metadata.name, collision_count)
            continue
        informer.assume(created)
        return _result(informer, owner, created, collision_count)
    raise errors.ConflictError(f"no free revision name for {owner.metadata.namespace}/{owner.metadata.name} "
                               f"after {_MAX_COLLISIONS} hash collisions")


async def _renumber(api: Client, informer: Informer, revision: apps_pb2.ControllerRevision,
                    number: int) -> apps_pb2.ControllerRevision:
    changed = apps_pb2.ControllerRevision()
    changed.CopyFrom(revision)
    changed.revision = number
    updated = await api.update(changed)  # CAS on the cached resourceVersion: a stale copy fails and requeues
    informer.assume(updated)
    return updated


def _result(informer: Informer, owner: Message, current: apps_pb2.ControllerRevision,
            collision_count: int) -> Revisions:
    owned = {r.metadata.name: r for r in informer.owned_by(owner.metadata.uid)}
    owned[current.metadata.name] = current
    return Revisions(current=current, all=tuple(sorted_by_revision(owned.values())),
                     collision_count=collision_count)


async def truncate_history(api: Client, informer: Informer, revisions: Iterable[apps_pb2.ControllerRevision], *,
                           live: set[str], limit: int) -> list[str]:
    """Delete the oldest revisions not named in live beyond limit; returns the deleted names.

    live holds the names of revisions still in use: the current (and, for a
    StatefulSet, the update) revision and every revision a pod runs.
    """
    history = [r for r in sorted_by_revision(revisions) if r.metadata.name not in live]
    excess = len(history) - max(limit, 0)
    deleted = []
    for revision in history[:max(excess, 0)]:
        try:
            await api.delete("ControllerRevision", revision.metadata.name, namespace=revision.metadata.namespace,
                             uid=revision.metadata.uid)
        except (errors.NotFoundError, errors.ConflictError):
            pass
        informer.assume_deleted(revision)
        deleted.append(revision.metadata.name)
    return deleted


def history_limit(spec: Message) -> int:
    """spec.revisionHistoryLimit, or Kubernetes' default when unset."""
    return spec.revision_history_limit if spec.HasField("revision_history_limit") else DEFAULT_HISTORY_LIMIT
