"""What SQLiteStore promises beyond the shared contract.

Durability (close and reopen; ``kill -9`` of a process in the middle of
writing), the one-process-per-file lock, slow watchers being cut off instead
of blocking the writer, history replay across pages, compaction actually
shrinking the log, and shutdown ending watches.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from control.store import EventType, StoreUnavailableError
from control.store import sqlite as sqlite_store
from control.store.sqlite import SQLiteStore, WatcherTooSlowError, prefix_range_end

REPO_ROOT = Path(__file__).resolve().parents[2]

WRITER_SCRIPT = """
import asyncio, sys
from control.store.sqlite import SQLiteStore

async def main(path):
    store = await SQLiteStore.open(path)

    async def write(worker):
        for i in range(1_000_000):
            kv = await store.create(f"/killed/{worker}/{i}", b"v%d" % i)
            print(kv.key, kv.mod_revision, flush=True)

    await asyncio.gather(*(write(worker) for worker in range(8)))

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "nested" / "dir" / "state.db")


async def test_open_creates_parent_directories(db_path: str) -> None:
    """open makes the missing directories and the database file."""
    store = await SQLiteStore.open(db_path)
    await store.close()
    assert os.path.exists(db_path)


async def test_data_survives_close_and_reopen(db_path: str) -> None:
    """Values, revisions, history and the compacted revision all survive a reopen."""
    store = await SQLiteStore.open(db_path)
    a1 = await store.create("/a", b"1")
    a2 = await store.update("/a", b"2", expected_revision=a1.mod_revision)
    b1 = await store.create("/b", b"1")
    await store.compact(a2.mod_revision)
    deleted = await store.delete("/b")
    await store.close()

    store = await SQLiteStore.open(db_path)
    try:
        assert await store.list("/") == ([a2], deleted.mod_revision)
        assert await store.current_revision() == deleted.mod_revision
        assert await store.compacted_revision() == a2.mod_revision
        events = store.watch("/", start_revision=a2.mod_revision)
        history = [await anext(events) for _ in range(3)]
        await events.aclose()
        assert [e.revision for e in history] == [a2.mod_revision, b1.mod_revision, deleted.mod_revision]
        assert (await store.create("/c", b"1")).mod_revision == deleted.mod_revision + 1
    finally:
        await store.close()


async def test_committed_writes_survive_kill_9_of_the_writing_process(db_path: str) -> None:
    """Every write a process saw committed is there after that process is SIGKILLed mid-stream."""
    os.makedirs(os.path.dirname(db_path))
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, db_path],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    reported = []
    try:
        for line in writer.stdout:
            reported.append(line.split())
            if len(reported) == 2000:
                break
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == -signal.SIGKILL
    # Lines already in the pipe were printed after their write committed too.
    reported += [line.split() for line in rest.splitlines() if len(line.split()) == 2]

    store = await SQLiteStore.open(db_path)
    try:
        items, revision = await store.list("/killed/")
        stored = {kv.key: kv.mod_revision for kv in items}
        missing = [(key, rev) for key, rev in reported if stored.get(key) != int(rev)]
        assert missing == []
        assert revision == len(stored) >= len(reported)
        assert (await store.create("/after", b"1")).mod_revision == revision + 1
    finally:
        await store.close()


async def test_a_second_opener_of_the_same_file_is_refused(db_path: str) -> None:
    """Only one store may own a database file at a time; the lock goes with close."""
    store = await SQLiteStore.open(db_path)
    try:
        with pytest.raises(StoreUnavailableError):
            await SQLiteStore.open(db_path)
    finally:
        await store.close()
    reopened = await SQLiteStore.open(db_path)
    await reopened.close()


async def test_a_watcher_that_falls_too_far_behind_is_cut_off(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watcher more than WATCH_BUFFER events behind gets WatcherTooSlowError; writes never wait for it."""
    monkeypatch.setattr(sqlite_store, "WATCH_BUFFER", 5)
    store = await SQLiteStore.open(db_path)
    try:
        first = await store.create("/k/0", b"x")
        events = store.watch("/k/", start_revision=first.mod_revision)
        assert (await anext(events)).kv == first  # subscribed from here on
        async with asyncio.timeout(5):
            for i in range(1, 20):
                await store.create(f"/k/{i}", b"x")
        with pytest.raises(WatcherTooSlowError):
            await anext(events)
        resumed = store.watch("/k/", start_revision=first.mod_revision + 1)
        assert [(await anext(resumed)).kv.key for _ in range(19)] == [f"/k/{i}" for i in range(1, 20)]
        await resumed.aclose()
    finally:
        await store.close()


async def test_history_longer_than_a_page_replays_without_gaps(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History is read in pages; a replay across many pages has every revision once."""
    monkeypatch.setattr(sqlite_store, "HISTORY_PAGE", 7)
    store = await SQLiteStore.open(db_path)
    try:
        for i in range(40):
            await store.create(f"/p/{i}", b"x")
            await store.create(f"/other/{i}", b"x")
        events = store.watch("/p/", start_revision=1)
        keys = [(await anext(events)).kv.key for _ in range(40)]
        await events.aclose()
        assert keys == [f"/p/{i}" for i in range(40)]
    finally:
        await store.close()


async def test_compaction_removes_superseded_history(db_path: str) -> None:
    """compact(R) deletes superseded rows and tombstones below R, and keeps each live key's last row."""
    store = await SQLiteStore.open(db_path)
    try:
        kv = await store.create("/a", b"0")
        for i in range(1, 50):
            kv = await store.update("/a", b"%d" % i, expected_revision=kv.mod_revision)
        gone = await store.create("/b", b"1")
        await store.delete("/b", expected_revision=gone.mod_revision)
        last = await store.create("/c", b"1")
        await store.compact(last.mod_revision)
    finally:
        await store.close()
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT key, rev FROM log ORDER BY rev").fetchall()
    assert rows == [("/a", kv.mod_revision), ("/c", last.mod_revision)]


async def test_close_ends_open_watches_and_refuses_new_calls(db_path: str) -> None:
    """After close, open watches end and reads and writes raise StoreUnavailableError."""
    store = await SQLiteStore.open(db_path)
    events = store.watch("/", start_revision=1)
    pending = asyncio.ensure_future(anext(events))
    await store.create("/a", b"1")
    assert (await pending).type is EventType.PUT
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(StoreUnavailableError):
        await store.get("/a")
    with pytest.raises(StoreUnavailableError):
        await store.create("/b", b"1")


def test_prefix_range_end_bounds_exactly_the_prefix() -> None:
    """The range end is the prefix with its last character bumped; '' has none."""
    assert prefix_range_end("/a/b/") == "/a/b0"
    assert prefix_range_end("") is None
    assert prefix_range_end("a" + chr(0x10FFFF)) == "b"
    assert prefix_range_end("a" + chr(0xD7FF)) == "a" + chr(0xE000)
