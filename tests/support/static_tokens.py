"""A bearer-token authenticator for tests of the API gate.

``StaticTokens`` maps tokens to users, so a plain-text test server can tell
callers apart without certificates: a call with ``authorization: Bearer
TOKEN`` is that token's user, a call without one the ``anonymous`` user (the
control service's own loopback client, when that is who it is given),
anything else unknown. It lives with the tests only: the product
authenticates with certificates and signed service-account tokens.
"""

from __future__ import annotations

from typing import Mapping

from control.auth.authenticator import Credentials
from control.auth.identity import UserInfo


class StaticTokens:
    def __init__(self, users: Mapping[str, UserInfo], *, anonymous: UserInfo | None = None) -> None:
        self.users = dict(users)
        self.anonymous = anonymous

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        if credentials.bearer_token is None:
            return self.anonymous
        return self.users.get(credentials.bearer_token)


def bearer(token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying token."""
    return (("authorization", f"Bearer {token}"),)
