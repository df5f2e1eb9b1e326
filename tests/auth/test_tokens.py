"""Service account tokens: what the signer issues, and what the authenticator
accepts (a good signature, the API's audience, a current lifetime, an account
and bound pod that still exist with the uids in the token) or refuses."""

from __future__ import annotations

import base64
import json
import stat

import pytest

from control.api import errors
from control.auth.authenticator import Credentials
from control.auth.identity import SERVICE_ACCOUNTS_GROUP
from control.auth.tokens import (
    API_AUDIENCE, BoundPod, InvalidTokenError, ServiceAccountTokenAuthenticator, TokenSigner, load_or_create_key,
)
from protos.api.v1 import core_pb2


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Objects:
    """The stored objects the authenticator looks up."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str, str], object] = {}

    def put(self, kind: str, namespace: str, name: str, uid: str) -> None:
        obj = core_pb2.ServiceAccount() if kind == "ServiceAccount" else core_pb2.Pod()
        obj.metadata.name, obj.metadata.namespace, obj.metadata.uid = name, namespace, uid
        self.stored[(kind, namespace, name)] = obj

    async def get(self, kind: str, *, namespace: str, name: str):
        return self.stored.get((kind, namespace, name))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(clock) -> TokenSigner:
    return TokenSigner.ephemeral(clock=clock)


@pytest.fixture
def objects() -> Objects:
    found = Objects()
    found.put("ServiceAccount", "shop", "builder", "sa-uid")
    found.put("Pod", "shop", "web-1", "pod-uid")
    return found


def _issue(signer: TokenSigner, **overrides) -> str:
    options = dict(namespace="shop", service_account="builder", service_account_uid="sa-uid",
                   audiences=[API_AUDIENCE], expiration_seconds=3600, pod=BoundPod("web-1", "pod-uid"))
    options.update(overrides)
    token, _ = signer.issue(**options)
    return token


def _claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_a_token_carries_the_kubernetes_claims(signer, clock):
    token, expires = signer.issue(namespace="shop", service_account="builder", service_account_uid="sa-uid",
                                  audiences=["vault"], expiration_seconds=600, pod=BoundPod("web-1", "pod-uid"))
    claims = _claims(token)
    assert claims["sub"] == "system:serviceaccount:shop:builder"
    assert claims["aud"] == ["vault"] and claims["iss"] == signer.issuer
    assert claims["iat"] == claims["nbf"] == int(clock.now) and claims["exp"] == expires == int(clock.now) + 600
    assert claims["kubernetes.io"] == {"namespace": "shop", "serviceaccount": {"name": "builder", "uid": "sa-uid"},
                                       "pod": {"name": "web-1", "uid": "pod-uid"}}


def test_verify_accepts_a_good_token_and_names_its_account(signer):
    claims = signer.verify(_issue(signer), audiences=[API_AUDIENCE])
    assert (claims.namespace, claims.service_account, claims.pod) == ("shop", "builder", BoundPod("web-1", "pod-uid"))


def test_verify_refuses_an_expired_token(signer, clock):
    token = _issue(signer, expiration_seconds=600)
    clock.now += 600
    with pytest.raises(InvalidTokenError, match="expired"):
        signer.verify(token, audiences=[API_AUDIENCE])


def test_verify_refuses_another_audience(signer):
    with pytest.raises(InvalidTokenError, match="audiences"):
        signer.verify(_issue(signer, audiences=["vault"]), audiences=[API_AUDIENCE])


def test_verify_refuses_a_token_signed_with_another_key(signer, clock):
    forged = _issue(TokenSigner.ephemeral(clock=clock))
    with pytest.raises(InvalidTokenError, match="signature"):
        signer.verify(forged, audiences=[API_AUDIENCE])


def test_verify_refuses_changed_claims(signer):
    header, _, signature = _issue(signer).split(".")
    claims = _claims(_issue(signer))
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidTokenError, match="signature"):
        signer.verify(f"{header}.{body}.{signature}", audiences=[API_AUDIENCE])


async def test_the_authenticator_gives_the_service_account_identity(signer, objects):
    user = await ServiceAccountTokenAuthenticator(signer, objects).authenticate(Credentials(bearer_token=_issue(signer)))
    assert user.name == "system:serviceaccount:shop:builder"
    assert user.service_account == ("shop", "builder")
    assert {SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:shop", "system:authenticated"} <= set(user.groups)


async def test_the_authenticator_ignores_what_is_not_its_token(signer, objects):
    authenticator = ServiceAccountTokenAuthenticator(signer, objects)
    assert await authenticator.authenticate(Credentials()) is None
    assert await authenticator.authenticate(Credentials(bearer_token="abcdef.0123456789abcdef")) is None


async def test_a_deleted_service_account_revokes_its_tokens(signer, objects):
    token = _issue(signer)
    del objects.stored[("ServiceAccount", "shop", "builder")]
    with pytest.raises(errors.UnauthorizedError, match='service account "shop/builder" no longer exists'):
        await ServiceAccountTokenAuthenticator(signer, objects).authenticate(Credentials(bearer_token=token))


async def test_a_recreated_service_account_does_not_accept_the_old_tokens(signer, objects):
    token = _issue(signer)
    objects.put("ServiceAccount", "shop", "builder", "another-uid")
    with pytest.raises(errors.UnauthorizedError):
        await ServiceAccountTokenAuthenticator(signer, objects).authenticate(Credentials(bearer_token=token))


async def test_a_deleted_pod_revokes_the_tokens_bound_to_it(signer, objects):
    token = _issue(signer)
    del objects.stored[("Pod", "shop", "web-1")]
    with pytest.raises(errors.UnauthorizedError, match='pod "shop/web-1" no longer exists'):
        await ServiceAccountTokenAuthenticator(signer, objects).authenticate(Credentials(bearer_token=token))


async def test_an_expired_token_is_unauthenticated(signer, objects, clock):
    token = _issue(signer, expiration_seconds=600)
    clock.now += 3600
    with pytest.raises(errors.UnauthorizedError, match="expired"):
        await ServiceAccountTokenAuthenticator(signer, objects).authenticate(Credentials(bearer_token=token))


def test_the_signing_key_is_made_once_and_kept_private(tmp_path, clock):
    path = tmp_path / "pki" / "sa.key"
    first = TokenSigner(load_or_create_key(path), clock=clock)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = TokenSigner.from_file(path, clock=clock)
    assert again.key_id == first.key_id
    assert again.verify(_issue(first), audiences=[API_AUDIENCE]).service_account == "builder"
