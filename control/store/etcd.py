"""The etcd backend: the Store contract on etcd v3, through aetcd.

Mapping:

- ``create`` is one transaction: if ``create_revision(key) == 0`` put, else
  fail (KeyExistsError). ``update`` and ``delete``: if ``mod_revision(key)``
  is the expected one (and the key exists) write, else read the key in the
  failure branch, which tells KeyNotFoundError from RevisionConflictError in
  the same round trip. A written key's ``mod_revision`` is the transaction's
  header revision. aetcd's ``Client.transaction`` drops that header, so we
  call its KV stub with the messages from ``aetcd.rpc`` directly.
- ``watch`` is an etcd watch with ``prev_kv``. etcd's DELETE events carry an
  empty value; we rebuild the deleted key's last value from ``prev_kv``.
- Revisions are etcd's own. A fresh etcd is at revision 1 (not 0) and its
  first write makes 2; every later rule of the contract holds as written.
- ``compacted_revision``: etcd does not report it, and remembering our own
  compactions would miss those made by other processes or etcd's
  auto-compaction. So we ask etcd: a range read at revision r fails with
  "required revision has been compacted" exactly when r is below the
  compacted revision, and a binary search between the last answer and the
  current revision finds it in a few small reads.

Connections: endpoints are tried in order. Before each call the channel's
state is checked; a channel that is not ready gets one connection attempt, and
if that fails, or a call fails with UNAVAILABLE or DEADLINE_EXCEEDED, we move
to the next endpoint (on a fresh channel, which also skips gRPC's reconnect
backoff). The watches on the channel left behind end at once (the member may
have stopped receiving events; their callers watch again), but the channel is
closed only once the calls still running on it have ended: closing a gRPC
channel cancels its calls, and the cancellation would reach their callers as
``asyncio.CancelledError``, the signal that a task itself is being cancelled
(a watch cache taking it so would stop for good and leave its watchers waiting
for ever). A call cut off all the same (by ``close``) ends with
StoreUnavailableError. Reads are retried on the next endpoint. Writes are retried only
when gRPC reports it found no connection to send them on; a write cut off
mid-call may have been applied, so the caller gets StoreUnavailableError and
re-reads, as with etcd's own clients. A watch whose connection breaks ends with StoreUnavailableError;
the caller re-watches from the last revision it saw plus one.

TLS (``EtcdTLS``: the flags --etcd-cafile, --etcd-certfile, --etcd-keyfile, as
kube-apiserver has): the members' certificates are checked against the CA
file, and a client certificate and key, when given, authenticate us to
members started with --client-cert-auth. aetcd opens only plain-text
channels, so ``_TLSClient`` opens a secure one and sets up the same stubs.

Limits: a list is one range read (the channel accepts responses up to 2 GiB),
and aetcd buffers a slow watcher's events in memory rather than cutting it
off (etcd itself throttles slow watch streams).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Coroutine, Iterator

import aetcd
import grpc
from aetcd import rpc
from aetcd import watcher as aetcd_watcher

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

DEFAULT_PORT = 2379
_CONNECTION_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_CHANNEL_OPTIONS = {
    "grpc.max_receive_message_length": 2**31 - 1,
    # A member that dies without closing its connections (its host gone, a partition) would
    # leave watches waiting forever: pings find such a connection dead within seconds. etcd
    # accepts a ping every 5 s at most (--grpc-keepalive-min-time), and only while a call is
    # open on the connection: it answers pings on an idle one with GOAWAY "too_many_pings",
    # which fails the calls on it. An idle connection needs no pings (a call's deadline finds
    # a dead member).
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.http2.max_pings_without_data": 0,
}
_COMPACTED_MESSAGE = "required revision has been compacted"
_FUTURE_MESSAGE = "required revision is a future revision"
_NOT_CONNECTED_MESSAGE = "failed to connect to all addresses"  # gRPC core's message


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """'host:port', 'http(s)://host:port' or 'host' (port 2379) -> (host, port)."""
    address = endpoint.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
    host, sep, port = address.rpartition(":")
    if not sep or host.endswith(":") or (host.startswith("[") != host.endswith("]")):
        return address, DEFAULT_PORT  # no port, or a bare IPv6 address
    if not host or not port.isdigit():
        raise ValueError(f"bad etcd endpoint {endpoint!r}; expected HOST:PORT")
    return host, int(port)


@dataclass(frozen=True)
class EtcdTLS:
    """TLS to etcd: the CA file that signed the members' server certificates,
    and our client certificate and key (PEM files; both or neither)."""

    cafile: str
    certfile: str = ""
    keyfile: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials; a ValueError names the flag whose file cannot be read."""
        if bool(self.certfile) != bool(self.keyfile):
            raise ValueError("--etcd-certfile and --etcd-keyfile go together: give both or neither")
        files = {"--etcd-cafile": self.cafile, "--etcd-certfile": self.certfile, "--etcd-keyfile": self.keyfile}
        pems: dict[str, bytes | None] = {}
        for flag, path in files.items():
            try:
                pems[flag] = Path(path).read_bytes() if path else None
            except OSError as err:
                raise ValueError(f"{flag}: cannot read {path}: {err.strerror}") from None
        return grpc.ssl_channel_credentials(root_certificates=pems["--etcd-cafile"],
                                            private_key=pems["--etcd-keyfile"],
                                            certificate_chain=pems["--etcd-certfile"])


class _TLSClient(aetcd.Client):
    """An aetcd client on a TLS channel (aetcd itself opens only plain-text ones)."""

    def __init__(self, *, credentials: grpc.ChannelCredentials, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        self.channel = grpc.aio.secure_channel(f"{self._host}:{self._port}", self._credentials,
                                               options=list(self._options.items()))
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd_watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                              metadata=self.metadata)
        self._connected.set()


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range end for a prefix; b'\\0' (no upper bound) for b''."""
    return aetcd.utils.prefix_range_end(prefix) if prefix else b"\0"


class EtcdStore:
    """The Store contract on an etcd v3 cluster. Create with
    ``await EtcdStore.open(["host:2379", ...])``."""

    def __init__(self, endpoints: list[str], *, timeout: float, tls: EtcdTLS | None = None) -> None:
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self._endpoints = [parse_endpoint(e) for e in endpoints]
        self._credentials = tls.credentials() if tls is not None else None
        self._timeout = timeout
        self._index = 0
        self._client: aetcd.Client | None = None
        self._connect_lock = asyncio.Lock()
        # The KV calls running on each client, and the dropped clients that wait for theirs
        # to end before they are closed.
        self._calls: Counter[aetcd.Client] = Counter()
        self._retired: set[aetcd.Client] = set()
        self._compacted_floor = 1
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    async def open(cls, endpoints: list[str], *, timeout: float = 5.0, tls: EtcdTLS | None = None) -> EtcdStore:
        """Connect to the first reachable endpoint. Raises StoreUnavailableError
        if none answers within timeout each."""
        store = cls(endpoints, timeout=timeout, tls=tls)
        await store._connected_client()
        return store

    @property
    def endpoint(self) -> str:
        """The endpoint in use (or to be tried next)."""
        host, port = self._endpoints[self._index]
        return f"{host}:{port}"

    # Connections.

    async def _connected_client(self) -> aetcd.Client:
        if self._closed:
            raise StoreUnavailableError("store is closed")
        client = self._client
        if client is not None and client.channel.get_state() == grpc.ChannelConnectivity.READY:
            return client
        async with self._connect_lock:
            # An idle or reconnecting channel gets one attempt to come back
            # before we move on, so calls do not go to an endpoint known down.
            if self._client is not None:
                if await _wait_ready(self._client, timeout=self._timeout):
                    return self._client
                self._drop(self._client)
            for _ in range(len(self._endpoints)):
                host, port = self._endpoints[self._index]
                client = self._new_client(host, port)
                await client.connect()  # creates the channel; connecting happens below
                if await _wait_ready(client, timeout=self._timeout):
                    self._client = client
                    return client
                await _close_quietly(client)
                self._index = (self._index + 1) % len(self._endpoints)
            tried = ", ".join(f"{h}:{p}" for h, p in self._endpoints)
            raise StoreUnavailableError(f"no etcd endpoint answered ({tried})")

    def _new_client(self, host: str, port: int) -> aetcd.Client:
        if self._credentials is None:
            return aetcd.Client(host=host, port=port, timeout=self._timeout, options=_CHANNEL_OPTIONS)
        return _TLSClient(host=host, port=port, timeout=self._timeout, options=_CHANNEL_OPTIONS,
                          credentials=self._credentials)

    def _drop(self, client: aetcd.Client) -> None:
        """Stop using client (its endpoint failed) and move to the next endpoint: its watches
        end now, the client itself once the calls running on it have (see the module doc)."""
        if self._client is not client:
            return
        self._client = None
        self._index = (self._index + 1) % len(self._endpoints)
        if self._calls[client]:
            self._retired.add(client)
            self._in_background(_end_watches(client))
        else:
            self._in_background(_close_quietly(client))

    @contextlib.contextmanager
    def _calling(self, client: aetcd.Client) -> Iterator[None]:
        """Counts a KV call on client, so that dropping the client does not cut the call off."""
        self._calls[client] += 1
        try:
            yield
        finally:
            self._calls[client] -= 1
            if not self._calls[client]:
                del self._calls[client]
                if client in self._retired:
                    self._retired.discard(client)
                    self._in_background(_close_quietly(client))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _kv(self, method: str, request: object, *, retry: bool, raw_errors: bool = False) -> Any:
        """Call a KV RPC. A connection failure moves on to the next endpoint,
        where the call is tried again if it is a read (retry=True) or was
        never sent. Other errors become StoreError, or stay gRPC errors with
        raw_errors (for callers reading their details)."""
        failure: grpc.aio.AioRpcError | None = None
        for _ in range(len(self._endpoints)):
            client = await self._connected_client()
            try:
                with self._calling(client):
                    return await getattr(client.kvstub, method)(request, timeout=self._timeout,
                                                                metadata=client.metadata)
            except asyncio.CancelledError:
                if _cancelling():
                    raise
                # Not our cancellation: gRPC cancelled the call because its channel closed.
                raise StoreUnavailableError(f"etcd {method} was cut off: its connection was closed") from None
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _CONNECTION_CODES:
                    if raw_errors:
                        raise
                    raise StoreError(f"etcd {method}: {exc.code().name}: {exc.details()}") from exc
                self._drop(client)
                failure = exc
                if not (retry or _never_sent(exc)):
                    break
        raise StoreUnavailableError(f"etcd {method} failed: {failure.details() if failure else ''}") from failure

    # Reads.

    async def get(self, key: str) -> KeyValue | None:
        response = await self._kv("Range", rpc.RangeRequest(key=key.encode()), retry=True)
        return _key_value(response.kvs[0]) if response.kvs else None

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        start = prefix.encode() or b"\0"
        request = rpc.RangeRequest(
            key=start,
            range_end=prefix_range_end(prefix.encode()),
            sort_order=rpc.RangeRequest.ASCEND,
            sort_target=rpc.RangeRequest.KEY,
        )
        response = await self._kv("Range", request, retry=True)
        return [_key_value(kv) for kv in response.kvs], response.header.revision

    async def current_revision(self) -> int:
        response = await self._kv("Range", rpc.RangeRequest(key=b"\0", count_only=True), retry=True)
        return response.header.revision

    async def compacted_revision(self) -> int:
        low, high = self._compacted_floor, await self.current_revision()
        while low < high:  # the answer lies in [low, high]
            middle = (low + high) // 2
            if await self._is_compacted(middle):
                low = middle + 1
            else:
                high = middle
        self._compacted_floor = low
        return low

    async def _is_compacted(self, revision: int) -> bool:
        try:
            request = rpc.RangeRequest(key=b"\0", revision=revision, count_only=True)
            await self._kv("Range", request, retry=True, raw_errors=True)
        except grpc.aio.AioRpcError as exc:
            if _COMPACTED_MESSAGE in (exc.details() or ""):
                return True
            raise StoreError(f"etcd Range: {exc.code().name}: {exc.details()}") from exc
        return False

    # Writes.

    async def create(self, key: str, value: bytes) -> KeyValue:
        encoded = key.encode()
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=encoded, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=encoded, value=value))],
        )
        response = await self._write(request)
        if not response.succeeded:
            raise KeyExistsError(key)
        revision = response.header.revision
        return KeyValue(key, bytes(value), revision, revision)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        encoded = key.encode()
        request = rpc.TxnRequest(
            compare=_exists_at(encoded, expected_revision),
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=encoded, value=value, prev_kv=True))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=encoded))],
        )
        response = await self._write(request)
        if not response.succeeded:
            raise _precondition_error(key, expected_revision, response)
        prev = response.responses[0].response_put.prev_kv
        return KeyValue(key, bytes(value), prev.create_revision, response.header.revision)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        encoded = key.encode()
        request = rpc.TxnRequest(
            compare=_exists_at(encoded, expected_revision),
            success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=encoded, prev_kv=True))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=encoded))],
        )
        response = await self._write(request)
        if not response.succeeded:
            raise _precondition_error(key, expected_revision, response)
        (last,) = response.responses[0].response_delete_range.prev_kvs
        return KeyValue(key, last.value, last.create_revision, response.header.revision)

    async def _write(self, request: rpc.TxnRequest) -> rpc.TxnResponse:
        # Not retried elsewhere: a write cut off mid-call may have been applied.
        return await self._kv("Txn", request, retry=False)

    async def compact(self, revision: int) -> None:
        """etcd compaction at revision. At or below the compacted revision it
        does nothing; beyond the current revision it raises ValueError."""
        if revision <= 1:
            return
        try:
            await self._kv("Compact", rpc.CompactionRequest(revision=revision), retry=True, raw_errors=True)
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            if _FUTURE_MESSAGE in details:
                raise ValueError(f"cannot compact at {revision}: it is beyond the current revision") from exc
            if _COMPACTED_MESSAGE not in details:
                raise StoreError(f"etcd Compact: {exc.code().name}: {details}") from exc
        self._compacted_floor = max(self._compacted_floor, revision)

    # Watch.

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        return self._watch(prefix, start_revision)

    async def _watch(self, prefix: str, start_revision: int) -> AsyncIterator[StoreEvent]:
        if start_revision < 1:
            raise ValueError(f"start_revision must be >= 1, got {start_revision}")
        client = await self._connected_client()
        next_revision = start_revision
        watch = None
        try:
            watch = await client.watch(
                prefix.encode() or b"\0",
                range_end=prefix_range_end(prefix.encode()),
                start_revision=start_revision,
                prev_kv=True,
            )
            async for event in watch:
                store_event = _store_event(event)
                next_revision = store_event.revision + 1
                yield store_event
            if not self._closed:  # aetcd ends watches quietly when their client is dropped or closed
                raise StoreUnavailableError(f"etcd watch of {prefix!r} ended: its connection was closed")
        except asyncio.CancelledError:
            if _cancelling():
                raise
            raise StoreUnavailableError(f"etcd watch of {prefix!r} was cut off: its connection was closed") from None
        except aetcd.RevisionCompactedError as exc:
            raise CompactedError(next_revision, exc.compacted_revision) from exc
        except (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError, aetcd.WatchTimeoutError) as exc:
            self._drop(client)
            raise StoreUnavailableError(f"etcd watch of {prefix!r} broke: {exc}") from exc
        except aetcd.ClientError as exc:
            raise StoreError(f"etcd watch of {prefix!r} failed: {exc}") from exc
        finally:
            if watch is not None:
                try:
                    await watch.cancel()
                except Exception:  # the client may be closed already; nothing left to cancel
                    pass

    async def close(self) -> None:
        """Close the connection; open watches end."""
        self._closed = True
        clients = [*self._retired, *([self._client] if self._client is not None else [])]
        self._client = None
        self._retired.clear()
        await asyncio.gather(*(_close_quietly(client) for client in clients))
        await asyncio.gather(*self._closing)


def _cancelling() -> bool:
    """Whether the current task is being cancelled (rather than a call cancelled under it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _wait_ready(client: aetcd.Client, *, timeout: float) -> bool:
    """Whether client's channel is or becomes ready. False as soon as a
    connection attempt fails, rather than waiting out gRPC's retries."""
    channel = client.channel
    try:
        async with asyncio.timeout(timeout):
            state = channel.get_state(try_to_connect=True)
            while state != grpc.ChannelConnectivity.READY:
                if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
                    return False
                await channel.wait_for_state_change(state)
                state = channel.get_state(try_to_connect=True)
    except TimeoutError:
        return False
    return True


def _never_sent(exc: grpc.aio.AioRpcError) -> bool:
    """Whether a failed call never left the client: gRPC found no connection to
    send it on (the channel was down though it still looked ready to us)."""
    return exc.code() == grpc.StatusCode.UNAVAILABLE and _NOT_CONNECTED_MESSAGE in (exc.details() or "")


async def _end_watches(client: aetcd.Client) -> None:
    """End client's watches (quietly, as closing it would) and leave its calls be."""
    watcher = getattr(client, "_watcher", None)  # set by connect(), in aetcd's and _TLSClient's
    if watcher is not None:
        await watcher.shutdown()


async def _close_quietly(client: aetcd.Client) -> None:
    try:
        await client.close()
    except Exception:  # closing a broken channel may fail; it is gone either way
        pass


def _exists_at(key: bytes, expected_revision: int | None) -> list[rpc.Compare]:
    exists = rpc.Compare(key=key, target=rpc.Compare.VERSION, result=rpc.Compare.GREATER, version=0)
    if expected_revision is None:
        return [exists]
    return [exists, rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=expected_revision)]


def _precondition_error(key: str, expected_revision: int | None, response: rpc.TxnResponse) -> StoreError:
    kvs = response.responses[0].response_range.kvs
    if not kvs:
        return KeyNotFoundError(key)
    return RevisionConflictError(key, expected=expected_revision or 0, actual=kvs[0].mod_revision)


def _key_value(kv: rpc.KeyValue) -> KeyValue:
    return KeyValue(kv.key.decode(), kv.value, kv.create_revision, kv.mod_revision)


def _store_event(event: aetcd.Event) -> StoreEvent:
    # aetcd wraps an absent prev_kv as an empty KeyValue; a real one has a mod_revision.
    prev = event.prev_kv
    key = event.kv.key.decode()
    prev_kv = KeyValue(key, prev.value, prev.create_revision, prev.mod_revision) if prev and prev.mod_revision else None
    if event.kind == "DELETE":
        # etcd's delete event holds only the key and the deletion's revision.
        value, create_revision = (prev_kv.value, prev_kv.create_revision) if prev_kv else (b"", 0)
        return StoreEvent(EventType.DELETE, KeyValue(key, value, create_revision, event.kv.mod_revision), prev_kv)
    kv = event.kv
    return StoreEvent(EventType.PUT, KeyValue(key, kv.value, kv.create_revision, kv.mod_revision), prev_kv)
