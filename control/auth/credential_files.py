"""Following a renewed client certificate on disk, for processes that do not renew it themselves.

The agent renews the node's client certificate (agent/certificates.py) and
writes it to the node's PKI directory; the proxy on the same node uses the
same certificate. ``follow_client_credentials`` polls the files' times and,
when they change, switches the running client with ``Client.use_credentials``
(calls in flight finish on the old channel): no restart.
"""

from __future__ import annotations

import asyncio
import logging

from control.auth.node_pki import CLIENT, NodePKI
from control.auth.pki import load_cert
from control.client import Client

log = logging.getLogger(__name__)


async def follow_client_credentials(api: Client, pki: NodePKI, *, interval: float = 5.0) -> None:
    """Switch api to the client certificate in pki whenever its files change (a renewal by the agent)."""
    def stamp():
        try:
            return pki.files(CLIENT).stamp()
        except (OSError, ValueError):
            return None

    seen = stamp()
    while True:
        await asyncio.sleep(interval)
        current = stamp()
        if current is None or current == seen:
            continue
        try:
            credentials = pki.client_credentials()
            load_cert(credentials.cert)
        except (OSError, ValueError) as err:  # half-written: next time
            log.warning("cannot read the renewed client certificate yet: %s", err)
            continue
        seen = current
        await api.use_credentials(credentials)
        log.info("switched to the renewed client certificate in %s", pki.directory)

