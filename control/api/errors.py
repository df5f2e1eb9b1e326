"""API errors: one exception per Kubernetes StatusReason, each with its gRPC code.

The server raises these; the servicer turns them into a gRPC status whose
trailing metadata ``sampan-reason`` carries the reason; the client turns that
back into the same exception class. So both sides speak one vocabulary.
"""

from __future__ import annotations

import grpc

REASON_METADATA_KEY = "sampan-reason"
RETRY_AFTER_METADATA_KEY = "retry-after"


class APIError(Exception):
    """An error answered by the API. ``reason`` is Kubernetes' StatusReason."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "Unknown"
    # kubectl's prefix: 'Error from server (NotFound): ...'
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequestError(APIError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "BadRequest"


class InvalidError(APIError):
    """The object failed validation; the message lists every bad field path."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "Invalid"


class NotFoundError(APIError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NotFound"


class AlreadyExistsError(APIError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "AlreadyExists"


class ConflictError(APIError):
    """A write whose resourceVersion precondition is stale (Kubernetes' 409)."""

    code = grpc.StatusCode.ABORTED
    reason = "Conflict"


class ExpiredError(APIError):
    """A watch from a compacted resourceVersion (Kubernetes' 410 Gone)."""

    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "Expired"


class ForbiddenError(APIError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "Forbidden"


class UnauthorizedError(APIError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "Unauthorized"


class RequestTooLargeError(APIError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RequestEntityTooLarge"


class TooManyRequestsError(APIError):
    """Over a fairness bound: nothing was done; try again after retry_after_seconds
    (sent as the ``retry-after`` trailing metadata, as HTTP's Retry-After)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TooManyRequests"

    def __init__(self, message: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class PreconditionError(APIError):
    """The namespace is terminating, or the object may not change that way."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "Forbidden"


class MethodNotAllowedError(APIError):
    """The server does not support what the request asks for (exec with stdin
    on a runtime without streaming exec): Kubernetes' MethodNotAllowed, gRPC's
    UNIMPLEMENTED."""

    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "MethodNotAllowed"


class UnavailableError(APIError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "ServiceUnavailable"


class InternalError(APIError):
    code = grpc.StatusCode.INTERNAL
    reason = "InternalError"


_BY_REASON_AND_CODE: dict[tuple[str, grpc.StatusCode], type[APIError]] = {
    (cls.reason, cls.code): cls
    for cls in (
        BadRequestError, InvalidError, NotFoundError, AlreadyExistsError, ConflictError,
        ExpiredError, ForbiddenError, UnauthorizedError, RequestTooLargeError,
        TooManyRequestsError, PreconditionError, MethodNotAllowedError, UnavailableError, InternalError,
    )
}
_BY_CODE: dict[grpc.StatusCode, type[APIError]] = {}
for (_reason, _code), _cls in _BY_REASON_AND_CODE.items():
    _BY_CODE.setdefault(_code, _cls)


def from_status(code: grpc.StatusCode, message: str, reason: str | None) -> APIError:
    """Rebuild the exception a server raised from a gRPC status."""
    cls = _BY_REASON_AND_CODE.get((reason or "", code)) or _BY_CODE.get(code, APIError)
    err = cls(message)
    if cls is APIError:
        err.code = code
        err.reason = reason or code.name.title().replace("_", "")
    return err
