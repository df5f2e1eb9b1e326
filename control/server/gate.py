"""The gate every API request passes: authenticate, admit, authorize, admission, audit.

``RequestGate.begin`` turns a call's context into a ``RequestInfo`` (who is
asking, for which verb); the servicer fills in what the request is about
(kind, namespace, name) once it has decoded it and calls ``authorize``; the
wrapper that runs the handler holds ``admit`` around it (the fairness bound)
and calls ``finish`` with the result, which writes the audit record. Writes
also pass ``admission``: the servicer hands ``admission_for(info)`` to the
ResourceService, which calls it with the object about to be stored (after
defaulting and validation, so a patch is judged by its result) and the
stored one; it may refuse (escalation prevention, control/auth/escalation.py).
The parts are control/auth's; this module only puts them in order (see
control/auth/__init__.py for the order and why).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Protocol

import grpc
from google.protobuf.message import Message

from control.api import errors, kinds
from control.auth.authenticator import Authenticator, Credentials, PlaintextAuthenticator, bearer_token
from control.auth.authorizer import AlwaysAllow, Attributes, Authorizer, forbidden
from control.auth.identity import UserInfo


@dataclass(slots=True)
class RequestInfo:
    """One request as the gate sees it; the servicer fills kind..object in."""

    user: UserInfo
    verb: str
    kind: kinds.Kind | None = None
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    field_selector: str = ""
    # The decoded request object, for an audit log at level "request".
    object: Message | None = None
    started: float = field(default_factory=time.perf_counter)

    def attributes(self) -> Attributes:
        kind = self.kind
        return Attributes(user=self.user, verb=self.verb, resource=kind.plural if kind else "",
                          api_group=kind.group if kind else "", subresource=self.subresource,
                          namespace=self.namespace if (kind is None or kind.namespaced) else "",
                          name=self.name, field_selector=self.field_selector)


class Limiter(Protocol):
    def admit(self, user: UserInfo) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold a place for one request of user; raise errors.TooManyRequestsError when none is free."""
        ...


class Admission(Protocol):
    async def admit(self, user: UserInfo, kind: kinds.Kind, new: Message, old: Message | None) -> None:
        """Called before new is stored (old: the stored object, None on create), after
        authorization, defaulting and validation; raise an errors.APIError to refuse the write.
        May be called again for the same request when the write is retried after a conflict."""
        ...


# What ResourceService calls before it stores an object: admit(new, old).
AdmitWrite = Callable[[Message, "Message | None"], Awaitable[None]]


class AuditSink(Protocol):
    def record(self, info: RequestInfo, code: grpc.StatusCode) -> None:
        """Record a finished request (the sink decides which verbs and how much)."""
        ...


class RequestGate:
    def __init__(self, *, authenticator: Authenticator | None = None, authorizer: Authorizer | None = None,
                 limiter: Limiter | None = None, audit: AuditSink | None = None,
                 admission: Admission | None = None) -> None:
        self.authenticator = authenticator or PlaintextAuthenticator()
        self.authorizer = authorizer or AlwaysAllow()
        self.limiter = limiter
        self.audit = audit
        self.admission = admission

    async def begin(self, context: grpc.aio.ServicerContext, verb: str) -> RequestInfo:
        """Who is asking; errors.UnauthorizedError when nothing proves it."""
        user = await self.authenticator.authenticate(credentials_of(context))
        if user is None:
            raise errors.UnauthorizedError(
                "Unauthorized: the request carries no client certificate or token that this cluster accepts")
        return RequestInfo(user=user, verb=verb)

    @contextlib.asynccontextmanager
    async def admit(self, info: RequestInfo) -> AsyncIterator[None]:
        if self.limiter is None:
            yield
            return
        async with self.limiter.admit(info.user):
            yield

    async def authorize(self, info: RequestInfo) -> None:
        """Raise errors.ForbiddenError unless an authorizer allows the request."""
        attrs = info.attributes()
        decision = await self.authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)

    def admission_for(self, info: RequestInfo) -> AdmitWrite | None:
        """The admission step for this (authorized) write, or None when there is none."""
        admission, kind = self.admission, info.kind
        if admission is None or kind is None:
            return None

        async def admit(new: Message, old: Message | None) -> None:
            await admission.admit(info.user, kind, new, old)

        return admit

    def finish(self, info: RequestInfo | None, code: grpc.StatusCode) -> None:
        if self.audit is not None and info is not None:
            self.audit.record(info, code)


def credentials_of(context: grpc.aio.ServicerContext) -> Credentials:
    certificate = None
    auth = context.auth_context() or {}
    pems = auth.get("x509_pem_cert")
    if pems:
        certificate = pems[0]
    return Credentials(peer_certificate=certificate, bearer_token=bearer_token(context.invocation_metadata()))
