"""Authentication: the identity a request proves.

The gate (control/server/gate.py) reads what a request carries into
``Credentials``: the client certificate the TLS handshake verified against
the cluster CA (grpc has already refused one from another CA, or an expired
one), and a bearer token from the ``authorization`` metadata. An
``Authenticator`` turns them into a ``UserInfo`` or says it does not know them
(None). ``Chain`` asks several in turn.

``PlaintextAuthenticator`` is for a service started with
``--insecure-plaintext``: there is nothing to prove, so every caller is an
administrator (as Kubernetes' old insecure port was).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from control.auth.identity import PLAINTEXT_ADMIN, UserInfo

AUTHORIZATION_METADATA = "authorization"
BEARER_PREFIX = "Bearer "


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one request carries. peer_certificate: the verified client
    certificate (PEM), None without TLS or without one."""

    peer_certificate: bytes | None = None
    bearer_token: str | None = None


class Authenticator(Protocol):
    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        """The identity the credentials prove, or None when this authenticator
        does not recognise them. Raises errors.UnauthorizedError for credentials
        it recognises as its own but refuses (an expired token), with the reason."""
        ...


class PlaintextAuthenticator:
    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        return PLAINTEXT_ADMIN


class Chain:
    """The first authenticator that knows the credentials decides."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self.authenticators = list(authenticators)

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        for authenticator in self.authenticators:
            user = await authenticator.authenticate(credentials)
            if user is not None:
                return user
        return None


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an ``authorization: Bearer TOKEN`` metadata entry, if any."""
    for key, value in metadata or ():
        if key.lower() == AUTHORIZATION_METADATA and isinstance(value, str) and value.startswith(BEARER_PREFIX):
            return value[len(BEARER_PREFIX):].strip() or None
    return None
