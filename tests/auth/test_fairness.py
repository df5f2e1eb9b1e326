"""Fairness (control/auth/fairness.py): bounds on requests in flight.

The Limiter alone: a per-identity bound, a per-level total, the nodes' own
pool, the control plane exempt, places returned however a request ends.
Then at the API gate, on a real gRPC server whose callers a test
authenticator tells apart by bearer token: a flood of 1,000 concurrent
requests from one user is answered RESOURCE_EXHAUSTED with a retry-after
hint beyond the bound while a node's Lease updates and another user's
requests go through. Then end to end over mutual TLS with the cluster's own
certificates. And the client retries such answers after the hinted delay.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from control.api import errors
from control.auth import pki
from control.auth.fairness import SYSTEM, WORKLOAD, FairnessConfig, Limiter
from control.auth.identity import CONTROL_PLANE_USER, authenticated, node_user
from control.client import Client, ClientCredentials
from control.server.gate import RequestGate
from control.service import ControlConfig, ControlService
from protos.api.v1 import api_pb2, api_pb2_grpc, core_pb2
from tests.support.static_tokens import StaticTokens, bearer

ALICE = authenticated("alice", ("dev",))
BOB = authenticated("bob")
NODE = node_user("n1")
CONTROL = authenticated(CONTROL_PLANE_USER)


async def hold(limiter: Limiter, user, stack: contextlib.AsyncExitStack) -> None:
    await stack.enter_async_context(limiter.admit(user))


async def test_one_user_is_bounded_and_told_when_to_retry() -> None:
    limiter = Limiter(FairnessConfig(max_per_user=2, max_total=10))
    async with contextlib.AsyncExitStack() as stack:
        await hold(limiter, ALICE, stack)
        await hold(limiter, ALICE, stack)
        with pytest.raises(errors.TooManyRequestsError, match='user "alice".*retry after 1s') as refused:
            await hold(limiter, ALICE, stack)
        assert refused.value.retry_after_seconds == 1
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        await hold(limiter, BOB, stack)  # another user is not affected
    assert limiter.in_flight(WORKLOAD) == 0


async def test_the_total_bounds_all_users_together() -> None:
    limiter = Limiter(FairnessConfig(max_per_user=5, max_total=3))
    async with contextlib.AsyncExitStack() as stack:
        for user in ("a", "b", "c"):
            await hold(limiter, authenticated(user), stack)
        with pytest.raises(errors.TooManyRequestsError, match="server has too many requests in flight"):
            await hold(limiter, authenticated("d"), stack)


async def test_nodes_have_their_own_pool_and_the_control_plane_is_exempt() -> None:
    limiter = Limiter(FairnessConfig(max_per_user=1, max_total=1, max_system_total=1))
    async with contextlib.AsyncExitStack() as stack:
        await hold(limiter, ALICE, stack)  # the users' pool is full
        await hold(limiter, NODE, stack)
        for _ in range(50):
            await hold(limiter, CONTROL, stack)
        assert (limiter.in_flight(WORKLOAD), limiter.in_flight(SYSTEM)) == (1, 1)


async def test_a_place_is_returned_when_the_request_fails() -> None:
    limiter = Limiter(FairnessConfig(max_per_user=1))
    with pytest.raises(RuntimeError):
        async with limiter.admit(ALICE):
            raise RuntimeError("handler failed")
    async with limiter.admit(ALICE):
        pass


def test_bounds_below_one_are_refused_naming_the_flag() -> None:
    with pytest.raises(ValueError, match="--max-requests-inflight-per-user: Invalid value: 0"):
        FairnessConfig(max_per_user=0)


# ------------------------------------------------------------------ at the gate, over gRPC


class HeldConfigMapReads:
    """The service's store, with reads of ConfigMaps held until released: the
    requests that get past the limiter stay in flight for as long as the test needs."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.release = asyncio.Event()

    async def get(self, key: str):
        if key.startswith("/registry/configmaps/"):
            await self.release.wait()
        return await self.inner.get(key)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class TokenGatedService(ControlService):
    """A control service whose gate knows users by bearer token (tests/support/static_tokens.py)."""

    def __init__(self, config: ControlConfig, *, fairness: FairnessConfig) -> None:
        super().__init__(config)
        self.limiter = Limiter(fairness)

    def _build_gate(self, resources) -> RequestGate:
        tokens = StaticTokens({"alice": ALICE, "bob": BOB, "node-n1": NODE}, anonymous=CONTROL)
        return RequestGate(authenticator=tokens, limiter=self.limiter)


@pytest.fixture
async def gated(tmp_path):
    svc = TokenGatedService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="",
        shutdown_grace=0.2, leader_election=None), fairness=FairnessConfig(max_per_user=10))
    await svc.start()
    held = HeldConfigMapReads(svc._resources.store)
    svc._resources.store = held
    yield svc, held
    held.release.set()
    await svc.stop()


def lease(name: str, holder: str) -> core_pb2.Lease:
    obj = core_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
    obj.metadata.name, obj.metadata.namespace = name, "kube-node-lease"
    obj.spec.holder_identity = holder
    return obj


def packed(obj) -> api_pb2.CreateRequest:
    request = api_pb2.CreateRequest()
    request.object.Pack(obj)
    return request


async def test_a_flood_from_one_user_is_refused_while_a_node_renews_its_lease(gated) -> None:
    svc, held = gated
    async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        stub = api_pb2_grpc.APIStub(channel)
        read = api_pb2.GetRequest(kind="ConfigMap", namespace="default", name="settings")
        flood = [asyncio.ensure_future(stub.Get(read, metadata=bearer("alice"), timeout=60)) for _ in range(1000)]
        async with asyncio.timeout(60):
            while sum(call.done() for call in flood) < 990:
                await asyncio.sleep(0.05)
        refused = [call.exception() for call in flood if call.done()]
        assert len(refused) == 990 and svc.limiter.in_flight(WORKLOAD) == 10
        first = refused[0]
        assert first.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry after 1s" in first.details()
        assert ("retry-after", "1") in tuple(first.trailing_metadata())

        # While alice's ten places are taken, the node renews its lease and bob reads.
        created = await stub.Create(packed(lease("n1", "n1")), metadata=bearer("node-n1"), timeout=10)
        current = core_pb2.Lease()
        created.object.Unpack(current)
        for renewal in range(20):
            current.spec.renew_time = f"2030-01-01T00:00:{renewal:02d}.000000Z"
            answer = await stub.Update(api_pb2.UpdateRequest(object=packed(current).object),
                                       metadata=bearer("node-n1"), timeout=10)
            answer.object.Unpack(current)
        assert current.spec.renew_time.endswith(":19.000000Z")
        await stub.Get(api_pb2.GetRequest(kind="Namespace", name="default"), metadata=bearer("bob"), timeout=10)

        held.release.set()
        finished = await asyncio.gather(*flood, return_exceptions=True)
    served = [err for err in finished if err.code() == grpc.StatusCode.NOT_FOUND]
    assert len(served) == 10
    assert svc.limiter.in_flight(WORKLOAD) == 0


# ------------------------------------------------------------------ end to end, mutual TLS


@pytest.fixture
async def held_secure(secure):
    """The shared TLS service (tests/auth/conftest.py), its ConfigMap reads held in the store."""
    held = HeldConfigMapReads(secure._resources.store)
    secure._resources.store = held
    yield secure, held
    held.release.set()


def credentials_for(svc: ControlService, pair: pki.CertKey) -> ClientCredentials:
    return ClientCredentials(ca=svc.pki.ca_pem, cert=pair.cert_pem, key=pair.key_pem)


async def test_over_tls_a_flooding_admin_is_refused_and_a_node_keeps_its_lease(held_secure) -> None:
    """The service's own gate (certificates, RBAC and node authorizers, the default bound of
    100 per user): the admin's 1,000 reads of a ConfigMap, held in the store, fill 100 places."""
    svc, held = held_secure
    address = f"127.0.0.1:{svc.port}"
    node_pair = pki.issue(svc.pki.ca, common_name="system:node:n1", organizations=["system:nodes"])
    async with Client.connect(address, credentials=credentials_for(svc, svc.pki.load("admin"))) as admin, \
            Client.connect(address, credentials=credentials_for(svc, node_pair)) as node:
        admin.busy_retries = 0
        current = await node.create(lease("n1", "n1"))
        flood = [asyncio.ensure_future(admin.get("ConfigMap", "settings", namespace="default"))
                 for _ in range(1000)]
        async with asyncio.timeout(60):
            while sum(call.done() for call in flood) < 900:
                await asyncio.sleep(0.05)
        refused = [call.exception() for call in flood if call.done()]
        assert len(refused) == 900
        assert all(isinstance(err, errors.TooManyRequestsError) and err.retry_after_seconds == 1 for err in refused)

        for renewal in range(20):  # the node's heartbeats go on meanwhile
            current.spec.renew_time = f"2030-01-01T00:00:{renewal:02d}.000000Z"
            current = await node.update(current)
        assert current.spec.renew_time.endswith(":19.000000Z")

        held.release.set()
        served = await asyncio.gather(*flood, return_exceptions=True)
    assert sum(isinstance(answer, errors.NotFoundError) for answer in served) == 100


# ------------------------------------------------------------------ the client


class Busy:
    """A unary method answering TooManyRequests a given number of times, then OK."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls = 0

    async def __call__(self, request, *, timeout):
        self.calls += 1
        if self.calls <= self.refusals:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.aio.Metadata(),
                grpc.aio.Metadata(("sampan-reason", "TooManyRequests"), ("retry-after", "0")),
                details="too many requests in flight; retry after 0s")
        return "answer"


async def test_the_client_retries_too_many_requests_after_the_hinted_delay() -> None:
    client = Client(grpc.aio.insecure_channel("127.0.0.1:1"))
    busy = Busy(refusals=3)
    assert await client._call(busy, None) == "answer"
    assert busy.calls == 4
    client.busy_retries = 1
    with pytest.raises(errors.TooManyRequestsError) as refused:
        await client._call(Busy(refusals=5), None)
    assert refused.value.retry_after_seconds == 0
    await client.close()
