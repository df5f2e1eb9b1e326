"""Storage backends behind one contract (see ``control.store.base``).

``open_store(url)`` picks the backend by URL scheme, as k3s' kine does:
``sqlite:///path/state.db`` (the embedded default) or
``etcd://host:2379[,host2:2379,...]`` (over TLS when given ``etcd_tls``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from control.store.etcd import EtcdTLS

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


async def open_store(url: str, *, etcd_tls: EtcdTLS | None = None) -> Store:
    """Open the backend that url names; etcd_tls: TLS to an etcd store's members."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"store URL {url!r} has no scheme; use sqlite:///PATH or etcd://HOST:PORT")
    if scheme == "sqlite":
        from control.store.sqlite import SQLiteStore

        return await SQLiteStore.open(rest)
    if scheme == "etcd":
        from control.store.etcd import EtcdStore

        return await EtcdStore.open(rest.rstrip("/").split(","), tls=etcd_tls)
    raise ValueError(f"unknown store scheme {scheme!r} in {url!r}; use sqlite:// or etcd://")
