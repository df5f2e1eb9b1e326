"""The storage seam: a small key-value contract with revisions, CAS and watch.

Every backend (embedded SQLite, etcd) implements ``Store`` with identical
semantics, checked by one contract suite (tests/store/test_contract.py):

- One cluster-wide revision counter, starting at 1 for the first write and
  increasing by exactly one per successful write (create, update or delete).
  Failed writes consume no revision.
- Each key carries ``create_revision`` (the revision that created it) and
  ``mod_revision`` (the revision of its last write). ``mod_revision`` is what
  the API exposes as resourceVersion.
- Writes are compare-and-swap: ``create`` fails if the key exists, ``update``
  and ``delete`` fail unless ``expected_revision`` equals the key's
  ``mod_revision`` (``delete`` may skip the check).
- ``watch(prefix, start_revision=R)`` yields every write to keys under
  ``prefix`` with revision >= R, in revision order, no gaps, no duplicates,
  each with the key's previous value. R older than the compacted revision
  raises ``CompactedError`` (before or during iteration).
- ``compact(R)`` discards history before R; the latest value of every key is
  kept.

Keys and prefixes are plain strings ("/registry/pods/default/web"); values are
opaque bytes. Stores know nothing of the API above them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    # Set by a layer that transforms values (control/store/encryption.py) when
    # this value was stored in a form it would not write today (an older key):
    # an update that changes nothing must still rewrite it.
    stale: bool = field(default=False, compare=False)


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """One write, as seen by a watcher.

    For PUT, ``kv`` is the new value and ``prev`` the value it replaced (None
    on create). For DELETE, ``kv`` has the deleted key's last value with
    ``mod_revision`` set to the deletion's revision, and ``prev`` is that same
    last value as it was stored (its own mod_revision).
    """

    type: EventType
    kv: KeyValue
    prev: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class StoreError(Exception):
    """Base class of store errors."""


class KeyExistsError(StoreError):
    """create() of a key that exists."""


class KeyNotFoundError(StoreError):
    """update() or delete() of a key that does not exist."""


class RevisionConflictError(StoreError):
    """update() or delete() whose expected_revision is not the key's mod_revision."""

    def __init__(self, key: str, *, expected: int, actual: int) -> None:
        super().__init__(f"{key}: expected revision {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StoreError):
    """A read or watch asked for history that compaction discarded."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (oldest kept revision is {compacted})")
        self.requested = requested
        self.compacted = compacted


class StoreUnavailableError(StoreError):
    """The backend cannot be reached."""


class Store(Protocol):
    """The contract every storage backend implements. All methods are coroutines
    except ``watch``, which returns an async iterator; all are safe to call
    concurrently from one event loop."""

    async def get(self, key: str) -> KeyValue | None:
        """The key's current value, or None."""

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every live key under prefix, sorted by key, and the store revision
        the list is consistent with."""

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Write a new key. Raises KeyExistsError."""

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        """Replace a key's value if its mod_revision is expected_revision.
        Raises KeyNotFoundError or RevisionConflictError."""

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        """Remove a key, returning its last value with mod_revision set to the
        deletion's revision. Raises KeyNotFoundError or RevisionConflictError."""

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        """Stream writes under prefix from start_revision on (see module doc).
        Closing the iterator (aclose) ends the watch."""

    async def current_revision(self) -> int:
        """The revision of the latest write (0 for an empty store)."""

    async def compacted_revision(self) -> int:
        """The oldest revision still watchable (history before it is gone)."""

    async def compact(self, revision: int) -> None:
        """Discard history before revision."""

    async def close(self) -> None:
        """Release connections and background tasks."""
