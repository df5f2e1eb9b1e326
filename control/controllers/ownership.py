"""Which objects a label-selecting controller controls: adoption and release.

A ReplicaSet controls the pods its selector matches, a Deployment the
ReplicaSets its selector matches; "controls" is written down as the
dependent's ``controller: true`` ownerReference, so two controllers never
fight over one object. Before each pass a controller claims its dependents,
as Kubernetes' ClaimObjects does:

- a dependent it controls that still matches is kept;
- one it controls that no longer matches (its labels or the selector
  changed) is released: the ownerReference is removed;
- an orphan (no controller at all) that matches is adopted: the reference is
  added. A controller being deleted neither adopts nor releases, and before
  its first adoption in a pass it reads itself from the API (not the cache),
  so a controller deleted, or deleted and created again under the same
  name, never adopts with a stale uid.

Every write is compare-and-swap on the dependent's resourceVersion from the
cache. A release that loses the race leaves the dependent out of this pass
(its change event brings the controller back with fresh data). An adoption
that loses it fails the whole pass with ConflictError, retried shortly, as
Kubernetes' ClaimObjects does: the cache held an older copy of the orphan,
and a pass that went on without it would create a replacement for a pod
that exists.
"""

from __future__ import annotations

import logging

from google.protobuf.message import Message

from control.api import errors, kinds
from control.api.selectors import LabelSelector
from control.client import Client
from control.controllers.informers import Informer, controller_uid
from control.controllers.pods import owner_reference

log = logging.getLogger(__name__)


def _being_deleted(obj: Message) -> bool:
    return obj.metadata.HasField("deletion_timestamp")


async def claim_dependents(api: Client, informer: Informer, owner: Message, selector: LabelSelector) -> list[Message]:
    """The dependents owner controls after adopting matching orphans and releasing what no longer matches."""
    namespace = owner.metadata.namespace
    claimed: list[Message] = []
    for dependent in informer.owned_by(owner.metadata.uid):
        if selector.matches(dependent.metadata.labels):
            claimed.append(dependent)
        elif not _being_deleted(owner) and not _being_deleted(dependent):
            await _release(api, informer, dependent, owner)
    if _being_deleted(owner) or selector.empty:
        return claimed
    orphans = [obj for obj in informer.list(namespace, selector=selector)
               if not controller_uid(obj) and not _being_deleted(obj)]
    if orphans and await _still_the_same(api, owner):
        for orphan in orphans:
            adopted = await _adopt(api, informer, orphan, owner)
            if adopted is not None:
                claimed.append(adopted)
    return claimed


async def _still_the_same(api: Client, owner: Message) -> bool:
    """Whether owner, read from the API, is still the object we hold and is not being deleted."""
    kind = kinds.by_type_url(kinds.TYPE_URL_PREFIX + owner.DESCRIPTOR.full_name)
    try:
        fresh = await api.get(kind, owner.metadata.name, namespace=owner.metadata.namespace)
    except errors.NotFoundError:
        return False
    return fresh.metadata.uid == owner.metadata.uid and not _being_deleted(fresh)


async def _adopt(api: Client, informer: Informer, orphan: Message, owner: Message) -> Message | None:
    changed = type(orphan)()
    changed.CopyFrom(orphan)
    changed.metadata.owner_references.append(owner_reference(owner))
    return await _write(api, informer, changed, what="adopt")


async def _release(api: Client, informer: Informer, dependent: Message, owner: Message) -> None:
    changed = type(dependent)()
    changed.CopyFrom(dependent)
    kept = [ref for ref in changed.metadata.owner_references if ref.uid != owner.metadata.uid]
    del changed.metadata.owner_references[:]
    changed.metadata.owner_references.extend(kept)
    await _write(api, informer, changed, what="release")


async def _write(api: Client, informer: Informer, changed: Message, *, what: str) -> Message | None:
    try:
        written = await api.update(changed)
    except (errors.ConflictError, errors.NotFoundError, errors.InvalidError) as err:
        log.info("could not %s %s/%s: %s", what, changed.metadata.namespace, changed.metadata.name, err)
        if what == "adopt" and isinstance(err, errors.ConflictError):
            raise
        return None
    informer.assume(written)
    return written
