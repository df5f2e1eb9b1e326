"""The garbage collector: deletes objects whose owners are gone, and carries out
foreground and orphan deletion.

An object names its owners in ``metadata.ownerReferences``, by kind, name and
uid. Deleting an owner does what the delete's propagation policy asked
(control/server/resources.py turns the policy into a finalizer):

- Background (the default): the owner goes at once; this collector then
  deletes every dependent none of whose owners remains. A dependent with
  another owner still present survives, and loses its references to the
  owners that are gone.
- Foreground: the owner stays, marked for deletion, with the
  ``foregroundDeletion`` finalizer. The collector deletes its dependents
  (in the foreground too when they have dependents of their own) and removes
  the finalizer once no dependent with ``blockOwnerDeletion`` is left, which
  completes the owner's deletion.
- Orphan: the owner stays with the ``orphan`` finalizer until the collector
  has removed the owner's reference from every dependent; then it removes
  the finalizer and the owner goes, its dependents left in place.

How: one shared informer per kind feeds a map of every object by uid, and an
index from owner uid to its dependents' uids. Handlers only queue uids: an
object whose ownerReferences or deletion state changed, an owner waiting
for its dependents when one of them changes, the dependents of an object
that disappeared. ``reconcile`` looks at one uid.

Removing a finalizer cannot be undone, and the caches of different kinds lag
behind the store by different amounts: before the collector lets an owner go
it lists the owner's namespace from the API, and waits while a dependent the
cache has not seen yet is there.

Owners are identified by uid, never by name: an owner deleted and created
again under the same name is another owner, and its predecessor's
dependents are collected. An owner that is not in the cache may simply not
have reached it yet (it was created a moment before its dependent): before
calling an owner gone the collector asks the API for it (Kubernetes'
"virtual node" check), and only NotFound, or an object of that name with
another uid, counts as gone. Since a uid is never reused, an owner seen gone
is remembered as gone.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Hashable, Iterable

from google.protobuf.message import Message

from control.api import errors, kinds
from control.controllers.informers import version_of
from control.controllers.manager import ControllerContext
from control.controllers.queue import WorkQueue, run_workers

log = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
# Owner uids known to be gone (uids are never reused, so this never goes stale).
_REMEMBERED_ABSENT = 65536
_WRITE_RETRIES = 5
# An owner whose dependents the caches have not all seen yet looks again this soon.
_CATCH_UP_SECONDS = 0.1
# A snapshot of the store's owner references serves the questions of this many seconds.
_SNAPSHOT_KEPT_SECONDS = 10.0


class OwnerState(enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"  # deleted, or replaced by another object of the same name
    DELETING_DEPENDENTS = "deleting dependents"  # being deleted in the foreground
    UNKNOWN = "unknown"  # a kind this API does not serve: never collect on a guess


@dataclass
class _Snapshot:
    """Objects by the uids of their owners, as the store held them at revision (see ``_snapshot``)."""

    taken: float
    revision: int = 0
    dependents: dict[str, list[tuple[kinds.Kind, Message]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Tracked:
    """One object the collector holds, with its kind."""

    kind: kinds.Kind
    obj: Message

    @property
    def uid(self) -> str:
        return self.obj.metadata.uid


def owner_uids(obj: Message | None) -> set[str]:
    return {ref.uid for ref in obj.metadata.owner_references} if obj is not None else set()


def deleting_with(obj: Message, finalizer: str) -> bool:
    return obj.metadata.HasField("deletion_timestamp") and finalizer in obj.metadata.finalizers


def blocks(dependent: Message, owner_uid: str) -> bool:
    """Whether dependent's reference to owner_uid holds the owner's foreground deletion."""
    return any(ref.uid == owner_uid and ref.block_owner_deletion for ref in dependent.metadata.owner_references)


class GarbageCollector:
    """See the module docstring. Build it before the informers start (it asks for every kind)."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.api = ctx.api
        self.ctx = ctx
        self.queue = WorkQueue()
        self.objects: dict[str, Tracked] = {}
        self.dependents: dict[str, set[str]] = {}
        self._absent: OrderedDict[str, None] = OrderedDict()
        self._snapshots: dict[str, _Snapshot] = {}
        self.kinds = list(kinds.all_kinds())
        for kind in self.kinds:
            ctx.informers.get(kind.kind).add_handler(self._handler(kind))

    # ------------------------------------------------------------ handlers (record only)

    def _handler(self, kind: kinds.Kind):
        def changed(old: Message | None, new: Message | None) -> None:
            if old is not None and new is not None and old.metadata.uid != new.metadata.uid:
                self._gone(old)  # the name now belongs to another object
                old = None
            if new is None:
                if old is not None:
                    self._gone(old)
            else:
                self._seen(kind, old, new)

        return changed

    def _seen(self, kind: kinds.Kind, old: Message | None, new: Message) -> None:
        uid = new.metadata.uid
        self.objects[uid] = Tracked(kind, new)
        before, after = owner_uids(old), owner_uids(new)
        for owner in before - after:
            self._unlink(owner, uid)
        for owner in after:
            self.dependents.setdefault(owner, set()).add(uid)
        references_changed = old is None or list(old.metadata.owner_references) != list(new.metadata.owner_references)
        deletion_changed = old is None or (
            old.metadata.HasField("deletion_timestamp") != new.metadata.HasField("deletion_timestamp")
            or list(old.metadata.finalizers) != list(new.metadata.finalizers))
        if (after and references_changed) or (deletion_changed and self._waits_on_collector(new)):
            self.queue.add(uid)
        # A foreground-deleting owner looks again whenever one of its dependents changes.
        self._queue_waiting_owners(before | after)

    def _gone(self, old: Message) -> None:
        uid = old.metadata.uid
        self.objects.pop(uid, None)
        # Not remembered as absent here: a controller may have only assumed the deletion
        # (a pod it deleted gracefully is still there). The owner check asks the API.
        owners = owner_uids(old)
        for owner in owners:
            self._unlink(owner, uid)
        self._queue_waiting_owners(owners)
        for dependent in self.dependents.get(uid, ()):
            self.queue.add(dependent)

    def _unlink(self, owner: str, dependent: str) -> None:
        linked = self.dependents.get(owner)
        if linked is not None:
            linked.discard(dependent)
            if not linked:
                del self.dependents[owner]

    def _queue_waiting_owners(self, owners: Iterable[str]) -> None:
        for owner in owners:
            tracked = self.objects.get(owner)
            if tracked is not None and self._waits_on_collector(tracked.obj):
                self.queue.add(owner)

    @staticmethod
    def _waits_on_collector(obj: Message) -> bool:
        return deleting_with(obj, FOREGROUND) or deleting_with(obj, ORPHAN)

    def _remember_absent(self, uid: str) -> None:
        self._absent[uid] = None
        self._absent.move_to_end(uid)
        while len(self._absent) > _REMEMBERED_ABSENT:
            self._absent.popitem(last=False)

    # ------------------------------------------------------------ reconcile

    async def run(self) -> None:
        await self.ctx.informers.wait_synced(kind.kind for kind in self.kinds)
        try:
            await run_workers(self.queue, self.reconcile, workers=self.ctx.options.workers)
        finally:
            self.queue.close()

    async def reconcile(self, key: Hashable) -> float | None:
        """Look at one object (by uid): finish its foreground or orphan deletion, or collect it."""
        tracked = self.objects.get(str(key))
        if tracked is None:
            return None
        obj = tracked.obj
        if deleting_with(obj, ORPHAN):
            return await self._orphan_dependents(tracked)
        if deleting_with(obj, FOREGROUND):
            return await self._delete_dependents(tracked)
        if obj.metadata.owner_references and not obj.metadata.HasField("deletion_timestamp"):
            await self._collect_if_ownerless(tracked)
        return None

    def _dependents_of(self, uid: str) -> list[Tracked]:
        return [self.objects[d] for d in sorted(self.dependents.get(uid, ())) if d in self.objects]

    async def _orphan_dependents(self, owner: Tracked) -> float | None:
        for dependent in self._dependents_of(owner.uid):
            await self._remove_references(dependent, {owner.uid})
        if await self._unseen_dependents(owner, blocking=False):
            return _CATCH_UP_SECONDS
        await self._remove_finalizer(owner, ORPHAN)
        return None

    async def _delete_dependents(self, owner: Tracked) -> float | None:
        # The ones holding the owner first; each decides for itself: deleted, or kept by another owner.
        dependents = sorted(self._dependents_of(owner.uid), key=lambda d: not blocks(d.obj, owner.uid))
        for dependent in dependents:
            self.queue.add(dependent.uid)
        if any(blocks(dependent.obj, owner.uid) for dependent in dependents):
            return None  # looked at again when one of them changes
        if await self._unseen_dependents(owner, blocking=True):
            return _CATCH_UP_SECONDS
        await self._remove_finalizer(owner, FOREGROUND)
        return None

    async def _unseen_dependents(self, owner: Tracked, *, blocking: bool) -> bool:
        """Whether the store holds a dependent of owner (one blocking it, if blocking) the cache lacks.

        Asked before a finalizer is removed: the caches of other kinds may lag
        behind the owner's (a dependent created a moment before the owner's
        deletion), and that step cannot be undone.
        """
        namespace = owner.obj.metadata.namespace
        snapshot = await self._snapshot(namespace, since=version_of(owner.obj))
        waiting = [(kind, obj) for kind, obj in snapshot.dependents.get(owner.uid, ())
                   if not blocking or blocks(obj, owner.uid)]
        if not waiting:
            return False
        kind, obj = waiting[0]
        log.info("%s %s/%s waits for %s %s/%s, not yet in the cache", owner.kind.kind, namespace,
                 owner.obj.metadata.name, kind.kind, obj.metadata.namespace, obj.metadata.name)
        self._snapshots.pop(namespace, None)  # look at the store afresh next time
        return True

    async def _has_dependents(self, tracked: Tracked) -> bool:
        """Whether anything names tracked as its owner: in the cache or, failing that, in the store."""
        if self.dependents.get(tracked.uid):
            return True
        snapshot = await self._snapshot(tracked.obj.metadata.namespace, since=version_of(tracked.obj))
        return bool(snapshot.dependents.get(tracked.uid))

    async def _snapshot(self, namespace: str, *, since: int) -> "_Snapshot":
        """Every object of one namespace ("" for all) by owner uid, as the store held them at or after since.

        One snapshot serves many questions: a foreground deletion of a
        ReplicaSet asks about each of its pods, created before the snapshot.
        """
        now = time.monotonic()
        for stale in [ns for ns, held in self._snapshots.items() if now - held.taken > _SNAPSHOT_KEPT_SECONDS]:
            del self._snapshots[stale]  # not kept in memory once the deletions that asked are done
        held = self._snapshots.get(namespace)
        if held is not None and held.revision >= since:
            return held
        snapshot = _Snapshot(taken=now)
        revisions = []
        for kind in self.kinds:
            if namespace and not kind.namespaced:
                continue  # a namespaced owner cannot own cluster-scoped objects
            items, revision = await self.api.list(kind, namespace=namespace if kind.namespaced else "")
            revisions.append(int(revision or 0))
            for obj in items:
                for ref in obj.metadata.owner_references:
                    snapshot.dependents.setdefault(ref.uid, []).append((kind, obj))
        snapshot.revision = min(revisions, default=0)
        self._snapshots[namespace] = snapshot
        return snapshot

    async def _collect_if_ownerless(self, dependent: Tracked) -> None:
        meta = dependent.obj.metadata
        states = {ref.uid: await self.owner_state(ref, dependent) for ref in meta.owner_references}
        if OwnerState.UNKNOWN in states.values():
            return
        if OwnerState.PRESENT in states.values():
            stale = {uid for uid, state in states.items() if state is not OwnerState.PRESENT}
            if stale:
                await self._remove_references(dependent, stale)
            return
        # No owner remains. Under a foreground deletion, a dependent with dependents of its own goes in
        # the foreground too, so its owner waits for the whole subtree.
        foreground = OwnerState.DELETING_DEPENDENTS in states.values() and await self._has_dependents(dependent)
        log.info("deleting %s %s/%s: no owner remains", dependent.kind.kind, meta.namespace, meta.name)
        try:
            await self.api.delete(dependent.kind, meta.name, namespace=meta.namespace, uid=meta.uid,
                                  propagation_policy="Foreground" if foreground else "")
        except (errors.NotFoundError, errors.ConflictError):
            pass  # already gone, or the name holds another object now
        except errors.ForbiddenError as err:
            log.warning("cannot collect %s %s/%s: %s", dependent.kind.kind, meta.namespace, meta.name, err)

    async def owner_state(self, ref: Message, dependent: Tracked) -> OwnerState:
        """Whether the owner ref names exists, from the cache or, when the cache does not have it, the API."""
        if ref.uid in self._absent:
            return OwnerState.ABSENT
        try:
            kind = kinds.by_api_version_kind(ref.api_version, ref.kind)
        except kinds.UnknownKindError:
            log.warning("%s %s/%s names an owner of unknown kind %s %s; leaving it alone",
                        dependent.kind.kind, dependent.obj.metadata.namespace, dependent.obj.metadata.name,
                        ref.api_version, ref.kind)
            return OwnerState.UNKNOWN
        if kind.namespaced and not dependent.kind.namespaced:
            return OwnerState.ABSENT  # a cluster-scoped object cannot be owned by a namespaced one
        namespace = dependent.obj.metadata.namespace if kind.namespaced else ""
        cached = self.objects.get(ref.uid)
        if cached is not None and cached.kind == kind and cached.obj.metadata.namespace == namespace:
            owner = cached.obj
        else:
            try:
                owner = await self.api.get(kind, ref.name, namespace=namespace)
            except errors.NotFoundError:
                owner = None
            if owner is None or owner.metadata.uid != ref.uid:
                self._remember_absent(ref.uid)
                return OwnerState.ABSENT
        return OwnerState.DELETING_DEPENDENTS if deleting_with(owner, FOREGROUND) else OwnerState.PRESENT

    # ------------------------------------------------------------ writes

    async def _remove_references(self, dependent: Tracked, owners: set[str]) -> None:
        """Drop dependent's ownerReferences to owners (on the live object, retrying on conflicts)."""

        def change(obj: Message) -> bool:
            kept = [ref for ref in obj.metadata.owner_references if ref.uid not in owners]
            if len(kept) == len(obj.metadata.owner_references):
                return False
            del obj.metadata.owner_references[:]
            obj.metadata.owner_references.extend(kept)
            return True

        await self._rewrite(dependent, change)

    async def _remove_finalizer(self, owner: Tracked, finalizer: str) -> None:
        def change(obj: Message) -> bool:
            if finalizer not in obj.metadata.finalizers:
                return False
            kept = [f for f in obj.metadata.finalizers if f != finalizer]
            del obj.metadata.finalizers[:]
            obj.metadata.finalizers.extend(kept)
            return True

        log.info("removing the %s finalizer of %s %s/%s", finalizer, owner.kind.kind,
                 owner.obj.metadata.namespace, owner.obj.metadata.name)
        await self._rewrite(owner, change)

    async def _rewrite(self, tracked: Tracked, change) -> None:
        meta = tracked.obj.metadata
        for _ in range(_WRITE_RETRIES):
            try:
                live = await self.api.get(tracked.kind, meta.name, namespace=meta.namespace)
            except errors.NotFoundError:
                return
            if live.metadata.uid != meta.uid or not change(live):
                return
            try:
                await self.api.update(live)
                return
            except errors.NotFoundError:
                return
            except errors.ConflictError:
                continue
        raise errors.ConflictError(f"{tracked.kind.kind} {meta.namespace}/{meta.name} kept changing")


async def run_garbage_collector(ctx: ControllerContext) -> None:
    """Run the garbage collector until cancelled."""
    await GarbageCollector(ctx).run()
