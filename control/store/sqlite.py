"""The embedded default store: one SQLite file, shaped like k3s' kine.

Tables:

- ``log``: one row per revision (``rev`` is the cluster revision). A write's
  row holds the key, whether it created or deleted the key, the key's
  ``create_rev``, ``prev_rev`` (the row it replaced, 0 for none) and the value
  (for a delete, the key's last value). Watch history is read from here.
- ``current``: the live value of every key, for fast gets and key-range lists.
- ``meta``: the compacted revision.

Writes use group commit. ``create``/``update``/``delete`` put an operation on
a queue and await its future. One writer task drains everything pending (up to
``MAX_BATCH`` operations), applies the batch in one transaction on a dedicated
thread with its own connection, commits once, then publishes the batch's events
to watchers in revision order and resolves each future. An operation whose
precondition fails gets its error, consumes no revision, and does not disturb
the rest of its batch. Revisions are assigned explicitly (last + 1) inside the
transaction.

Reads use a second connection on a second thread. WAL mode lets them run while
a batch is being written; a read issued after a write's future resolved sees
that write. ``synchronous=NORMAL`` keeps every committed batch across a
``kill -9`` of the process (not across a power cut, as in kine).

A watch subscribes to the live broadcast first, then replays history from the
log in pages, then drains live events, skipping revisions already replayed: no
gaps, no duplicates. A watcher that falls ``WATCH_BUFFER`` events behind is cut
off with ``WatcherTooSlowError`` rather than ever blocking the writer; it
re-watches from the last revision it saw plus one.

One process owns the file: ``open`` takes an exclusive ``flock`` on
``PATH.lock`` (the kernel drops it if the process dies).
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Literal, TypeVar

from control.store.base import (
    CompactedError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionConflictError,
    StoreError,
    StoreEvent,
    StoreUnavailableError,
)

MAX_BATCH = 256
WATCH_BUFFER = 10_000
HISTORY_PAGE = 1_000
COMPACT_CHUNK = 1_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    rev        INTEGER PRIMARY KEY,
    key        TEXT    NOT NULL,
    created    INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev   INTEGER NOT NULL,
    value      BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log (key, rev);
CREATE TABLE IF NOT EXISTS current (
    key        TEXT    PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL,
    value      BLOB    NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

T = TypeVar("T")


class WatcherTooSlowError(StoreError):
    """The watcher fell WATCH_BUFFER events behind and was cut off; re-watch
    from the last revision seen plus one."""


def prefix_range_end(prefix: str) -> str | None:
    """The smallest string above every string that starts with prefix, or None
    when there is no such bound (the empty prefix). SQLite compares TEXT as
    UTF-8 bytes, which orders like code points, so bumping the last character
    is enough."""
    stripped = prefix.rstrip(chr(0x10FFFF))
    if not stripped:
        return None
    bumped = ord(stripped[-1]) + 1
    if 0xD800 <= bumped <= 0xDFFF:  # surrogates cannot be encoded; skip them
        bumped = 0xE000
    return stripped[:-1] + chr(bumped)


def _key_range_sql(prefix: str, column: str) -> tuple[str, tuple[str, ...]]:
    end = prefix_range_end(prefix)
    if end is None:
        return f"{column} >= ?", (prefix,)
    return f"{column} >= ? AND {column} < ?", (prefix, end)


@dataclass(slots=True)
class _Write:
    kind: Literal["create", "update", "delete"]
    key: str
    value: bytes
    expected_revision: int | None
    future: asyncio.Future[KeyValue]


@dataclass(slots=True, eq=False)  # compared and hashed by identity
class _Subscription:
    """A watcher's buffer of live events, filled by the writer without ever
    waiting."""

    prefix: str
    events: collections.deque[StoreEvent] = field(default_factory=collections.deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False

    def offer(self, event: StoreEvent) -> None:
        if self.overflowed or self.closed or not event.kv.key.startswith(self.prefix):
            return
        if len(self.events) >= WATCH_BUFFER:
            self.overflowed = True
            self.events.clear()
        else:
            self.events.append(event)
        self.wakeup.set()

    def end(self) -> None:
        self.closed = True
        self.wakeup.set()

    async def next(self) -> StoreEvent | None:
        """The next live event; None once the store closed."""
        while not self.events:
            if self.overflowed:
                raise WatcherTooSlowError(f"watch of {self.prefix!r} fell {WATCH_BUFFER} events behind")
            if self.closed:
                return None
            self.wakeup.clear()
            await self.wakeup.wait()
        return self.events.popleft()


class SQLiteStore:
    """The Store contract on one SQLite file. Create with ``await SQLiteStore.open(path)``."""

    def __init__(self, path: str, *, lock_fd: int) -> None:
        self._path = path
        self._lock_fd = lock_fd
        self._write_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._read_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        # Each connection is created and used only on its own executor's thread.
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._subscriptions: set[_Subscription] = set()
        self._revision = 0
        self._compacted = 1
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        """Open (creating if needed) the database at path and its parent dirs.
        Raises StoreUnavailableError if another process has it open."""
        if not path or path == ":memory:":
            raise ValueError("SQLiteStore needs a file path, e.g. sqlite:///var/lib/sampan/state.db")
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StoreUnavailableError(f"{path} is in use by another process") from None
        store = cls(path, lock_fd=lock_fd)
        try:
            await store._start()
        except BaseException:
            await store.close()
            raise
        return store

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._revision, self._compacted = await loop.run_in_executor(self._write_executor, self._open_writer)
        await loop.run_in_executor(self._read_executor, self._open_reader)
        self._writer = asyncio.create_task(self._run_writer(), name=f"sqlite-writer {self._path}")

    def _open_writer(self) -> tuple[int, int]:
        conn = sqlite3.connect(self._path, isolation_level=None)
        self._write_conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        (revision,) = conn.execute("SELECT COALESCE(MAX(rev), 0) FROM log").fetchone()
        return revision, _read_compacted(conn)

    def _open_reader(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        self._read_conn = conn
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA query_only=1")

    # Reads.

    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise StoreUnavailableError("store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._read_executor, fn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"sqlite read failed: {exc}") from exc

    async def get(self, key: str) -> KeyValue | None:
        return await self._read(self._get_sync, key)

    def _get_sync(self, key: str) -> KeyValue | None:
        assert self._read_conn is not None
        row = self._read_conn.execute(
            "SELECT create_rev, mod_rev, value FROM current WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else KeyValue(key, row[2], row[0], row[1])

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        return await self._read(self._list_sync, prefix)

    def _list_sync(self, prefix: str) -> tuple[list[KeyValue], int]:
        conn = self._read_conn
        assert conn is not None
        where, params = _key_range_sql(prefix, "key")
        # One read transaction, so the revision matches the rows.
        conn.execute("BEGIN")
        try:
            (revision,) = conn.execute("SELECT COALESCE(MAX(rev), 0) FROM log").fetchone()
            rows = conn.execute(
                f"SELECT key, create_rev, mod_rev, value FROM current WHERE {where} ORDER BY key", params
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return [KeyValue(key, value, create_rev, mod_rev) for key, create_rev, mod_rev, value in rows], revision

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    # Writes.

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit("create", key, value, None)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        return await self._submit("update", key, value, expected_revision)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        return await self._submit("delete", key, b"", expected_revision)

    async def _submit(
        self, kind: Literal["create", "update", "delete"], key: str, value: bytes, expected: int | None
    ) -> KeyValue:
        if self._closed:
            raise StoreUnavailableError("store is closed")
        future: asyncio.Future[KeyValue] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(kind, key, bytes(value), expected, future))
        return await future

    async def _run_writer(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                op = self._queue.get_nowait()
                if op is None:
                    stopping = True
                    break
                batch.append(op)
            batch = [op for op in batch if not op.future.cancelled()]
            if not batch:
                continue
            try:
                outcomes, self._revision = await loop.run_in_executor(
                    self._write_executor, self._apply_batch, batch, self._revision
                )
            except Exception as exc:  # the whole batch rolled back; the writer lives on
                error = StoreUnavailableError(f"sqlite write failed: {exc!r}")
                for op in batch:
                    if not op.future.done():
                        op.future.set_exception(error)
                continue
            for outcome in outcomes:
                if isinstance(outcome, StoreEvent):
                    self._broadcast(outcome)
            for op, outcome in zip(batch, outcomes):
                if op.future.done():
                    continue
                if isinstance(outcome, StoreEvent):
                    op.future.set_result(outcome.kv)
                else:
                    op.future.set_exception(outcome)

    def _apply_batch(self, batch: list[_Write], revision: int) -> tuple[list[StoreEvent | StoreError], int]:
        """Apply a batch in one transaction (writer thread). Returns each
        operation's event or precondition error, and the new revision."""
        conn = self._write_conn
        assert conn is not None
        outcomes: list[StoreEvent | StoreError] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                row = conn.execute(
                    "SELECT create_rev, mod_rev, value FROM current WHERE key = ?", (op.key,)
                ).fetchone()
                prev = None if row is None else KeyValue(op.key, row[2], row[0], row[1])
                error = _precondition_error(op, prev)
                if error is not None:
                    outcomes.append(error)
                    continue
                revision += 1
                outcomes.append(_apply_write(conn, op, prev, revision))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes, revision

    # Watch.

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        return self._watch(prefix, start_revision)

    async def _watch(self, prefix: str, start_revision: int) -> AsyncIterator[StoreEvent]:
        if start_revision < 1:
            raise ValueError(f"start_revision must be >= 1, got {start_revision}")
        if self._closed:
            raise StoreUnavailableError("store is closed")
        subscription = _Subscription(prefix)
        # Subscribe before reading history: every write is then either in the
        # history we read or in the subscription (or both; we skip repeats).
        self._subscriptions.add(subscription)
        try:
            next_revision = start_revision
            while True:
                page = await self._read(self._history_page, prefix, next_revision)
                for event in page:
                    yield event
                if page:
                    next_revision = page[-1].revision + 1
                if len(page) < HISTORY_PAGE:
                    break
            while (event := await subscription.next()) is not None:
                if event.revision < next_revision:
                    continue
                yield event
                next_revision = event.revision + 1
        finally:
            self._subscriptions.discard(subscription)

    def _history_page(self, prefix: str, start_revision: int) -> list[StoreEvent]:
        conn = self._read_conn
        assert conn is not None
        where, params = _key_range_sql(prefix, "l.key")
        # Compaction records its revision before deleting rows, so reading both
        # in one transaction tells us whether this page can have holes.
        conn.execute("BEGIN")
        try:
            compacted = _read_compacted(conn)
            if start_revision < compacted:
                raise CompactedError(start_revision, compacted)
            rows = conn.execute(
                "SELECT l.rev, l.key, l.deleted, l.create_rev, l.value, p.rev, p.create_rev, p.value"
                " FROM log AS l LEFT JOIN log AS p ON p.rev = l.prev_rev"
                f" WHERE l.rev >= ? AND {where} ORDER BY l.rev LIMIT ?",
                (start_revision, *params, HISTORY_PAGE),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        events = []
        for rev, key, deleted, create_rev, value, prev_rev, prev_create_rev, prev_value in rows:
            prev = None if prev_rev is None else KeyValue(key, prev_value, prev_create_rev, prev_rev)
            kind = EventType.DELETE if deleted else EventType.PUT
            events.append(StoreEvent(kind, KeyValue(key, value, create_rev, rev), prev))
        return events

    def _broadcast(self, event: StoreEvent) -> None:
        for subscription in self._subscriptions:
            subscription.offer(event)

    # Compaction.

    async def compact(self, revision: int) -> None:
        """Discard history before revision, in chunks so writes interleave.
        Compacting at or below the compacted revision does nothing; beyond the
        current revision raises ValueError."""
        if self._closed:
            raise StoreUnavailableError("store is closed")
        if revision > self._revision:
            raise ValueError(f"cannot compact at {revision}: current revision is {self._revision}")
        if revision <= self._compacted:
            return
        loop = asyncio.get_running_loop()
        start = self._compacted
        # Watchers check the recorded revision, so record it before deleting.
        await loop.run_in_executor(self._write_executor, self._record_compacted, revision)
        self._compacted = revision
        for low in range(start, revision, COMPACT_CHUNK):
            high = min(low + COMPACT_CHUNK, revision)
            await loop.run_in_executor(self._write_executor, self._compact_chunk, low, high, revision)

    def _record_compacted(self, revision: int) -> None:
        assert self._write_conn is not None
        self._write_conn.execute(
            "INSERT INTO meta (name, value) VALUES ('compacted', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (revision,),
        )

    def _compact_chunk(self, low: int, high: int, compacted: int) -> None:
        """Delete rows in [low, high) that no watch from compacted can need:
        tombstones, and rows superseded by a later row below compacted. The
        last row below compacted of each live key stays: it is the key's value
        or the ``prev`` of its first event at or after compacted."""
        conn = self._write_conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "DELETE FROM log WHERE rev >= ? AND rev < ? AND (deleted = 1 OR EXISTS ("
                " SELECT 1 FROM log AS later"
                " WHERE later.key = log.key AND later.rev > log.rev AND later.rev < ?))",
                (low, high, compacted),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # Shutdown.

    async def close(self) -> None:
        """Finish queued writes, end every watch, close the database."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
        for subscription in self._subscriptions:
            subscription.end()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_executor, _close_connection, self._write_conn)
        await loop.run_in_executor(self._read_executor, _close_connection, self._read_conn)
        self._write_executor.shutdown()
        self._read_executor.shutdown()
        os.close(self._lock_fd)


def _precondition_error(op: _Write, prev: KeyValue | None) -> StoreError | None:
    if op.kind == "create":
        return KeyExistsError(op.key) if prev is not None else None
    if prev is None:
        return KeyNotFoundError(op.key)
    if op.expected_revision is not None and op.expected_revision != prev.mod_revision:
        return RevisionConflictError(op.key, expected=op.expected_revision, actual=prev.mod_revision)
    return None


def _apply_write(conn: sqlite3.Connection, op: _Write, prev: KeyValue | None, revision: int) -> StoreEvent:
    if op.kind == "create":
        conn.execute("INSERT INTO log VALUES (?, ?, 1, 0, ?, 0, ?)", (revision, op.key, revision, op.value))
        conn.execute("INSERT INTO current VALUES (?, ?, ?, ?)", (op.key, revision, revision, op.value))
        return StoreEvent(EventType.PUT, KeyValue(op.key, op.value, revision, revision), None)
    assert prev is not None
    if op.kind == "update":
        conn.execute(
            "INSERT INTO log VALUES (?, ?, 0, 0, ?, ?, ?)",
            (revision, op.key, prev.create_revision, prev.mod_revision, op.value),
        )
        conn.execute("UPDATE current SET mod_rev = ?, value = ? WHERE key = ?", (revision, op.value, op.key))
        return StoreEvent(EventType.PUT, KeyValue(op.key, op.value, prev.create_revision, revision), prev)
    conn.execute(
        "INSERT INTO log VALUES (?, ?, 0, 1, ?, ?, ?)",
        (revision, op.key, prev.create_revision, prev.mod_revision, prev.value),
    )
    conn.execute("DELETE FROM current WHERE key = ?", (op.key,))
    return StoreEvent(EventType.DELETE, KeyValue(op.key, prev.value, prev.create_revision, revision), prev)


def _read_compacted(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()
    return 1 if row is None else int(row[0])


def _close_connection(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        conn.close()
