"""TokenRequest: ``create serviceaccounts/NAME/token`` signs a token for a service account.

As Kubernetes' TokenRequest API: the request names its audiences (default:
the API's own) and lifetime (default one hour, at least ten minutes), and
may bind the token to a Pod, which must exist (with the uid given, if any)
and run as that service account; the token then dies with the pod
(control/auth/tokens.py checks that on every use). A node may ask only for
pods bound to it (Kubernetes' NodeRestriction): the authorizer has already
checked that one of its pods runs as the account, and this checks that the
bound pod is one of them. Nothing is stored.
"""

from __future__ import annotations

from datetime import datetime, timezone

from control.api import errors, kinds
from control.auth.identity import UserInfo
from control.auth.tokens import (
    API_AUDIENCE, DEFAULT_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, BoundPod, TokenSigner,
)
from control.server.resources import ResourceService
from protos.api.v1 import core_pb2


def _invalid(name: str, problem: str) -> errors.InvalidError:
    return errors.InvalidError(f'TokenRequest.authentication.k8s.io "{name}" is invalid: {problem}')


class TokenRequests:
    def __init__(self, resources: ResourceService, signer: TokenSigner, *,
                 default_audiences: tuple[str, ...] = (API_AUDIENCE,)) -> None:
        self.resources = resources
        self.signer = signer
        self.default_audiences = default_audiences

    async def create(self, *, namespace: str, name: str, request: core_pb2.TokenRequest,
                     user: UserInfo) -> core_pb2.TokenRequest:
        """The request with status.token and status.expirationTimestamp filled in."""
        spec = request.spec
        seconds = spec.expiration_seconds if spec.HasField("expiration_seconds") else DEFAULT_EXPIRATION_SECONDS
        if seconds < MIN_EXPIRATION_SECONDS:
            raise _invalid(name, f"spec.expirationSeconds: Invalid value: {seconds}: "
                                 "may not specify a duration less than 10 minutes")
        if seconds > MAX_EXPIRATION_SECONDS:
            raise _invalid(name, f"spec.expirationSeconds: Invalid value: {seconds}: "
                                 "may not specify a duration larger than 2^32 seconds")
        audiences = tuple(spec.audiences) or self.default_audiences
        if any(not audience for audience in audiences):
            raise _invalid(name, "spec.audiences: Invalid value: \"\": must not be empty")
        account = await self.resources.get(kinds.by_kind("ServiceAccount"), namespace=namespace, name=name)
        pod = await self._bound_pod(namespace, name, spec.bound_object_ref)
        node = user.node_name
        if node is not None and (pod is None or pod.spec.node_name != node):
            raise errors.ForbiddenError(
                f'serviceaccounts "{name}" is forbidden: node "{node}" may only request tokens bound to '
                'pods bound to it')
        token, expires = self.signer.issue(
            namespace=namespace, service_account=name, service_account_uid=account.metadata.uid,
            audiences=audiences, expiration_seconds=seconds,
            pod=BoundPod(pod.metadata.name, pod.metadata.uid) if pod is not None else None)
        answer = core_pb2.TokenRequest(api_version="authentication.k8s.io/v1", kind="TokenRequest")
        answer.metadata.name, answer.metadata.namespace = name, namespace
        answer.spec.CopyFrom(spec)
        answer.spec.expiration_seconds = seconds
        answer.spec.ClearField("audiences")
        answer.spec.audiences.extend(audiences)
        answer.status.token = token
        answer.status.expiration_timestamp = datetime.fromtimestamp(expires, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        return answer

    async def _bound_pod(self, namespace: str, account: str,
                         ref: core_pb2.BoundObjectReference) -> core_pb2.Pod | None:
        if not ref.kind and not ref.name:
            return None
        if ref.kind != "Pod":
            raise _invalid(account, f'spec.boundObjectRef.kind: Unsupported value: "{ref.kind}": '
                                    'supported values: "Pod"')
        if not ref.name:
            raise _invalid(account, "spec.boundObjectRef.name: Required value")
        pod = await self.resources.get(kinds.by_kind("Pod"), namespace=namespace, name=ref.name)
        if ref.uid and ref.uid != pod.metadata.uid:
            raise errors.ConflictError(
                f'the UID in the bound object reference ({ref.uid}) does not match the UID in record '
                f'({pod.metadata.uid}); the object might have been deleted and then recreated')
        if (pod.spec.service_account_name or "default") != account:
            raise errors.BadRequestError(
                f'pod "{ref.name}" runs as service account "{pod.spec.service_account_name or "default"}", '
                f'not "{account}"')
        return pod


class StoredObjects:
    """``ObjectLookup`` (control/auth/tokens.py) over the ResourceService: the token
    authenticator's check that an account or pod still exists."""

    def __init__(self, resources: ResourceService) -> None:
        self.resources = resources

    async def get(self, kind: str, *, namespace: str, name: str):
        try:
            return await self.resources.get(kinds.by_kind(kind), namespace=namespace, name=name)
        except errors.NotFoundError:
            return None
