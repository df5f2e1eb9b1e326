"""The gRPC face of the API: decode, check size, call ResourceService, answer.

Handlers are registered with raw-bytes deserialization so that a malformed or
truncated request becomes a clear INVALID_ARGUMENT answer instead of a
transport error, and so the 3 MiB request limit is checked with a message that
says what happened. Every APIError becomes a gRPC status with the
``sampan-reason`` trailing metadata; anything else is logged and answered
INTERNAL without taking the service down. Logs, Exec and ImportImage are
relayed to a node's agent by control.server.relay, and Top gathered from the
agents by control.server.top, registered here with the rest, as is
AccessReview (control.server.access_review).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from control.api import errors, kinds
from control.server.access_review import AccessReviewer
from control.server.certificate_requests import stamp_requester
from control.server.gate import RequestGate, RequestInfo
from control.server.metrics import ControlMetrics
from control.server.resources import ResourceService, unpack_object
from control.store.base import StoreUnavailableError
from control.store.encryption import ValueTransformError
from control.server.token_request import TokenRequests
from protos.api.v1 import api_pb2, authorization_pb2, core_pb2

if TYPE_CHECKING:  # relay.py and top.py build on this module's helpers
    from control.server.relay import StreamRelay
    from control.server.top import Top

log = logging.getLogger(__name__)

SERVICE_NAME = "sampan.api.v1.API"
MAX_REQUEST_BYTES = 3 * 1024 * 1024
# gRPC's own hard cap sits above ours so that our check answers first.
TRANSPORT_MAX_RECEIVE_BYTES = 16 * 1024 * 1024
SERVER_VERSION = "v0.1.0"
_ENCODED_EVENTS_CACHE = 4096


def pack(obj: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(obj)
    return packed


def _resolve_kind(name: str) -> kinds.Kind:
    try:
        return kinds.resolve(name)
    except kinds.UnknownKindError as err:
        raise errors.NotFoundError(str(err)) from None


def parse_request(request_type: type[Message], raw: bytes) -> Message:
    if len(raw) > MAX_REQUEST_BYTES:
        raise errors.RequestTooLargeError(
            f"request is {len(raw)} bytes; the limit is {MAX_REQUEST_BYTES} bytes (3 MiB)")
    try:
        return request_type.FromString(raw)
    except (DecodeError, RecursionError) as err:
        raise errors.BadRequestError(f"malformed {request_type.DESCRIPTOR.name}: {err}") from None


def _unpack(packed: any_pb2.Any) -> tuple[kinds.Kind, Message]:
    if not packed.type_url:
        raise errors.BadRequestError("the request carries no object")
    return unpack_object(packed.type_url, packed.value)


class APIServicer:
    """Implements sampan.api.v1.API on top of ResourceService."""

    def __init__(self, resources: ResourceService, metrics: ControlMetrics, gate: RequestGate | None = None, *,
                 tokens: TokenRequests | None = None) -> None:
        self.resources = resources
        self.metrics = metrics
        self.gate = gate or RequestGate()
        # serviceaccounts/token (control/server/token_request.py); None: not served.
        self.tokens = tokens
        # Serialized watch events, shared by every watcher of the same change.
        self._encoded_events: OrderedDict[tuple, bytes] = OrderedDict()

    def encode_watch_event(self, event_type: str, obj: Message) -> bytes:
        meta = obj.metadata
        key = (obj.DESCRIPTOR.full_name, meta.namespace, meta.name, meta.resource_version, event_type)
        encoded = self._encoded_events.get(key)
        if encoded is None:
            encoded = api_pb2.WatchEvent(type=event_type, object=pack(obj)).SerializeToString()
            self._encoded_events[key] = encoded
            if len(self._encoded_events) > _ENCODED_EVENTS_CACHE:
                self._encoded_events.popitem(last=False)
        return encoded

    async def _authorize(self, info: RequestInfo, kind: kinds.Kind, *, namespace: str = "", name: str = "",
                         subresource: str = "", obj: Message | None = None, field_selector: str = "") -> None:
        info.kind, info.namespace, info.name, info.subresource, info.object = kind, namespace, name, subresource, obj
        info.field_selector = field_selector
        await self.gate.authorize(info)

    async def create(self, request: api_pb2.CreateRequest, info: RequestInfo) -> tuple[str, Message]:
        if request.subresource:
            return await self._create_subresource(request, info)
        kind, obj = _unpack(request.object)
        await self._authorize(info, kind, namespace=obj.metadata.namespace, name=obj.metadata.name, obj=obj)
        if kind.kind == "CertificateSigningRequest":
            stamp_requester(obj, info.user)
        created = await self.resources.create(obj, admit=self.gate.admission_for(info))
        return kind.kind, api_pb2.ObjectResponse(object=pack(created))

    async def _create_subresource(self, request: api_pb2.CreateRequest, info: RequestInfo) -> tuple[str, Message]:
        """create serviceaccounts/NAME/token: the only subresource made by a create."""
        kind = _resolve_kind(request.kind)
        if kind.kind != "ServiceAccount" or request.subresource != "token" or self.tokens is None:
            raise errors.NotFoundError(
                f"the server could not find the requested resource ({kind.plural}/{request.subresource})")
        if not request.name:
            raise errors.BadRequestError("a TokenRequest names its service account (name)")
        token_request = core_pb2.TokenRequest()
        if request.object.type_url and not request.object.Unpack(token_request):
            raise errors.BadRequestError(
                f"serviceaccounts/token takes a TokenRequest, not {request.object.type_url.rpartition('/')[2]}")
        namespace = request.namespace or "default"
        await self._authorize(info, kind, namespace=namespace, name=request.name, subresource="token",
                              obj=token_request)
        answer = await self.tokens.create(namespace=namespace, name=request.name, request=token_request,
                                          user=info.user)
        return kind.kind, api_pb2.ObjectResponse(object=pack(answer))

    async def get(self, request: api_pb2.GetRequest, info: RequestInfo) -> tuple[str, Message]:
        kind = _resolve_kind(request.kind)
        await self._authorize(info, kind, namespace=request.namespace, name=request.name)
        obj = await self.resources.get(kind, namespace=request.namespace, name=request.name)
        return kind.kind, api_pb2.ObjectResponse(object=pack(obj))

    async def list(self, request: api_pb2.ListRequest, info: RequestInfo) -> tuple[str, Message]:
        kind = _resolve_kind(request.kind)
        await self._authorize(info, kind, namespace=request.namespace, field_selector=request.field_selector)
        items, revision = await self.resources.list(
            kind, namespace=request.namespace,
            label_selector=request.label_selector, field_selector=request.field_selector)
        response = api_pb2.ListResponse(resource_version=str(revision))
        response.items.extend(pack(item) for item in items)
        return kind.kind, response

    async def update(self, request: api_pb2.UpdateRequest, info: RequestInfo) -> tuple[str, Message]:
        kind, obj = _unpack(request.object)
        await self._authorize(info, kind, namespace=obj.metadata.namespace, name=obj.metadata.name,
                              subresource=request.subresource, obj=obj)
        updated = await self.resources.update(obj, subresource=request.subresource,
                                              admit=self.gate.admission_for(info))
        return kind.kind, api_pb2.ObjectResponse(object=pack(updated))

    async def patch(self, request: api_pb2.PatchRequest, info: RequestInfo) -> tuple[str, Message]:
        kind = _resolve_kind(request.kind)
        await self._authorize(info, kind, namespace=request.namespace, name=request.name,
                              subresource=request.subresource)
        patched = await self.resources.patch(
            kind, namespace=request.namespace, name=request.name,
            patch=request.patch, subresource=request.subresource, admit=self.gate.admission_for(info))
        return kind.kind, api_pb2.ObjectResponse(object=pack(patched))

    async def delete(self, request: api_pb2.DeleteRequest, info: RequestInfo) -> tuple[str, Message]:
        kind = _resolve_kind(request.kind)
        await self._authorize(info, kind, namespace=request.namespace, name=request.name)
        if request.propagation_policy not in ("", "Background", "Foreground", "Orphan"):
            raise errors.InvalidError(
                f'propagationPolicy: Unsupported value: "{request.propagation_policy}": '
                'supported values: "Background", "Foreground", "Orphan"')
        obj, deleted = await self.resources.delete(
            kind, namespace=request.namespace, name=request.name,
            grace_period_seconds=request.grace_period_seconds if request.HasField("grace_period_seconds") else None,
            force=request.force, uid=request.uid, resource_version=request.resource_version,
            propagation_policy=request.propagation_policy)
        return kind.kind, api_pb2.DeleteResponse(object=pack(obj), deleted=deleted)

    async def discovery(self, request: api_pb2.DiscoveryRequest, info: RequestInfo) -> tuple[str, Message]:
        # Any authenticated caller may discover the kinds (Kubernetes' system:discovery role).
        response = api_pb2.DiscoveryResponse(server_version=SERVER_VERSION)
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        for kind in kinds.all_kinds():
            response.resources.add(
                kind=kind.kind, name=kind.plural, short_names=kind.short_names,
                namespaced=kind.namespaced, api_version=kind.api_version, verbs=verbs)
        return "", response

    async def watch(self, request: api_pb2.WatchRequest, info: RequestInfo) -> tuple[str, AsyncIterator[bytes]]:
        kind = _resolve_kind(request.kind)
        await self._authorize(info, kind, namespace=request.namespace, field_selector=request.field_selector)
        events = self.resources.watch(
            kind, namespace=request.namespace, label_selector=request.label_selector,
            field_selector=request.field_selector, resource_version=request.resource_version)

        async def stream() -> AsyncIterator[bytes]:
            gauge = self.metrics.watches.labels(kind.kind)
            counter = self.metrics.watch_events.labels(kind.kind)
            gauge.inc()
            try:
                async for event_type, obj in events:
                    counter.inc()
                    yield self.encode_watch_event(event_type, obj)
            finally:
                gauge.dec()
                await events.aclose()

        return kind.kind, stream()


def undecryptable(verb: str, err: ValueTransformError) -> errors.InternalError:
    """A stored value the encryption configuration cannot open (a key removed too early, a
    wrong key): the caller and the log are told which object and why, as Kubernetes does."""
    log.error("%s failed: %s", verb, err)
    return errors.InternalError(f"Internal error occurred: {err}")


def store_unavailable(err: StoreUnavailableError) -> errors.UnavailableError:
    return errors.UnavailableError(f"the control service's store is unavailable ({err}); try again")


async def abort_with_error(context: grpc.aio.ServicerContext, err: errors.APIError) -> None:
    metadata = [(errors.REASON_METADATA_KEY, err.reason)]
    retry_after = getattr(err, "retry_after_seconds", None)
    if retry_after is not None:
        metadata.append((errors.RETRY_AFTER_METADATA_KEY, str(retry_after)))
    context.set_trailing_metadata(tuple(metadata))
    await context.abort(err.code, err.message)


def _unary(
    verb: str,
    request_type: type[Message],
    method: Callable[[Any, RequestInfo], Awaitable[tuple[str, Message]]],
    metrics: ControlMetrics,
    gate: RequestGate,
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
    async def handler(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        start = time.perf_counter()
        kind_label = "unknown"
        code = grpc.StatusCode.OK
        info: RequestInfo | None = None
        try:
            info = await gate.begin(context, verb)
            async with gate.admit(info):
                request = parse_request(request_type, raw)
                kind_label = getattr(request, "kind", "") or kind_label
                kind_label, response = await method(request, info)
                return response.SerializeToString()
        except errors.APIError as err:
            code = err.code
            await abort_with_error(context, err)
        except ValueTransformError as err:
            code = grpc.StatusCode.INTERNAL
            await abort_with_error(context, undecryptable(verb, err))
        except StoreUnavailableError as err:
            code = grpc.StatusCode.UNAVAILABLE
            await abort_with_error(context, store_unavailable(err))
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("%s failed", verb)
            await abort_with_error(context, errors.InternalError(f"internal error while serving {verb}; see the control service's log"))
        finally:
            metrics.requests.labels(kind_label, verb, code.name).inc()
            metrics.request_duration.labels(kind_label, verb).observe(time.perf_counter() - start)
            gate.finish(info, code)
        raise AssertionError("unreachable")  # abort() raises

    return handler


async def serve_stream(
    verb: str,
    open_stream: Callable[[RequestInfo], Awaitable[tuple[str, AsyncIterator[bytes]]]],
    context: grpc.aio.ServicerContext,
    metrics: ControlMetrics,
    gate: RequestGate,
) -> AsyncIterator[bytes]:
    """Serve a streaming answer: the caller is authenticated first (open_stream
    authorizes once it knows what the request is about); errors become the API's
    statuses (INTERNAL, logged, for anything unexpected) and the request is
    counted once, with the kind that open_stream names. Streams are long: they
    are not held to the fairness bound, which is for requests in flight."""
    kind_label = "unknown"
    code = grpc.StatusCode.OK
    info: RequestInfo | None = None
    try:
        info = await gate.begin(context, verb)
        kind_label, stream = await open_stream(info)
        async for message in stream:
            yield message
    except errors.APIError as err:
        code = err.code
        await abort_with_error(context, err)
    except ValueTransformError as err:
        code = grpc.StatusCode.INTERNAL
        await abort_with_error(context, undecryptable(verb, err))
    except StoreUnavailableError as err:  # a watch whose store connection broke: the client watches again
        code = grpc.StatusCode.UNAVAILABLE
        await abort_with_error(context, store_unavailable(err))
    except Exception:
        code = grpc.StatusCode.INTERNAL
        log.exception("%s failed", verb)
        await abort_with_error(context, errors.InternalError(
            f"internal error while serving {verb}; see the control service's log"))
    finally:
        metrics.requests.labels(kind_label, verb, code.name).inc()
        gate.finish(info, code)


def _streaming(
    servicer: APIServicer, metrics: ControlMetrics
) -> Callable[[bytes, grpc.aio.ServicerContext], AsyncIterator[bytes]]:
    async def handler(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async def open_watch(info: RequestInfo) -> tuple[str, AsyncIterator[bytes]]:
            return await servicer.watch(parse_request(api_pb2.WatchRequest, raw), info)

        async for event in serve_stream("watch", open_watch, context, metrics, servicer.gate):
            yield event

    return handler


def add_api_service(server: grpc.aio.Server, servicer: APIServicer, *, relay: StreamRelay, top: Top) -> None:
    """Register the API service's handlers on server; Logs, Exec and ImportImage
    are relay's, Top is top's."""
    m = servicer.metrics
    unary = {
        "Create": ("create", api_pb2.CreateRequest, servicer.create),
        "Get": ("get", api_pb2.GetRequest, servicer.get),
        "List": ("list", api_pb2.ListRequest, servicer.list),
        "Update": ("update", api_pb2.UpdateRequest, servicer.update),
        "Patch": ("patch", api_pb2.PatchRequest, servicer.patch),
        "Delete": ("delete", api_pb2.DeleteRequest, servicer.delete),
        "Discovery": ("discovery", api_pb2.DiscoveryRequest, servicer.discovery),
        "Top": ("top", api_pb2.TopRequest, top.top),
        "AccessReview": ("create", authorization_pb2.SubjectAccessReview, AccessReviewer(servicer.gate).review),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(_unary(verb, request_type, method, m, servicer.gate))
        for name, (verb, request_type, method) in unary.items()
    }
    handlers["Watch"] = grpc.unary_stream_rpc_method_handler(_streaming(servicer, m))
    handlers["Logs"] = grpc.unary_stream_rpc_method_handler(relay.logs)
    handlers["Exec"] = grpc.stream_stream_rpc_method_handler(relay.exec)
    handlers["ImportImage"] = grpc.stream_unary_rpc_method_handler(relay.import_image)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
