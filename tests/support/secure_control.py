"""An in-process control service with mutual TLS, and clients for users its CA signs.

``secure_service`` starts one on loopback with a PKI directory under the
test's tmp dir (the CA and the service's certificates are created there on
start); ``user_client`` connects as any user and groups, with a client
certificate issued on the spot by that CA (CN = user, O = groups).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import AsyncIterator, Sequence

from control.auth import pki
from control.client import Client, ClientCredentials
from control.service import ControlConfig, ControlService, TLSConfig


@contextlib.asynccontextmanager
async def secure_service(tmp_path: Path, *, cert_validity: dt.timedelta = pki.DEFAULT_VALIDITY
                         ) -> AsyncIterator[ControlService]:
    svc = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="",
        shutdown_grace=0.2, leader_election=None,
        tls=TLSConfig(pki_dir=tmp_path / "pki", cert_validity=cert_validity)))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


def user_credentials(svc: ControlService, name: str, groups: Sequence[str] = ()) -> ClientCredentials:
    pair = pki.issue(svc.pki.ca, common_name=name, organizations=list(groups))
    return ClientCredentials(ca=svc.pki.ca_pem, cert=pair.cert_pem, key=pair.key_pem)


def user_client(svc: ControlService, name: str, groups: Sequence[str] = (), *, timeout: float = 10) -> Client:
    """A client of svc as user name in groups (use with ``async with``)."""
    return Client.connect(f"127.0.0.1:{svc.port}", timeout=timeout, credentials=user_credentials(svc, name, groups))
