"""The proxy's ``sampan.io/proxy-metrics`` annotation on its Node.

The control service's Prometheus service discovery finds each node's proxy
by this annotation (control/api/metrics_endpoints.py says why an annotation).
The agent creates the Node, so the proxy may start first: it looks for its
Node, merge-patches its one key when missing or different (never touching
the rest of the object), and looks again every ``recheck`` seconds, which
also restores the annotation after the Node is deleted and registered anew.
A failure is logged and retried at the next look; metrics never stop the
proxy from proxying.
"""

from __future__ import annotations

import asyncio
import logging

from control.api import errors
from control.api.metrics_endpoints import PROXY_METRICS
from control.client import Client

log = logging.getLogger(__name__)

FIRST_LOOK_INTERVAL = 1.0  # while the Node does not exist yet
RECHECK_INTERVAL = 60.0


async def ensure_annotation(api: Client, *, node_name: str, address: str) -> bool:
    """Patch the Node's annotation to address if needed; False if the Node does not exist."""
    try:
        node = await api.get("Node", node_name)
    except errors.NotFoundError:
        return False
    if node.metadata.annotations.get(PROXY_METRICS) != address:
        await api.patch("Node", node_name, {"metadata": {"annotations": {PROXY_METRICS: address}}})
        log.info("node %s: %s=%s", node_name, PROXY_METRICS, address)
    return True


async def keep_metrics_annotation(api: Client, *, node_name: str, address: str,
                                  recheck: float = RECHECK_INTERVAL) -> None:
    """Keep the annotation equal to address until cancelled."""
    while True:
        try:
            found = await ensure_annotation(api, node_name=node_name, address=address)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - unreachable or refused: look again later
            log.warning("cannot annotate node %s with its proxy's metrics address: %s", node_name, err)
            found = False
        await asyncio.sleep(recheck if found else min(FIRST_LOOK_INTERVAL, recheck))
