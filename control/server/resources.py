"""The API's verbs over a store: what create, get, list, update, patch, delete
and watch mean for a Kubernetes-shaped object.

``ResourceService`` is where the object model meets storage:

- An object is stored as its serialized message under
  ``/registry/<plural>/[<namespace>/]<name>``; its resourceVersion is not stored
  but is the store's mod_revision of the key, so it is always exact.
- Writes are compare-and-swap on that revision: a client's stale
  resourceVersion fails with ConflictError; an update or patch without one
  retries internally against the latest version.
- Server-owned metadata (uid, creationTimestamp, generation, deletion fields)
  is set here and never taken from a client. A change to the desired state
  (everything but metadata and status) bumps generation.
- Kinds with a status subresource keep status out of ordinary updates.
- Deletion is graceful for pods bound to a node (the node confirms) and waits
  for finalizers; otherwise it is immediate. A Foreground or Orphan
  propagation policy adds the garbage collector's finalizer, so the object
  waits for its dependents to be deleted or freed.
- An update that changes nothing is not written (the resourceVersion stays),
  which is how ``apply`` tells "unchanged" from "configured".
- A caller may pass an admission step (``admit``), awaited with the object
  about to be written (defaulted and validated) and the stored one; the API
  uses it to refuse RBAC escalation (control/auth/escalation.py).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator, Awaitable, Callable, Optional, Sequence

from google.protobuf.message import DecodeError, Message

from control.api import errors, kinds, manifest, mergepatch, selectors
from control.server import defaults, strategy, validation
from control.server.allocators import ServiceAllocations
from control.server.watchcache import CacheReset, SubscriberTooSlow, WatchCache
from control.store import (
    CompactedError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionConflictError,
    Store,
)

# Internal retries of a write that lost a race without a client precondition.
_MAX_RETRIES = 16
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DECODE_CACHE_SIZE = 8192
# The garbage collector's finalizers (control/controllers/garbage_collector.py).
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


# An admission step (control/server/gate.py): awaited with the object about to be stored and
# the stored one (None on create), after defaulting and validation; it raises to refuse the write.
Admit = Callable[[Message, Optional[Message]], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(kind: kinds.Kind, name: str) -> str:
    """Kubernetes' way of naming an object in messages: pods "web"."""
    return f'{kind.plural} "{name}"'


class ResourceService:
    """The semantics of every API verb, for every kind, over one Store."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = utc_now, cache_watches: bool = True,
                 default_toleration_seconds: int = defaults.DEFAULT_TOLERATION_SECONDS,
                 allocations: ServiceAllocations | None = None) -> None:
        self.store = store
        self.clock = clock
        # Services' cluster IPs and node ports, taken around each Service write (allocators.py).
        self.allocations = allocations if allocations is not None else ServiceAllocations(store)
        # How long pods tolerate a not-ready or unreachable node unless they say otherwise.
        self.default_toleration_seconds = default_toleration_seconds
        self._decoded: OrderedDict[tuple[str, int], Message] = OrderedDict()
        self.watch_cache = WatchCache(store, self.decode) if cache_watches else None
        if self.watch_cache is not None:
            # Creates look their namespace up here rather than in the store.
            self.watch_cache.of(kinds.by_kind("Namespace")).start()

    async def close(self) -> None:
        if self.watch_cache is not None:
            await self.watch_cache.stop()

    # ------------------------------------------------------------ encoding

    def decode(self, kind: kinds.Kind, kv: KeyValue) -> Message:
        """The stored object with its resourceVersion. Shared by every watcher
        of the same revision, so callers must copy before changing it."""
        cache_key = (kv.key, kv.mod_revision)
        obj = self._decoded.get(cache_key)
        if obj is None:
            obj = kind.message.FromString(kv.value)
            obj.metadata.resource_version = str(kv.mod_revision)
            self._decoded[cache_key] = obj
            if len(self._decoded) > _DECODE_CACHE_SIZE:
                self._decoded.popitem(last=False)
        return obj

    def _decode_copy(self, kind: kinds.Kind, kv: KeyValue) -> Message:
        obj = kind.message()
        obj.CopyFrom(self.decode(kind, kv))
        return obj

    @staticmethod
    def encode(obj: Message) -> bytes:
        stored = type(obj)()
        stored.CopyFrom(obj)
        stored.metadata.ClearField("resource_version")
        return stored.SerializeToString(deterministic=True)

    @staticmethod
    def _with_revision(obj: Message, kv: KeyValue) -> Message:
        obj.metadata.resource_version = str(kv.mod_revision)
        return obj

    # --------------------------------------------------------------- reads

    async def _load(self, kind: kinds.Kind, namespace: str, name: str) -> tuple[Message, KeyValue]:
        kv = await self.store.get(kind.storage_key(namespace=namespace, name=name))
        if kv is None:
            raise errors.NotFoundError(f"{describe(kind, name)} not found")
        return self._decode_copy(kind, kv), kv

    async def get(self, kind: kinds.Kind, *, namespace: str, name: str) -> Message:
        namespace = self._scope(kind, namespace)
        obj, _ = await self._load(kind, namespace, name)
        return obj

    async def list(
        self,
        kind: kinds.Kind,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[Message], int]:
        labels, fields = parse_selectors(kind, label_selector, field_selector)
        namespace = namespace if kind.namespaced else ""
        kvs, revision = await self.store.list(kind.storage_prefix(namespace))
        items = []
        for kv in kvs:
            obj = self.decode(kind, kv)
            if labels.matches(obj.metadata.labels) and fields.matches(obj):
                items.append(obj)
        return items, revision

    # -------------------------------------------------------------- create

    async def create(self, obj: Message, *, admit: Admit | None = None) -> Message:
        kind = self._kind_of(obj)
        meta = obj.metadata
        for field in ("uid", "resource_version", "creation_timestamp", "deletion_timestamp",
                      "deletion_grace_period_seconds", "generation"):
            meta.ClearField(field)
        if kind.namespaced:
            if not meta.namespace:
                meta.namespace = "default"
        else:
            meta.ClearField("namespace")
        generated = not meta.name and bool(meta.generate_name)
        defaults.apply_defaults(kind, obj, toleration_seconds=self.default_toleration_seconds)
        prepare = strategy.strategy_for(kind).prepare_for_create
        for attempt in range(_MAX_RETRIES if generated else 1):
            # Each attempt starts again from the defaulted object: the kind's
            # preparation may write the name and uid into it (a Job's selector).
            new = kind.message()
            new.CopyFrom(obj)
            if generated:
                suffix = "".join(secrets.choice(_GENERATE_NAME_ALPHABET) for _ in range(5))
                new.metadata.name = meta.generate_name + suffix
            new.metadata.uid = str(uuid.uuid4())
            new.metadata.creation_timestamp = format_time(self.clock())
            if strategy.has_spec(kind):
                new.metadata.generation = 1
            if prepare is not None:
                prepare(new)
            self._check_valid(kind, new)
            if admit is not None:
                await admit(new, None)
            if kind.namespaced:
                await self._check_namespace_open(new.metadata.namespace)
            key = kind.storage_key(namespace=new.metadata.namespace, name=new.metadata.name)
            try:
                async with self.allocations.claim(kind, new):
                    kv = await self.store.create(key, self.encode(new))
            except KeyExistsError:
                if generated:
                    continue
                raise errors.AlreadyExistsError(f"{describe(kind, new.metadata.name)} already exists") from None
            return self._with_revision(new, kv)
        raise errors.AlreadyExistsError(
            f"{describe(kind, meta.generate_name)}: no free name after {_MAX_RETRIES} tries")

    async def _check_namespace_open(self, namespace: str) -> None:
        ns_kind = kinds.by_kind("Namespace")
        key = ns_kind.storage_key(namespace="", name=namespace)
        ns = None
        if self.watch_cache is not None and self.watch_cache.of(ns_kind).ready.is_set():
            ns = self.watch_cache.of(ns_kind).objects.get(key)
        if ns is None:
            # Not cached (yet): a namespace created a moment ago may not have reached the cache.
            kv = await self.store.get(key)
            if kv is None:
                raise errors.NotFoundError(f'namespaces "{namespace}" not found')
            ns = self.decode(ns_kind, kv)
        if ns.metadata.HasField("deletion_timestamp"):
            raise errors.PreconditionError(
                f"unable to create new content in namespace {namespace} because it is being terminated")

    def _check_valid(self, kind: kinds.Kind, obj: Message, old: Message | None = None) -> None:
        problems = validation.validate(kind, obj, old=old)
        if problems:
            raise invalid(kind, obj.metadata.name or obj.metadata.generate_name, problems)

    # -------------------------------------------------------------- update

    async def update(self, obj: Message, *, subresource: str = "", admit: Admit | None = None) -> Message:
        kind = self._kind_of(obj)
        if subresource not in ("", "status"):
            raise errors.NotFoundError(f'the server could not find the requested resource ({kind.plural}/{subresource})')
        if subresource == "status" and not kind.has_status:
            raise errors.NotFoundError(f"{kind.plural} have no status subresource")
        namespace = self._scope(kind, obj.metadata.namespace)
        name = obj.metadata.name
        precondition = obj.metadata.resource_version
        for _ in range(_MAX_RETRIES):
            current, kv = await self._load(kind, namespace, name)
            if precondition and precondition != current.metadata.resource_version:
                raise conflict(kind, name)
            if subresource == "status":
                new = kind.message()
                new.CopyFrom(current)
                new.status.CopyFrom(obj.status)
            else:
                new = kind.message()
                new.CopyFrom(obj)
                new.metadata.namespace = namespace
                if kind.has_status:
                    # Kept as stored, absent included, so an update that changes nothing writes nothing.
                    new.ClearField("status")
                    if current.HasField("status"):
                        new.status.CopyFrom(current.status)
            try:
                return await self._write_update(kind, new, current, kv, admit=admit)
            except errors.ConflictError:
                if precondition:
                    raise
        raise conflict(kind, name)

    async def _write_update(self, kind: kinds.Kind, new: Message, current: Message, kv: KeyValue, *,
                            admit: Admit | None = None) -> Message:
        """Validate new against current and write it if it changes anything."""
        meta, old_meta = new.metadata, current.metadata
        for field in ("uid", "creation_timestamp", "deletion_timestamp",
                      "deletion_grace_period_seconds", "generation"):
            if old_meta.HasField(field):
                setattr(meta, field, getattr(old_meta, field))
            else:
                meta.ClearField(field)
        meta.resource_version = old_meta.resource_version
        if not meta.HasField("name"):
            meta.name = old_meta.name
        defaults.apply_defaults(kind, new, toleration_seconds=self.default_toleration_seconds)
        prepare = strategy.strategy_for(kind).prepare_for_update
        if prepare is not None:
            prepare(new, current)
        self._check_valid(kind, new, old=current)
        if admit is not None:
            await admit(new, current)
        if strategy.has_spec(kind) and strategy.desired_state(new) != strategy.desired_state(current):
            meta.generation = old_meta.generation + 1
        if new == current and not kv.stale:
            # An unchanged object is not written, unless its stored form is stale
            # (encrypted with a key that no longer encrypts): then the rewrite is the point.
            return current
        key = kv.key
        try:
            if meta.HasField("deletion_timestamp") and not meta.finalizers and meta.deletion_grace_period_seconds == 0:
                # The last finalizer is gone from an object being deleted.
                gone = await self.store.delete(key, expected_revision=kv.mod_revision)
                await self.allocations.release(kind, current)
                return self._with_revision(new, gone)
            async with self.allocations.claim(kind, new, old=current):
                written = await self.store.update(key, self.encode(new), expected_revision=kv.mod_revision)
        except RevisionConflictError:
            raise conflict(kind, meta.name) from None
        except KeyNotFoundError:
            raise errors.NotFoundError(f"{describe(kind, meta.name)} not found") from None
        return self._with_revision(new, written)

    # --------------------------------------------------------------- patch

    async def patch(
        self, kind: kinds.Kind, *, namespace: str, name: str, patch: bytes, subresource: str = "",
        admit: Admit | None = None,
    ) -> Message:
        try:
            document = json.loads(patch)
        except (ValueError, RecursionError) as err:
            raise errors.BadRequestError(f"invalid JSON merge patch: {err}") from None
        if not isinstance(document, dict):
            raise errors.BadRequestError("invalid JSON merge patch: the patch must be a JSON object")
        precondition = str((document.get("metadata") or {}).get("resourceVersion") or "")
        namespace = self._scope(kind, namespace)
        for _ in range(_MAX_RETRIES):
            current, _ = await self._load(kind, namespace, name)
            if precondition and precondition != current.metadata.resource_version:
                raise conflict(kind, name)
            try:
                merged = mergepatch.apply_merge_patch(manifest.to_dict(current), document)
            except ValueError as err:
                raise errors.BadRequestError(f"invalid JSON merge patch: {err}") from None
            merged.setdefault("metadata", {})["resourceVersion"] = current.metadata.resource_version
            try:
                new = manifest.from_dict(kind, merged)
            except manifest.ManifestError as err:
                raise invalid(kind, name, err.errors) from None
            if new.metadata.name != name or (kind.namespaced and new.metadata.namespace != namespace):
                raise errors.BadRequestError("a patch may not change metadata.name or metadata.namespace")
            try:
                return await self.update(new, subresource=subresource, admit=admit)
            except errors.ConflictError:
                if precondition:
                    raise
        raise conflict(kind, name)

    # -------------------------------------------------------------- delete

    async def delete(
        self,
        kind: kinds.Kind,
        *,
        namespace: str,
        name: str,
        grace_period_seconds: int | None = None,
        force: bool = False,
        uid: str = "",
        resource_version: str = "",
        propagation_policy: str = "",
    ) -> tuple[Message, bool]:
        """Delete or mark for deletion. Returns the object and whether it is gone.

        propagation_policy ("", Background, Foreground, Orphan) sets the
        garbage collector's finalizers (see ``gc_finalizers``)."""
        namespace = self._scope(kind, namespace)
        if grace_period_seconds is not None and grace_period_seconds < 0:
            raise errors.InvalidError("gracePeriodSeconds: Invalid value: must be >= 0")
        if kind.kind == "Namespace" and name in strategy.SYSTEM_NAMESPACES:
            raise errors.ForbiddenError(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        for _ in range(_MAX_RETRIES):
            current, kv = await self._load(kind, namespace, name)
            if uid and uid != current.metadata.uid:
                raise errors.ConflictError(
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: {current.metadata.uid}")
            if resource_version and resource_version != current.metadata.resource_version:
                raise conflict(kind, name)
            try:
                return await self._delete_once(kind, current, kv, grace_period_seconds, force,
                                               gc_finalizers(kind, current.metadata.finalizers, propagation_policy))
            except errors.ConflictError:
                # Another write got in between: read again. A uid precondition is checked
                # again on that read (as Kubernetes does), so a delete "of this object" is
                # not refused because someone changed the object meanwhile.
                if resource_version:
                    raise
        raise conflict(kind, name)

    async def _delete_once(
        self, kind: kinds.Kind, current: Message, kv: KeyValue, grace: int | None, force: bool,
        finalizers: list[str],
    ) -> tuple[Message, bool]:
        """One attempt; finalizers are the ones the object keeps (its own, with the garbage collector's
        as the propagation policy asks)."""
        meta = current.metadata
        now = self.clock()
        if kind.kind == "Pod":
            grace = self._pod_grace_period(current, grace, force)
        elif kind.kind == "Namespace" and await self._namespace_has_content(meta.name):
            if meta.HasField("deletion_timestamp"):
                return current, False
            marked = kind.message()
            marked.CopyFrom(current)
            marked.metadata.deletion_timestamp = format_time(now)
            marked.metadata.deletion_grace_period_seconds = 0
            marked.status.phase = "Terminating"
            result = await self._write_marked(kind, marked, kv)
            await self.record_event(result, reason="NamespaceTerminating",
                                    message="Deleting the objects in the namespace")
            return result, False
        else:
            grace = 0
        finalizers_change = list(meta.finalizers) != finalizers
        if grace > 0:
            # Graceful pod deletion: the node stops the containers, then deletes with grace 0.
            shortens = not meta.HasField("deletion_timestamp") or grace < meta.deletion_grace_period_seconds
            if not shortens and not finalizers_change:
                return current, False
            marked = kind.message()
            marked.CopyFrom(current)
            _set_finalizers(marked, finalizers)
            if shortens:
                marked.metadata.deletion_grace_period_seconds = grace
                marked.metadata.deletion_timestamp = format_time(now + timedelta(seconds=grace))
            result = await self._write_marked(kind, marked, kv)
            if shortens:
                await self.record_event(result, reason="DeletionRequested",
                                        message=f"Marked for deletion; node {current.spec.node_name} "
                                                f"has {grace}s to stop the containers")
            return result, False
        if finalizers:
            marks = not meta.HasField("deletion_timestamp") or meta.deletion_grace_period_seconds != 0
            if not marks and not finalizers_change:
                return current, False
            marked = kind.message()
            marked.CopyFrom(current)
            _set_finalizers(marked, finalizers)
            if marks:
                marked.metadata.deletion_timestamp = format_time(now)
                marked.metadata.deletion_grace_period_seconds = 0
            result = await self._write_marked(kind, marked, kv)
            if marks:
                await self.record_event(result, reason="WaitingForFinalizers",
                                        message="Deletion waits for finalizers: " + ", ".join(finalizers))
            return result, False
        try:
            gone = await self.store.delete(kv.key, expected_revision=kv.mod_revision)
        except RevisionConflictError:
            raise conflict(kind, meta.name) from None
        except KeyNotFoundError:
            raise errors.NotFoundError(f"{describe(kind, meta.name)} not found") from None
        await self.allocations.release(kind, current)
        if kind.kind == "Pod" and force and current.spec.node_name and current.status.phase not in ("Succeeded", "Failed"):
            await self.record_event(current, type_="Warning", reason="ForceDeleted",
                                    message=f"Removed without confirmation from node {current.spec.node_name}")
        return self._with_revision(current, gone), True

    @staticmethod
    def _pod_grace_period(pod: Message, requested: int | None, force: bool) -> int:
        """Kubernetes' rules: unbound or finished pods go at once; 0 needs force
        unless the pod is already being deleted (that is the node's confirmation)."""
        if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed"):
            return 0
        if requested is None:
            if pod.metadata.HasField("deletion_grace_period_seconds"):
                return pod.metadata.deletion_grace_period_seconds
            return pod.spec.termination_grace_period_seconds if pod.spec.HasField(
                "termination_grace_period_seconds") else 30
        if requested == 0 and not force and not pod.metadata.HasField("deletion_timestamp"):
            return 1
        return requested

    async def _write_marked(self, kind: kinds.Kind, marked: Message, kv: KeyValue) -> Message:
        try:
            written = await self.store.update(kv.key, self.encode(marked), expected_revision=kv.mod_revision)
        except RevisionConflictError:
            raise conflict(kind, marked.metadata.name) from None
        return self._with_revision(marked, written)

    async def _namespace_has_content(self, namespace: str) -> bool:
        for kind in kinds.all_kinds():
            if kind.namespaced and kind.kind != "Event":
                kvs, _ = await self.store.list(kind.storage_prefix(namespace))
                if kvs:
                    return True
        return False

    # --------------------------------------------------------------- watch

    async def watch(
        self,
        kind: kinds.Kind,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
    ) -> AsyncIterator[tuple[str, Message]]:
        """Yield (event type, object) for changes after resource_version.

        A selector turns a change that makes an object stop (start) matching
        into DELETED (ADDED), as Kubernetes does, so a filtered watcher's view
        stays consistent.
        """
        labels, fields = parse_selectors(kind, label_selector, field_selector)
        namespace = namespace if kind.namespaced else ""

        def matches(obj: Message) -> bool:
            return labels.matches(obj.metadata.labels) and fields.matches(obj)

        if resource_version in ("", "0"):
            items, revision = await self.list(
                kind, namespace=namespace, label_selector=label_selector, field_selector=field_selector)
            for item in items:
                yield "ADDED", item
            start = revision + 1
        else:
            try:
                start = int(resource_version) + 1
            except ValueError:
                raise errors.BadRequestError(f"invalid resourceVersion {resource_version!r}: must be an integer") from None
        prefix = kind.storage_prefix(namespace)
        cached = None
        if self.watch_cache is not None:
            cached = await self.watch_cache.of(kind).subscribe(prefix=prefix, after=start - 1)
        if cached is not None:
            changes = self._cached_changes(cached)
        else:
            changes = self._store_changes(kind, prefix, start)
        try:
            async for deleted, obj, prev in changes:
                was = prev is not None and matches(prev)
                if deleted:
                    if was:
                        yield "DELETED", obj
                    continue
                now = matches(obj)
                if now and was:
                    yield "MODIFIED", obj
                elif now:
                    yield "ADDED", obj
                elif was:
                    yield "DELETED", obj
        except CompactedError as err:
            raise errors.ExpiredError(
                f"too old resource version: {start - 1} ({err.compacted})") from None
        except (SubscriberTooSlow, CacheReset) as err:
            raise errors.ExpiredError(f"watch closed: {err}") from None
        finally:
            await changes.aclose()

    @staticmethod
    async def _cached_changes(events) -> AsyncIterator[tuple[bool, Message, Message | None]]:
        try:
            async for event in events:
                yield event.deleted, event.obj, event.prev
        finally:
            await events.aclose()

    async def _store_changes(
        self, kind: kinds.Kind, prefix: str, start: int
    ) -> AsyncIterator[tuple[bool, Message, Message | None]]:
        events = self.store.watch(prefix, start_revision=start)
        try:
            async for event in events:
                prev = self.decode(kind, event.prev) if event.prev is not None else None
                yield event.type is EventType.DELETE, self.decode(kind, event.kv), prev
        finally:
            await events.aclose()

    # -------------------------------------------------------------- events

    async def record_event(
        self, obj: Message, *, reason: str, message: str, type_: str = "Normal", component: str = "sampan-control"
    ) -> None:
        """Write an Event about obj (best effort: a failure is not the caller's)."""
        from protos.api.v1 import core_pb2

        now = format_time(self.clock())
        meta = obj.metadata
        namespace = meta.namespace or "default"
        event = core_pb2.Event(api_version="v1", kind="Event")
        event.metadata.name = f"{meta.name}.{uuid.uuid4().hex[:16]}"
        event.metadata.namespace = namespace
        event.involved_object.kind = self._kind_of(obj).kind
        event.involved_object.name = meta.name
        if meta.namespace:
            event.involved_object.namespace = meta.namespace
        event.involved_object.uid = meta.uid
        event.involved_object.api_version = self._kind_of(obj).api_version
        event.reason = reason
        event.message = message
        event.type = type_
        event.source.component = component
        event.first_timestamp = event.last_timestamp = now
        event.count = 1
        event.reporting_component = component
        try:
            await self.create(event)
        except errors.APIError:
            pass

    # ------------------------------------------------------------- helpers

    def _kind_of(self, obj: Message) -> kinds.Kind:
        return kinds.by_type_url(kinds.TYPE_URL_PREFIX + obj.DESCRIPTOR.full_name)

    @staticmethod
    def _scope(kind: kinds.Kind, namespace: str) -> str:
        if not kind.namespaced:
            return ""
        return namespace or "default"


def gc_finalizers(kind: kinds.Kind, finalizers: Sequence[str], policy: str) -> list[str]:
    """The finalizers an object keeps when deleted with propagation policy (Kubernetes' rules).

    Orphan adds ``orphan`` (the garbage collector frees the dependents, then
    removes it), Foreground adds ``foregroundDeletion`` (it deletes the
    dependents first); an explicit policy drops the other one, Background
    drops both, and no policy keeps what the object has. A namespace's
    contents are deleted by the namespace controller whatever the policy.
    """
    if not policy or kind.kind == "Namespace":
        return list(finalizers)
    kept = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if policy == "Orphan":
        kept.append(ORPHAN_FINALIZER)
    elif policy == "Foreground":
        kept.append(FOREGROUND_FINALIZER)
    return kept


def _set_finalizers(obj: Message, finalizers: list[str]) -> None:
    del obj.metadata.finalizers[:]
    obj.metadata.finalizers.extend(finalizers)


def parse_selectors(
    kind: kinds.Kind, label_selector: str, field_selector: str
) -> tuple[selectors.LabelSelector, selectors.FieldSelector]:
    try:
        labels = selectors.parse_label_selector(label_selector)
        fields = selectors.parse_field_selector(field_selector)
        fields.check_paths(kind.message)
    except selectors.SelectorError as err:
        raise errors.BadRequestError(str(err)) from None
    return labels, fields


def conflict(kind: kinds.Kind, name: str) -> errors.ConflictError:
    return errors.ConflictError(
        f"Operation cannot be fulfilled on {describe(kind, name)}: the object has been modified; "
        "please apply your changes to the latest version and try again")


def invalid(kind: kinds.Kind, name: str, problems: list) -> errors.InvalidError:
    listed = ", ".join(str(p) for p in problems)
    body = listed if len(problems) == 1 else f"[{listed}]"
    return errors.InvalidError(f'{kind.kind} "{name}" is invalid: {body}')


def unpack_object(type_url: str, value: bytes) -> tuple[kinds.Kind, Message]:
    """Decode a request's Any into its kind's message (BadRequest on garbage)."""
    try:
        kind = kinds.by_type_url(type_url)
    except kinds.UnknownKindError as err:
        raise errors.BadRequestError(str(err)) from None
    try:
        return kind, kind.message.FromString(value)
    except (DecodeError, RecursionError) as err:
        raise errors.BadRequestError(f"malformed {kind.kind} object: {err}") from None
