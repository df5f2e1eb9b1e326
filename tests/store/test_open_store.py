"""Choosing a backend by URL (control.store.open_store), as kine does."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.store import open_store
from control.store.etcd import EtcdStore
from control.store.sqlite import SQLiteStore


async def test_sqlite_url_opens_an_sqlite_store_at_the_absolute_path(tmp_path: Path) -> None:
    """sqlite:///abs/path/state.db opens SQLiteStore on /abs/path/state.db."""
    path = tmp_path / "data" / "state.db"
    store = await open_store(f"sqlite://{path}")
    try:
        assert isinstance(store, SQLiteStore)
        assert path.exists()
    finally:
        await store.close()


@pytest.mark.etcd
async def test_etcd_url_opens_an_etcd_store_with_every_endpoint(etcd_endpoint: str) -> None:
    """etcd://host:port,host:port opens EtcdStore on those endpoints, in order."""
    store = await open_store(f"etcd://{etcd_endpoint},127.0.0.1:1/")
    try:
        assert isinstance(store, EtcdStore)
        assert store.endpoint == etcd_endpoint
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["mysql://localhost/sampan", "/var/lib/sampan/state.db", "state.db"])
async def test_unknown_or_missing_scheme_raises_value_error(url: str) -> None:
    """A URL that names no known backend is refused with ValueError."""
    with pytest.raises(ValueError):
        await open_store(url)
