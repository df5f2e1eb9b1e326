"""The public gRPC client of the control service.

Everything outside the control service (the CLI, agents, proxies, tests,
users' own programs) talks to it through ``Client``. Objects are the typed
messages of protos/api/v1 (``core_pb2.Pod`` ...); errors are the exceptions
of ``control.api.errors`` (NotFoundError, ConflictError, ...), rebuilt from the
gRPC status the server sent.

    async with Client.connect("127.0.0.1:6443") as api:
        pod = await api.get("Pod", "web", namespace="default")
        async for event in api.watch("Pod", namespace="default"):
            print(event.type, event.object.metadata.name)
        async for chunk in api.logs("web", namespace="default", follow=True):
            sys.stdout.buffer.write(chunk)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterable, AsyncIterator, Mapping, Sequence

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message

from control.api import errors, kinds
from control.api.image_archives import accepted, archive_metadata
from protos.agent.v1 import agent_pb2
from protos.api.v1 import api_pb2, api_pb2_grpc, authorization_pb2, core_pb2

DEFAULT_SERVER = "127.0.0.1:6443"
SERVER_ENV = "SAMPAN_SERVER"
# Lists of a big cluster exceed gRPC's 4 MiB default answer size.
MAX_RESPONSE_BYTES = 512 * 1024 * 1024
# Image archives go up in pieces well under the API's 3 MiB request limit.
IMAGE_CHUNK_BYTES = 1024 * 1024


def resolve_server(server: str | None = None) -> str:
    """The address to use: the explicit one, else $SAMPAN_SERVER, else the
    config file's current context (see control.client_config), else the default."""
    from control.client_config import server_from_config

    return server or os.environ.get(SERVER_ENV) or server_from_config() or DEFAULT_SERVER


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    object: Message


@dataclass(frozen=True, slots=True)
class ExecOutput:
    """One piece of an exec's output; the last one has the exit code."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None


def pack(obj: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(obj)
    return packed


def unpack(packed: any_pb2.Any) -> Message:
    kind = kinds.by_type_url(packed.type_url)
    return kind.message.FromString(packed.value)


def _kind_name(kind: str | kinds.Kind) -> str:
    """The Kind name for a kubectl-style name; unknown names go to the server as
    given (it may serve kinds this client does not know)."""
    if isinstance(kind, kinds.Kind):
        return kind.kind
    try:
        return kinds.resolve(kind).kind
    except kinds.UnknownKindError:
        return kind


def _api_error(err: grpc.aio.AioRpcError) -> errors.APIError:
    reason = None
    for key, value in err.trailing_metadata() or ():
        if key == errors.REASON_METADATA_KEY:
            reason = value
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE and reason is None:
        return errors.UnavailableError(f"the control service is unreachable: {err.details()}")
    error = errors.from_status(code, err.details() or code.name, reason)
    if isinstance(error, errors.TooManyRequestsError):
        hint = dict(err.trailing_metadata() or ()).get(errors.RETRY_AFTER_METADATA_KEY, "")
        error.retry_after_seconds = int(hint) if str(hint).isdigit() else None
    return error


@dataclass(frozen=True)
class ClientCredentials:
    """How a client proves itself and checks the server (PEM bytes).

    ca: the cluster CA to trust (None: plain text, for a service started with
    --insecure-plaintext); cert/key: the client certificate (mutual TLS);
    token: a bearer token (a service account's), sent with every call."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    token: str | None = None

    @property
    def tls(self) -> bool:
        return self.ca is not None


PLAINTEXT = ClientCredentials()


def grpc_target(server: str) -> tuple[str, list[tuple[str, str]]]:
    """The grpc target and channel options for server: one HOST:PORT, or several
    separated by commas (the replicas of an HA control plane). Several become one
    channel over all their addresses that moves to the next when one fails
    (grpc's pick_first); TLS then checks every replica's certificate against the
    first address, so each replica's server certificate must name them all
    (``sampan control --tls-san``)."""
    addresses = [part.strip() for part in server.split(",") if part.strip()]
    if len(addresses) <= 1:
        return server, []
    hosts = []
    for address in addresses:
        host, sep, port = address.rpartition(":")
        host = host.strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f'server "{server}": several control endpoints must be IP:PORT each, '
                             f'not "{address}"') from None
        if not sep or not port.isdigit():
            raise ValueError(f'server "{server}": "{address}" has no port')
        hosts.append(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    first = addresses[0].rpartition(":")[0].strip("[]")
    return "ipv6:" + ",".join(hosts) if ":" in first else "ipv4:" + ",".join(hosts), [
        ("grpc.ssl_target_name_override", first), ("grpc.default_authority", first)]


# A call that meets a dead connection (a control replica killed, a restart) is tried again,
# up to 5 times within a few seconds, by gRPC itself: with several endpoints, on the next
# one. A write may thus arrive twice when the first answer was lost on its way back; the
# API's own rules settle it (a create answers AlreadyExists, an update with a
# resourceVersion Conflict, a delete NotFound; a merge patch applies the same change again).
_RETRY_SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "sampan.api.v1.API"}],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "1s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
}]})


def _channel(server: str, credentials: ClientCredentials) -> grpc.aio.Channel:
    server, target_options = grpc_target(server)
    options = [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES), *target_options,
               ("grpc.enable_retries", 1), ("grpc.service_config", _RETRY_SERVICE_CONFIG)]
    if not credentials.tls:
        return grpc.aio.insecure_channel(server, options=options)
    cert, key = credentials.cert, credentials.key
    if cert is None:
        # No certificate of our own (a token proves who we are): present one that names nobody,
        # since the API's TLS handshake wants one (control/auth/anonymous.py).
        from control.auth.anonymous import anonymous_client

        anonymous = anonymous_client()
        cert, key = anonymous.cert_pem, anonymous.key_pem
    channel_credentials = grpc.ssl_channel_credentials(
        root_certificates=credentials.ca, private_key=key, certificate_chain=cert)
    if credentials.token:
        channel_credentials = grpc.composite_channel_credentials(
            channel_credentials, grpc.access_token_call_credentials(credentials.token))
    return grpc.aio.secure_channel(server, channel_credentials, options=options)


class Client:
    """An asyncio client for the API service."""

    # Unary calls refused with TooManyRequests (the server's fairness bound) are
    # tried again this many times, each after the server's retry-after delay.
    busy_retries: int = 4

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float | None = 30.0) -> None:
        self._channel = channel
        self._stub = api_pb2_grpc.APIStub(channel)
        self.timeout = timeout
        self.server = ""
        self.credentials = PLAINTEXT
        self._draining: asyncio.Task | None = None

    @classmethod
    def connect(cls, server: str | None = None, *, timeout: float | None = 30.0,
                credentials: ClientCredentials | None = None) -> "Client":
        """A client for server (see resolve_server). Without credentials, those of
        the config file's current context when its server is the one asked for
        (control.client_config), else plain text."""
        address = resolve_server(server)
        if credentials is None:
            from control.client_config import credentials_from_config

            credentials = credentials_from_config(address) or PLAINTEXT
        client = cls(_channel(address, credentials), timeout=timeout)
        client.server, client.credentials = address, credentials
        return client

    async def use_credentials(self, credentials: ClientCredentials, *, drain: float = 30.0) -> None:
        """Call with new credentials from now on (a renewed certificate). Calls
        already open on the old channel (watches) go on for drain seconds, then
        that channel closes and they end; their callers re-watch on the new one."""
        old = self._channel
        self._channel = _channel(self.server, credentials)
        self._stub = api_pb2_grpc.APIStub(self._channel)
        self.credentials = credentials

        async def close_later() -> None:
            await asyncio.sleep(drain)
            await old.close()

        self._draining = asyncio.create_task(close_later())

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._draining is not None:
            self._draining.cancel()
        await self._channel.close()

    async def _call(self, method, request):
        for attempt in range(self.busy_retries + 1):
            try:
                return await method(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as err:
                error = _api_error(err)
            if not isinstance(error, errors.TooManyRequestsError) or attempt == self.busy_retries:
                raise error
            # Refused before it was read (the server's fairness bound): wait as told, with jitter
            # so that a crowd of refused callers does not come back at the same instant.
            wait = error.retry_after_seconds if error.retry_after_seconds is not None else 1
            await asyncio.sleep(wait * random.uniform(1.0, 2.0))
        raise AssertionError("unreachable")

    async def create(self, obj: Message) -> Message:
        response = await self._call(self._stub.Create, api_pb2.CreateRequest(object=pack(obj)))
        return unpack(response.object)

    async def create_token(
        self, service_account: str, *, namespace: str, audiences: Sequence[str] = (),
        expiration_seconds: int | None = None, bound_pod: tuple[str, str] | None = None,
    ) -> core_pb2.TokenRequest:
        """A token for the service account (TokenRequest), bound to the pod (name, uid) if given;
        its status carries the token and its expiry."""
        body = core_pb2.TokenRequest(api_version="authentication.k8s.io/v1", kind="TokenRequest")
        body.spec.audiences.extend(audiences)
        if expiration_seconds is not None:
            body.spec.expiration_seconds = expiration_seconds
        if bound_pod is not None:
            body.spec.bound_object_ref.kind, body.spec.bound_object_ref.api_version = "Pod", "v1"
            body.spec.bound_object_ref.name, body.spec.bound_object_ref.uid = bound_pod
        request = api_pb2.CreateRequest(object=pack(body), subresource="token", kind="ServiceAccount",
                                        namespace=namespace, name=service_account)
        response = await self._call(self._stub.Create, request)
        answer = core_pb2.TokenRequest()
        response.object.Unpack(answer)
        return answer

    async def get(self, kind: str | kinds.Kind, name: str, *, namespace: str = "") -> Message:
        request = api_pb2.GetRequest(kind=_kind_name(kind), namespace=namespace, name=name)
        return unpack((await self._call(self._stub.Get, request)).object)

    async def list(
        self,
        kind: str | kinds.Kind,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[Message], str]:
        """The objects and the resourceVersion to watch from."""
        request = api_pb2.ListRequest(
            kind=_kind_name(kind), namespace=namespace,
            label_selector=label_selector, field_selector=field_selector,
        )
        response = await self._call(self._stub.List, request)
        return [unpack(item) for item in response.items], response.resource_version

    async def update(self, obj: Message, *, subresource: str = "") -> Message:
        request = api_pb2.UpdateRequest(object=pack(obj), subresource=subresource)
        return unpack((await self._call(self._stub.Update, request)).object)

    async def update_status(self, obj: Message) -> Message:
        return await self.update(obj, subresource="status")

    async def patch(
        self,
        kind: str | kinds.Kind,
        name: str,
        patch: Mapping[str, Any] | bytes,
        *,
        namespace: str = "",
        subresource: str = "",
    ) -> Message:
        """Apply a JSON merge patch (a dict, or its JSON bytes)."""
        body = patch if isinstance(patch, bytes) else json.dumps(patch).encode()
        request = api_pb2.PatchRequest(
            kind=_kind_name(kind), namespace=namespace, name=name, patch=body, subresource=subresource,
        )
        return unpack((await self._call(self._stub.Patch, request)).object)

    async def delete(
        self,
        kind: str | kinds.Kind,
        name: str,
        *,
        namespace: str = "",
        grace_period_seconds: int | None = None,
        force: bool = False,
        propagation_policy: str = "",
        uid: str = "",
        resource_version: str = "",
    ) -> tuple[Message, bool]:
        """Delete an object. Returns it and whether it is gone (False: only marked)."""
        request = api_pb2.DeleteRequest(
            kind=_kind_name(kind), namespace=namespace, name=name, force=force,
            propagation_policy=propagation_policy, uid=uid, resource_version=resource_version,
        )
        if grace_period_seconds is not None:
            request.grace_period_seconds = grace_period_seconds
        response = await self._call(self._stub.Delete, request)
        return unpack(response.object), response.deleted

    async def watch(
        self,
        kind: str | kinds.Kind,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
    ) -> AsyncIterator[WatchEvent]:
        """Stream changes after resource_version (empty: current objects first).

        Raises ExpiredError when resource_version has been compacted: list
        again and watch from the list's resourceVersion.
        """
        request = api_pb2.WatchRequest(
            kind=_kind_name(kind), namespace=namespace, label_selector=label_selector,
            field_selector=field_selector, resource_version=resource_version,
        )
        call = self._stub.Watch(request)
        try:
            async for event in call:
                yield WatchEvent(event.type, unpack(event.object))
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        finally:
            call.cancel()

    async def discovery(self) -> api_pb2.DiscoveryResponse:
        return await self._call(self._stub.Discovery, api_pb2.DiscoveryRequest())

    async def logs(
        self,
        pod: str,
        *,
        namespace: str = "",
        container: str = "",
        follow: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        previous: bool = False,
        timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        """A pod's container log, in chunks of whole lines, from the agent of
        its node. ``container`` may be "" when the pod has one. With follow it
        goes on until the container stops (or the caller stops iterating)."""
        request = agent_pb2.LogsRequest(
            namespace=namespace, pod=pod, container=container, follow=follow, previous=previous,
            timestamps=timestamps)
        if tail_lines is not None:
            request.tail_lines = tail_lines
        if since_seconds is not None:
            request.since_seconds = since_seconds
        call = self._stub.Logs(request)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        finally:
            call.cancel()

    async def exec(
        self,
        pod: str,
        command: Sequence[str],
        *,
        namespace: str = "",
        container: str = "",
        stdin: AsyncIterable[bytes] | None = None,
        tty: bool = False,
    ) -> AsyncIterator[ExecOutput]:
        """Run command in a pod's container: its output as it comes, the exit
        code last. ``stdin`` is sent to the command; half-closing it is EOF. A
        runtime without streaming exec refuses stdin and tty (MethodNotAllowedError)."""
        start = agent_pb2.ExecStart(namespace=namespace, pod=pod, container=container, command=list(command),
                                    stdin=stdin is not None, tty=tty)

        async def requests() -> AsyncIterator[agent_pb2.ExecInput]:
            yield agent_pb2.ExecInput(start=start)
            if stdin is not None:
                async for data in stdin:
                    yield agent_pb2.ExecInput(stdin=data)

        call = self._stub.Exec(requests())
        try:
            async for output in call:
                which = output.WhichOneof("output")
                if which == "exit_code":
                    yield ExecOutput(exit_code=output.exit_code)
                elif which is not None:
                    yield ExecOutput(**{which: getattr(output, which)})
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        finally:
            call.cancel()

    async def top(self, kind: str, *, namespace: str = "", all_namespaces: bool = False) -> api_pb2.TopResponse:
        """Resource usage of the Ready nodes or their pods ("nodes" or "pods"),
        from their agents; nodes whose agents did not answer are in warnings."""
        request = api_pb2.TopRequest(kind=kind, namespace=namespace, all_namespaces=all_namespaces)
        return await self._call(self._stub.Top, request)

    async def access_review(
        self, *, verb: str, resource: str, group: str = "", subresource: str = "", namespace: str = "",
        name: str = "", user: str = "", groups: Sequence[str] = (),
    ) -> authorization_pb2.SubjectAccessReview:
        """May the caller (or, with user or groups, that user) do verb to resource? The answer is in
        ``status.allowed``. Asking about someone else needs create on subjectaccessreviews."""
        review = authorization_pb2.SubjectAccessReview(
            api_version="authorization.k8s.io/v1",
            kind="SubjectAccessReview" if user or groups else "SelfSubjectAccessReview")
        review.spec.resource_attributes.CopyFrom(authorization_pb2.ResourceAttributes(
            verb=verb, resource=resource, group=group, subresource=subresource, namespace=namespace, name=name))
        if user:
            review.spec.user = user
        review.spec.groups.extend(groups)
        return await self._call(self._stub.AccessReview, review)

    async def import_image(self, archive: str | os.PathLike[str], *, node: str) -> list[str]:
        """Load an image archive (OCI layout or ``docker save`` tar) into the
        containerd of node; the names of the images imported. No timeout: a
        big archive takes as long as it takes."""
        path = Path(archive)
        description = agent_pb2.ImageArchive(name=path.name, size=path.stat().st_size, node=node)
        call = self._stub.ImportImage(metadata=archive_metadata(description))
        try:
            # The bytes go only once the node has accepted the archive;
            # otherwise the call ends with the refusal.
            if accepted(await call.initial_metadata()):
                try:
                    with path.open("rb") as source:
                        while data := await asyncio.to_thread(source.read, IMAGE_CHUNK_BYTES):
                            await call.write(agent_pb2.ImageChunk(data=data))
                    await call.done_writing()
                except asyncio.InvalidStateError:
                    pass  # the call has ended; its status says how
            return list((await call).images)
        except grpc.aio.AioRpcError as err:
            raise _api_error(err) from None
        finally:
            call.cancel()
