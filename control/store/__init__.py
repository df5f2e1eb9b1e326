"""Storage backends behind one contract (see ``control.store.base``).

``open_store(url)`` picks the backend by URL scheme, as k3s' kine does:
``sqlite:///path/state.db`` (the embedded default) or
``etcd://host:2379[,host2:2379,...]``.
"""

from __future__ import annotations

from control.store.base import (
    CompactedError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionConflictError,
    Store,
    StoreError,
    StoreEvent,
    StoreUnavailableError,
)

__all__ = [
    "CompactedError",
    "EventType",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "RevisionConflictError",
    "Store",
    "StoreError",
    "StoreEvent",
    "StoreUnavailableError",
    "open_store",
]


async def open_store(url: str) -> Store:
    """Open the backend that url names."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"store URL {url!r} has no scheme; use sqlite:///PATH or etcd://HOST:PORT")
    if scheme == "sqlite":
        from control.store.sqlite import SQLiteStore

        return await SQLiteStore.open(rest)
    if scheme == "etcd":
        from control.store.etcd import EtcdStore

        return await EtcdStore.open(rest.rstrip("/").split(","))
    raise ValueError(f"unknown store scheme {scheme!r} in {url!r}; use sqlite:// or etcd://")
