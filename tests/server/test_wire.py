"""The gRPC surface: hostile or malformed requests get clear errors and leave
the service up with nothing stored; health checking, reflection and the
Prometheus endpoint work."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from control.api import errors
from control.client import Client
from protos.api.v1 import api_pb2
from tests.server.test_api import make_configmap


async def raw_call(address: str, method: str, payload: bytes) -> grpc.aio.AioRpcError | bytes:
    """Send raw bytes as a request, bypassing any client-side serialization."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/sampan.api.v1.API/{method}")
        try:
            return await call(payload, timeout=5)
        except grpc.aio.AioRpcError as err:
            return err


@pytest.fixture
def address(service):
    return f"127.0.0.1:{service.port}"


async def assert_nothing_stored(api: Client):
    items, _ = await api.list("ConfigMap")
    assert items == []


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x0a\x80", b"garbage that is not protobuf"])
async def test_garbage_on_the_wire_is_invalid_argument(address, api, payload):
    answer = await raw_call(address, "Create", payload)
    assert isinstance(answer, grpc.aio.AioRpcError)
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in answer.details()
    await assert_nothing_stored(api)


async def test_truncated_object_is_invalid_argument(address, api):
    request = api_pb2.CreateRequest()
    request.object.Pack(make_configmap("cfg", {"k": "v" * 100}))
    payload = request.SerializeToString()[:-20]
    answer = await raw_call(address, "Create", payload)
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
    await assert_nothing_stored(api)


async def test_merge_patch_nested_ten_thousand_deep_is_a_bad_request(api):
    await api.create(make_configmap("cfg", {"k": "v"}))
    patch = b'{"metadata":' * 10_000 + b"{}" + b"}" * 10_000
    with pytest.raises(errors.BadRequestError):
        await api.patch("ConfigMap", "cfg", patch, namespace="default")
    assert dict((await api.get("ConfigMap", "cfg", namespace="default")).data) == {"k": "v"}


async def test_request_over_three_mebibytes_is_refused_with_a_clear_error(api):
    limit = 3 * 1024 * 1024
    cm = make_configmap("big", {"blob": ""})

    def size() -> int:
        return len(api_pb2.CreateRequest(object=_pack(cm)).SerializeToString())

    for _ in range(10):  # length prefixes grow with the blob: converge on the exact size
        cm.data["blob"] = "x" * (len(cm.data["blob"]) + limit + 1 - size())
    assert size() == limit + 1
    with pytest.raises(errors.RequestTooLargeError, match="limit is 3145728 bytes"):
        await api.create(cm)
    await assert_nothing_stored(api)
    assert (await api.create(make_configmap("small", {"k": "v"}))).metadata.name == "small"


async def test_unknown_type_in_any_is_a_bad_request(address, api):
    request = api_pb2.CreateRequest()
    request.object.type_url = "type.googleapis.com/evil.Thing"
    request.object.value = b"\x0a\x01x"
    answer = await raw_call(address, "Create", request.SerializeToString())
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
    await assert_nothing_stored(api)


async def test_unknown_kind_is_not_found(api):
    with pytest.raises(errors.NotFoundError, match="doesn't have a resource type"):
        await api.list("Gizmo")


async def test_health_check_answers_serving(address):
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="sampan.api.v1.API"), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_api_service(address):
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        answer = await call.read()
        services = {s.name for s in answer.list_services_response.service}
    assert "sampan.api.v1.API" in services


def _pack(message):
    from control.client import pack
    return pack(message)
