"""The Store contract (control/store/base.py), run against every backend.

Each test runs once on SQLite, once on SQLite through the encryption layer
(every value encrypted), and once on a real etcd. Covered: create, get,
list, update and delete with their compare-and-swap errors (KeyExists,
KeyNotFound, RevisionConflict); revisions (exactly +1 per successful write,
nothing for a failed one, also inside concurrent batches); list order, prefix
scoping and revision; watch (history then live events, in order, with
previous values, prefix-scoped, delete events carrying the last value,
resumption after disconnects with no gaps or duplicates); compaction
(CompactedError, latest values kept); and concurrent read-modify-write.

Revisions are only compared relative to ``current_revision()`` read first: a
fresh etcd starts at revision 1, SQLite at 0, and the etcd is shared by the
session. Tests keep to a unique key prefix each.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import AsyncIterator

import pytest

from control.store import (
    CompactedError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionConflictError,
    Store,
    StoreEvent,
    open_store,
)
from control.store.encryption import AESGCMKey, AESGCMProvider, EncryptedStore, Transformer


@pytest.fixture(params=["sqlite", "sqlite-encrypted", pytest.param("etcd", marks=pytest.mark.etcd)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param.startswith("sqlite"):
        return f"sqlite://{tmp_path}/state.db"
    return f"etcd://{request.getfixturevalue('etcd_endpoint')}"


@pytest.fixture
async def store(store_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    if request.node.callspec.params["store_url"] == "sqlite-encrypted":
        # The encryption layer (control/store/encryption.py) keeps the contract, every key encrypted.
        key = AESGCMKey("contract", bytes(range(32)))
        opened = EncryptedStore(opened, {"/": Transformer([AESGCMProvider([key])])})
    yield opened
    await opened.close()


@pytest.fixture
def prefix() -> str:
    return f"/contract/{uuid.uuid4().hex}/"


async def take(events: AsyncIterator[StoreEvent], count: int, *, timeout: float = 5.0) -> list[StoreEvent]:
    async with asyncio.timeout(timeout):
        return [await anext(events) for _ in range(count)]


def summary(event: StoreEvent) -> tuple[EventType, str, bytes, int, bytes | None]:
    return event.type, event.kv.key, event.kv.value, event.revision, event.prev.value if event.prev else None


# Writes and reads.


async def test_create_stores_value_at_a_new_revision(store: Store, prefix: str) -> None:
    """create writes the key; its create and mod revision are the write's revision."""
    before = await store.current_revision()
    created = await store.create(prefix + "a", b"1")
    assert created == KeyValue(prefix + "a", b"1", before + 1, before + 1)
    assert await store.get(prefix + "a") == created


async def test_get_of_a_missing_key_returns_none(store: Store, prefix: str) -> None:
    """get of a key never written returns None."""
    assert await store.get(prefix + "missing") is None


async def test_values_are_opaque_bytes(store: Store, prefix: str) -> None:
    """Any bytes round-trip unchanged, including empty and non-UTF-8 values."""
    for name, value in [("empty", b""), ("binary", bytes(range(256))), ("nul", b"\x00a\x00")]:
        await store.create(prefix + name, value)
        fetched = await store.get(prefix + name)
        assert fetched is not None and fetched.value == value


async def test_create_of_an_existing_key_raises_key_exists(store: Store, prefix: str) -> None:
    """create fails with KeyExistsError when the key exists, and keeps the old value."""
    original = await store.create(prefix + "a", b"1")
    with pytest.raises(KeyExistsError):
        await store.create(prefix + "a", b"2")
    assert await store.get(prefix + "a") == original


async def test_create_after_delete_starts_a_new_lifetime(store: Store, prefix: str) -> None:
    """A key created again after deletion gets a new create_revision."""
    first = await store.create(prefix + "a", b"1")
    await store.delete(prefix + "a")
    second = await store.create(prefix + "a", b"2")
    assert second.create_revision > first.create_revision
    assert second.create_revision == second.mod_revision


async def test_update_replaces_value_and_advances_mod_revision(store: Store, prefix: str) -> None:
    """update with the current mod_revision writes; create_revision stays."""
    created = await store.create(prefix + "a", b"1")
    updated = await store.update(prefix + "a", b"2", expected_revision=created.mod_revision)
    assert updated == KeyValue(prefix + "a", b"2", created.create_revision, created.mod_revision + 1)
    assert await store.get(prefix + "a") == updated


async def test_update_of_a_missing_key_raises_key_not_found(store: Store, prefix: str) -> None:
    """update of a key that does not exist fails (even expecting revision 0) and creates nothing."""
    for expected in (0, 1, 10**6):
        with pytest.raises(KeyNotFoundError):
            await store.update(prefix + "missing", b"1", expected_revision=expected)
    assert await store.get(prefix + "missing") is None


async def test_update_with_a_stale_revision_raises_revision_conflict(store: Store, prefix: str) -> None:
    """update expecting an older mod_revision fails, naming both revisions."""
    created = await store.create(prefix + "a", b"1")
    updated = await store.update(prefix + "a", b"2", expected_revision=created.mod_revision)
    with pytest.raises(RevisionConflictError) as excinfo:
        await store.update(prefix + "a", b"3", expected_revision=created.mod_revision)
    assert (excinfo.value.expected, excinfo.value.actual) == (created.mod_revision, updated.mod_revision)
    assert await store.get(prefix + "a") == updated


async def test_delete_returns_the_last_value_at_the_deletion_revision(store: Store, prefix: str) -> None:
    """delete removes the key and returns its last value with mod_revision = the deletion's revision."""
    created = await store.create(prefix + "a", b"1")
    deleted = await store.delete(prefix + "a", expected_revision=created.mod_revision)
    assert deleted == KeyValue(prefix + "a", b"1", created.create_revision, created.mod_revision + 1)
    assert await store.get(prefix + "a") is None


async def test_delete_without_expected_revision_is_unconditional(store: Store, prefix: str) -> None:
    """delete with no expected_revision deletes whatever version is there."""
    created = await store.create(prefix + "a", b"1")
    await store.update(prefix + "a", b"2", expected_revision=created.mod_revision)
    deleted = await store.delete(prefix + "a")
    assert deleted.value == b"2"
    assert await store.get(prefix + "a") is None


async def test_delete_of_a_missing_key_raises_key_not_found(store: Store, prefix: str) -> None:
    """delete of a key that does not exist fails, with or without expected_revision."""
    with pytest.raises(KeyNotFoundError):
        await store.delete(prefix + "missing")
    with pytest.raises(KeyNotFoundError):
        await store.delete(prefix + "missing", expected_revision=0)


async def test_delete_with_a_stale_revision_raises_revision_conflict(store: Store, prefix: str) -> None:
    """delete expecting an older mod_revision fails and keeps the key."""
    created = await store.create(prefix + "a", b"1")
    updated = await store.update(prefix + "a", b"2", expected_revision=created.mod_revision)
    with pytest.raises(RevisionConflictError):
        await store.delete(prefix + "a", expected_revision=created.mod_revision)
    assert await store.get(prefix + "a") == updated


# Revisions.


async def test_each_successful_write_advances_the_revision_by_exactly_one(store: Store, prefix: str) -> None:
    """create, update and delete each take the next revision."""
    before = await store.current_revision()
    created = await store.create(prefix + "a", b"1")
    updated = await store.update(prefix + "a", b"2", expected_revision=created.mod_revision)
    other = await store.create(prefix + "b", b"1")
    deleted = await store.delete(prefix + "a")
    revisions = [kv.mod_revision for kv in (created, updated, other, deleted)]
    assert revisions == [before + 1, before + 2, before + 3, before + 4]
    assert await store.current_revision() == before + 4


async def test_failed_writes_consume_no_revision(store: Store, prefix: str) -> None:
    """Writes that fail their precondition leave the revision where it was."""
    created = await store.create(prefix + "a", b"1")
    before = await store.current_revision()
    failing = [
        store.create(prefix + "a", b"x"),
        store.update(prefix + "a", b"x", expected_revision=created.mod_revision - 1),
        store.update(prefix + "missing", b"x", expected_revision=1),
        store.delete(prefix + "a", expected_revision=created.mod_revision + 5),
        store.delete(prefix + "missing"),
    ]
    for write in failing:
        with pytest.raises((KeyExistsError, KeyNotFoundError, RevisionConflictError)):
            await write
    assert await store.current_revision() == before
    assert (await store.create(prefix + "b", b"1")).mod_revision == before + 1


async def test_concurrent_writes_to_one_key_succeed_once_and_take_one_revision(store: Store, prefix: str) -> None:
    """Of ten concurrent creates of one key exactly one wins; the others consume no revision."""
    before = await store.current_revision()
    results = await asyncio.gather(
        *(store.create(prefix + "a", b"%d" % i) for i in range(10)),
        store.create(prefix + "b", b"1"),
        return_exceptions=True,
    )
    winners = [r for r in results[:10] if isinstance(r, KeyValue)]
    assert len(winners) == 1
    assert all(isinstance(r, KeyExistsError) for r in results[:10] if not isinstance(r, KeyValue))
    assert isinstance(results[10], KeyValue)
    assert sorted([winners[0].mod_revision, results[10].mod_revision]) == [before + 1, before + 2]
    assert await store.current_revision() == before + 2


# Lists.


async def test_list_is_sorted_by_key_and_scoped_to_the_prefix(store: Store, prefix: str) -> None:
    """list returns exactly the keys under the prefix, sorted; '/a/b2' is not under '/a/b/'."""
    for name in ["a/b/1", "a/b2", "a/b/0", "a/b", "a/a", "a/b/x/y", "a/c/0"]:
        await store.create(prefix + name, name.encode())
    items, _ = await store.list(prefix + "a/b/")
    assert [kv.key for kv in items] == [prefix + "a/b/0", prefix + "a/b/1", prefix + "a/b/x/y"]
    assert [kv.value for kv in items] == [b"a/b/0", b"a/b/1", b"a/b/x/y"]


async def test_list_returns_the_current_revision(store: Store, prefix: str) -> None:
    """list's revision is the store's revision, also when nothing under the prefix changed."""
    await store.create(prefix + "x/a", b"1")
    last = await store.create(prefix + "y/a", b"1")
    items, revision = await store.list(prefix + "x/")
    assert len(items) == 1
    assert revision == last.mod_revision == await store.current_revision()


async def test_list_of_an_empty_prefix_returns_nothing(store: Store, prefix: str) -> None:
    """list of a prefix with no keys is empty."""
    items, _ = await store.list(prefix + "nothing/")
    assert items == []


# Watch.


async def test_watch_replays_history_then_streams_live_writes_in_order(store: Store, prefix: str) -> None:
    """A watch from an old revision yields every write since then, then new writes, in revision order."""
    a1 = await store.create(prefix + "a", b"1")
    a2 = await store.update(prefix + "a", b"2", expected_revision=a1.mod_revision)
    b1 = await store.create(prefix + "b", b"1")
    events = store.watch(prefix, start_revision=a1.mod_revision)
    try:
        history = await take(events, 3)
        a3 = await store.update(prefix + "a", b"3", expected_revision=a2.mod_revision)
        live = await take(events, 1)
    finally:
        await events.aclose()
    assert [summary(e) for e in history + live] == [
        (EventType.PUT, prefix + "a", b"1", a1.mod_revision, None),
        (EventType.PUT, prefix + "a", b"2", a2.mod_revision, b"1"),
        (EventType.PUT, prefix + "b", b"1", b1.mod_revision, None),
        (EventType.PUT, prefix + "a", b"3", a3.mod_revision, b"2"),
    ]


async def test_watch_events_carry_the_previous_value(store: Store, prefix: str) -> None:
    """A PUT event's prev is the value it replaced (None on create), with its own revisions."""
    a1 = await store.create(prefix + "a", b"1")
    a2 = await store.update(prefix + "a", b"2", expected_revision=a1.mod_revision)
    events = store.watch(prefix, start_revision=a1.mod_revision)
    try:
        created, updated = await take(events, 2)
    finally:
        await events.aclose()
    assert created.prev is None
    assert created.kv == a1
    assert updated.kv == a2
    assert updated.prev == a1


async def test_delete_event_carries_the_last_value(store: Store, prefix: str) -> None:
    """A DELETE event's kv is the last value at the deletion's revision; prev is that value as stored."""
    a1 = await store.create(prefix + "a", b"1")
    a2 = await store.update(prefix + "a", b"2", expected_revision=a1.mod_revision)
    events = store.watch(prefix, start_revision=a2.mod_revision + 1)
    try:
        deleted = await store.delete(prefix + "a")
        (event,) = await take(events, 1)
    finally:
        await events.aclose()
    assert event.type is EventType.DELETE
    assert event.kv == KeyValue(prefix + "a", b"2", a1.create_revision, deleted.mod_revision)
    assert event.prev == a2


async def test_watch_from_the_next_revision_sees_only_new_writes(store: Store, prefix: str) -> None:
    """Watching from current_revision() + 1 (list, then watch) yields nothing old."""
    await store.create(prefix + "old", b"1")
    events = store.watch(prefix, start_revision=await store.current_revision() + 1)
    try:
        new = await store.create(prefix + "new", b"1")
        (event,) = await take(events, 1)
    finally:
        await events.aclose()
    assert event.kv == new


async def test_watch_of_a_prefix_ignores_other_prefixes(store: Store, prefix: str) -> None:
    """Writes outside the watched prefix (including '/a2' beside '/a/') never reach the watcher."""
    start = await store.current_revision() + 1
    events = store.watch(prefix + "a/", start_revision=start)
    try:
        await store.create(prefix + "a2", b"x")
        await store.create(prefix + "b/1", b"x")
        await store.create(prefix + "b/2", b"x")
        mine = await store.create(prefix + "a/1", b"x")
        (event,) = await take(events, 1)
    finally:
        await events.aclose()
    assert event.kv == mine


async def test_watches_can_be_closed_and_reopened(store: Store, prefix: str) -> None:
    """Closing a watch (aclose) ends it; a new watch on the same prefix works."""
    first = await store.create(prefix + "a", b"1")
    for _ in range(3):
        events = store.watch(prefix, start_revision=first.mod_revision)
        (event,) = await take(events, 1)
        await events.aclose()
        assert event.kv == first


async def test_resumed_watches_see_exactly_the_history_despite_disconnects(store: Store, prefix: str) -> None:
    """A watcher that disconnects at random while writes happen, re-watching
    from its last revision + 1, sees every write once, in order."""
    rng = random.Random(1234)
    start = await store.current_revision() + 1
    total = 300
    written: list[tuple[EventType, str, bytes, int]] = []

    async def write() -> None:
        live: dict[str, int] = {}
        for n in range(total):
            key = f"{prefix}k{rng.randrange(8)}"
            if key not in live:
                kv, kind = await store.create(key, b"%d" % n), EventType.PUT
            elif rng.random() < 0.3:
                kv, kind = await store.delete(key, expected_revision=live.pop(key)), EventType.DELETE
            else:
                kv, kind = await store.update(key, b"%d" % n, expected_revision=live[key]), EventType.PUT
            if kind is EventType.PUT:
                live[key] = kv.mod_revision
            written.append((kind, kv.key, kv.value, kv.mod_revision))
            if rng.random() < 0.1:
                await asyncio.sleep(0.001)

    async def watch() -> list[tuple[EventType, str, bytes, int]]:
        seen: list[tuple[EventType, str, bytes, int]] = []
        next_revision = start
        while len(seen) < total:
            budget = rng.randint(1, 25)
            events = store.watch(prefix, start_revision=next_revision)
            try:
                async for event in events:
                    seen.append((event.type, event.kv.key, event.kv.value, event.revision))
                    next_revision = event.revision + 1
                    budget -= 1
                    if budget == 0 or len(seen) >= total:
                        break
            finally:
                await events.aclose()
        return seen

    async with asyncio.timeout(30):
        _, seen = await asyncio.gather(write(), watch())
    assert seen == written


async def test_concurrent_read_modify_write_never_loses_an_update(store: Store, prefix: str) -> None:
    """20 tasks incrementing one counter with get + update(expected_revision), retrying on
    conflict: the final value equals the number of successful updates."""
    key = prefix + "counter"
    await store.create(key, b"0")
    successes = 0

    async def increment(times: int) -> None:
        nonlocal successes
        for _ in range(times):
            while True:
                current = await store.get(key)
                assert current is not None
                try:
                    await store.update(key, b"%d" % (int(current.value) + 1), expected_revision=current.mod_revision)
                except RevisionConflictError:
                    continue
                successes += 1
                break

    await asyncio.gather(*(increment(5) for _ in range(20)))
    final = await store.get(key)
    assert final is not None
    assert int(final.value) == successes == 100


# Compaction.


async def test_watch_from_a_compacted_revision_raises_compacted_error(store: Store, prefix: str) -> None:
    """After compact(R), a watch from below R raises CompactedError naming R."""
    first = await store.create(prefix + "a", b"1")
    await store.update(prefix + "a", b"2", expected_revision=first.mod_revision)
    last = await store.create(prefix + "b", b"1")
    await store.compact(last.mod_revision)
    events = store.watch(prefix, start_revision=first.mod_revision)
    with pytest.raises(CompactedError) as excinfo:
        await take(events, 1)
    assert excinfo.value.compacted == last.mod_revision
    assert excinfo.value.requested == first.mod_revision


async def test_compact_keeps_the_latest_values(store: Store, prefix: str) -> None:
    """Compaction discards history only: every live key keeps its latest value; deleted keys stay gone."""
    a1 = await store.create(prefix + "a", b"1")
    a2 = await store.update(prefix + "a", b"2", expected_revision=a1.mod_revision)
    b1 = await store.create(prefix + "b", b"1")
    await store.delete(prefix + "b", expected_revision=b1.mod_revision)
    c1 = await store.create(prefix + "c", b"1")
    await store.compact(await store.current_revision())
    items, _ = await store.list(prefix)
    assert items == [a2, c1]
    assert await store.get(prefix + "a") == a2
    assert await store.get(prefix + "b") is None


async def test_compacted_revision_reports_the_compaction(store: Store, prefix: str) -> None:
    """compacted_revision() is R after compact(R); compacting lower again changes nothing."""
    await store.create(prefix + "a", b"1")
    target = (await store.create(prefix + "b", b"1")).mod_revision
    await store.create(prefix + "c", b"1")
    await store.compact(target)
    assert await store.compacted_revision() == target
    await store.compact(target - 1)
    assert await store.compacted_revision() == target


async def test_watch_from_the_compacted_revision_keeps_previous_values(store: Store, prefix: str) -> None:
    """A watch from exactly the compacted revision works, and its events still carry prev values."""
    a1 = await store.create(prefix + "a", b"1")
    a2 = await store.update(prefix + "a", b"2", expected_revision=a1.mod_revision)
    b1 = await store.create(prefix + "b", b"1")
    await store.compact(b1.mod_revision)
    a3 = await store.update(prefix + "a", b"3", expected_revision=a2.mod_revision)
    events = store.watch(prefix, start_revision=b1.mod_revision)
    try:
        first, second = await take(events, 2)
    finally:
        await events.aclose()
    assert (first.kv, first.prev) == (b1, None)
    assert (second.kv, second.prev) == (a3, a2)


async def test_compact_beyond_the_current_revision_is_refused(store: Store, prefix: str) -> None:
    """compact(R) with R above the current revision raises ValueError."""
    await store.create(prefix + "a", b"1")
    with pytest.raises(ValueError):
        await store.compact(await store.current_revision() + 10)
