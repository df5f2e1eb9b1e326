"""What EtcdStore promises beyond the shared contract.

Connection handling against a real etcd: skipping unreachable endpoints,
failing over when the endpoint in use dies (for reads, writes and watches),
StoreUnavailableError when nothing answers; etcd's own revision numbering;
and compacted_revision() found from etcd itself, not from our own memory.

An endpoint that dies is simulated with a TCP proxy in front of the real etcd:
closing the proxy drops its connections and refuses new ones; stalling it holds
its connections open but passes nothing on (a member that stopped answering).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import AsyncIterator

import pytest

from control.store import StoreUnavailableError
from control.store.etcd import EtcdStore, parse_endpoint
from tests.support.components import require_binary
from tests.support.etcd import running_etcd

pytestmark = pytest.mark.etcd


class TcpProxy:
    """Forwards a loopback port to an endpoint until closed."""

    def __init__(self, target: str) -> None:
        self._target = parse_endpoint(target)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def stall(self) -> None:
        """Pass nothing on from now on, in either direction, keeping the connections open."""
        self._flowing.clear()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            _pipe(client_reader, upstream_writer, self._flowing), _pipe(upstream_reader, client_writer, self._flowing),
            return_exceptions=True,
        )

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._flowing.set()  # stalled pipes go on, to find their connections closed
        await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
    try:
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


def unused_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def prefix() -> str:
    return f"/etcd/{uuid.uuid4().hex}/"


@pytest.fixture
async def proxied_store(etcd_endpoint: str) -> AsyncIterator[tuple[EtcdStore, TcpProxy]]:
    """A store whose first endpoint is a proxy to etcd and whose second is etcd itself."""
    proxy = TcpProxy(etcd_endpoint)
    store = await EtcdStore.open([await proxy.start(), etcd_endpoint], timeout=2)
    yield store, proxy
    await store.close()


async def test_open_skips_an_unreachable_endpoint(etcd_endpoint: str, prefix: str) -> None:
    """With the first endpoint down, open connects to the next one."""
    store = await EtcdStore.open([unused_endpoint(), etcd_endpoint], timeout=2)
    try:
        assert store.endpoint == etcd_endpoint
        assert (await store.create(prefix + "a", b"1")).value == b"1"
    finally:
        await store.close()


async def test_open_raises_store_unavailable_when_no_endpoint_answers() -> None:
    """With every endpoint down, open fails fast with StoreUnavailableError."""
    async with asyncio.timeout(5):
        with pytest.raises(StoreUnavailableError):
            await EtcdStore.open([unused_endpoint(), unused_endpoint()], timeout=2)


async def test_reads_and_writes_fail_over_when_the_endpoint_in_use_dies(
    proxied_store: tuple[EtcdStore, TcpProxy], etcd_endpoint: str, prefix: str
) -> None:
    """After the endpoint in use dies, the next calls go to the next endpoint."""
    store, proxy = proxied_store
    created = await store.create(prefix + "a", b"1")
    assert store.endpoint != etcd_endpoint
    await proxy.close()
    assert await store.get(prefix + "a") == created
    assert store.endpoint == etcd_endpoint
    await store.update(prefix + "a", b"2", expected_revision=created.mod_revision)


async def test_a_write_racing_its_endpoints_death_is_not_retried_but_the_next_write_fails_over(
    proxied_store: tuple[EtcdStore, TcpProxy], etcd_endpoint: str, prefix: str
) -> None:
    """A write caught by its endpoint dying either went through or raises StoreUnavailableError
    (it may have been applied, so it is not resent); the write after it uses the next endpoint."""
    store, proxy = proxied_store
    await store.create(prefix + "a", b"1")
    await proxy.close()
    try:
        await store.create(prefix + "b", b"1")
    except StoreUnavailableError:
        pass
    assert (await store.create(prefix + "c", b"1")).value == b"1"
    assert store.endpoint == etcd_endpoint


async def test_a_watch_whose_endpoint_dies_ends_with_store_unavailable_and_can_resume(
    proxied_store: tuple[EtcdStore, TcpProxy], prefix: str
) -> None:
    """A broken watch raises StoreUnavailableError; re-watching from the last revision + 1 misses nothing."""
    store, proxy = proxied_store
    first = await store.create(prefix + "a", b"1")
    events = store.watch(prefix, start_revision=first.mod_revision)
    assert (await anext(events)).kv == first
    await proxy.close()
    with pytest.raises(StoreUnavailableError):
        async with asyncio.timeout(5):
            await anext(events)
    second = await store.create(prefix + "b", b"1")
    resumed = store.watch(prefix, start_revision=first.mod_revision + 1)
    try:
        async with asyncio.timeout(5):
            assert (await anext(resumed)).kv == second
    finally:
        await resumed.aclose()


async def test_a_call_that_fails_over_does_not_cut_off_the_calls_still_running_on_its_endpoint(
    proxied_store: tuple[EtcdStore, TcpProxy], etcd_endpoint: str, prefix: str
) -> None:
    """When one call gives up on an endpoint (here: past its deadline on a member that stopped
    answering), the calls still waiting on that endpoint are not cancelled under their callers
    (gRPC cancels the calls of a channel that is closed, and callers would take that
    CancelledError as their own cancellation): each ends by itself and, being a read, is
    answered by the next endpoint."""
    store, proxy = proxied_store
    created = await store.create(prefix + "a", b"1")
    proxy.stall()
    first = asyncio.create_task(store.get(prefix + "a"))
    await asyncio.sleep(0.3)  # a later deadline than the first read's
    second = asyncio.create_task(store.get(prefix + "a"))
    async with asyncio.timeout(10):
        assert await first == created
        assert await second == created
    assert store.endpoint == etcd_endpoint


async def test_compacted_revision_is_read_from_etcd_not_remembered(etcd_endpoint: str, prefix: str) -> None:
    """A store that did not compact still reports a compaction made by another client."""
    compacting = await EtcdStore.open([etcd_endpoint])
    observing = await EtcdStore.open([etcd_endpoint])
    try:
        target = (await compacting.create(prefix + "a", b"1")).mod_revision
        await compacting.create(prefix + "b", b"1")
        await compacting.compact(target)
        assert await observing.compacted_revision() == target
    finally:
        await compacting.close()
        await observing.close()


async def test_a_fresh_etcd_starts_at_revision_one() -> None:
    """etcd's revision numbering: 1 when empty (SQLite says 0), 2 after the first write."""
    binary = require_binary("etcd", package="etcd-server")
    with running_etcd(binary=binary) as cluster:
        store = await EtcdStore.open(cluster.endpoints)
        try:
            assert await store.current_revision() == 1
            assert await store.compacted_revision() == 1
            assert (await store.create("/a", b"1")).mod_revision == 2
        finally:
            await store.close()


def test_parse_endpoint_accepts_the_usual_forms() -> None:
    """host:port, http://host:port, a bare host (port 2379) and bracketed IPv6."""
    assert parse_endpoint("10.0.0.1:2379") == ("10.0.0.1", 2379)
    assert parse_endpoint("http://etcd-0:32379/") == ("etcd-0", 32379)
    assert parse_endpoint("etcd-0") == ("etcd-0", 2379)
    assert parse_endpoint("[::1]:2379") == ("[::1]", 2379)
    with pytest.raises(ValueError):
        parse_endpoint("host:port")
