"""Service account tokens for the pods on this node.

Every pod runs as a service account; unless the pod (or, when the pod does
not say, its account) sets ``automountServiceAccountToken: false``, the
agent puts the account's credentials where Kubernetes clients look for them,
read-only in every container:

    /var/run/secrets/kubernetes.io/serviceaccount/token      a token bound to the pod
    /var/run/secrets/kubernetes.io/serviceaccount/ca.crt     the cluster CA the agent trusts
    /var/run/secrets/kubernetes.io/serviceaccount/namespace  the pod's namespace

(volumes.py publishes them like any projected volume, and a projected
``serviceAccountToken`` source gets its token here too.) A runtime that
applies no mounts (the process runtime) cannot put them at that path, so its
containers get the directory where they really are in the environment
variable ``SAMPAN_SERVICE_ACCOUNT_DIR`` (``TOKEN_DIR_ENV``); a program that
reads ``${SAMPAN_SERVICE_ACCOUNT_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}``
works on both. The variable is not set where the mount is applied (containerd). Tokens come from the
API's TokenRequest, bound to the pod, for an hour unless asked otherwise, and
are kept per (pod, audience, lifetime); a token past 80% of its life is
replaced at the pod's next sync, which rewrites the file in place (the pod's
periodic resync is far shorter than the fifth of a lifetime left).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

from control.api import errors
from agent.runtime.base import Mount
from control.client import Client
from protos.api.v1 import core_pb2

TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# Where the token directory is, for containers of a runtime that applies no mounts.
TOKEN_DIR_ENV = "SAMPAN_SERVICE_ACCOUNT_DIR"
# The volume the agent adds for it (a user volume of this name wins, and then nothing is added).
TOKEN_VOLUME = "kube-api-access"
DEFAULT_EXPIRATION_SECONDS = 3600
REFRESH_AT = 0.8


class TokenError(Exception):
    """No token can be had for the pod now (the account is missing, the API refuses)."""


@dataclass(frozen=True, slots=True)
class _Held:
    token: str
    issued: float
    expires: float


def token_dir_env(mounts: Iterable[Mount]) -> dict[str, str]:
    """{TOKEN_DIR_ENV: host directory} when a mount puts something at the token path, else {}."""
    for mount in mounts:
        if mount.container_path.rstrip("/") == TOKEN_MOUNT_PATH:
            return {TOKEN_DIR_ENV: mount.host_path}
    return {}


def account_of(pod: core_pb2.Pod) -> str:
    return pod.spec.service_account_name or pod.spec.service_account or "default"


class ServiceAccountTokens:
    def __init__(self, api: Client, *, clock: Callable[[], float] = time.time) -> None:
        self._api = api
        self._clock = clock
        self._held: dict[tuple[str, str, int], _Held] = {}
        self._automount: dict[str, bool] = {}

    @property
    def cluster_ca(self) -> bytes:
        """The CA the agent's own client trusts (empty over plain text)."""
        credentials = getattr(self._api, "credentials", None)
        return (getattr(credentials, "ca", None) or b"") if credentials is not None else b""

    async def automount(self, pod: core_pb2.Pod) -> bool:
        """Whether the pod gets the token mounted: its own setting, else its account's (default yes)."""
        if pod.spec.HasField("automount_service_account_token"):
            return pod.spec.automount_service_account_token
        uid = pod.metadata.uid
        if uid not in self._automount:
            try:
                account = await self._api.get("ServiceAccount", account_of(pod), namespace=pod.metadata.namespace)
            except errors.NotFoundError:
                raise TokenError(f'serviceaccount "{account_of(pod)}" not found') from None
            except errors.APIError as err:
                raise TokenError(f"cannot read the pod's service account: {err}") from None
            self._automount[uid] = not (account.HasField("automount_service_account_token")
                                        and not account.automount_service_account_token)
        return self._automount[uid]

    async def token(self, pod: core_pb2.Pod, *, audience: str = "",
                    expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS) -> str:
        """A current token for the pod's account, bound to the pod; requested anew past 80% of its life."""
        key = (pod.metadata.uid, audience, expiration_seconds)
        held = self._held.get(key)
        now = self._clock()
        if held is not None and now < held.issued + REFRESH_AT * (held.expires - held.issued):
            return held.token
        try:
            answer = await self._api.create_token(
                account_of(pod), namespace=pod.metadata.namespace, audiences=[audience] if audience else [],
                expiration_seconds=expiration_seconds, bound_pod=(pod.metadata.name, pod.metadata.uid))
        except errors.APIError as err:
            if held is not None and now < held.expires:
                return held.token  # keep the one still valid; the next sync asks again
            raise TokenError(f'cannot get a token for serviceaccount "{account_of(pod)}": {err}') from None
        lifetime = answer.spec.expiration_seconds or expiration_seconds
        self._held[key] = _Held(answer.status.token, now, now + lifetime)
        return answer.status.token

    def expiry(self, uid: str) -> float | None:
        """When the soonest token held for the pod runs out (epoch seconds), if any."""
        times = [held.expires for (pod_uid, _, _), held in self._held.items() if pod_uid == uid]
        return min(times) if times else None

    def forget(self, uid: str) -> None:
        self._automount.pop(uid, None)
        for key in [key for key in self._held if key[0] == uid]:
            del self._held[key]
