"""Event expiry: Events are deleted a while after they last happened.

Kubernetes gives every Event a one-hour lease in etcd. Sampan's stores have no
per-key TTL, so this loop does the same: it sweeps the Events every tenth of
the TTL (at most once a minute) and deletes those whose last occurrence is
older than the TTL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from control.api import errors
from control.client import Client

log = logging.getLogger(__name__)


def last_seen(event) -> datetime | None:
    for stamp in (event.last_timestamp, event.event_time, event.metadata.creation_timestamp):
        if stamp:
            try:
                return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


async def delete_expired_events(api: Client, *, ttl: float, now: datetime | None = None) -> int:
    """Delete every Event last seen more than ttl seconds ago; returns how many."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(seconds=ttl)
    events, _ = await api.list("Event")
    deleted = 0
    for event in events:
        seen = last_seen(event)
        if seen is not None and seen < cutoff:
            try:
                await api.delete("Event", event.metadata.name, namespace=event.metadata.namespace)
                deleted += 1
            except errors.NotFoundError:
                pass
    return deleted


async def expire_events(api: Client, *, ttl: float) -> None:
    """Sweep expired Events until cancelled."""
    interval = min(max(ttl / 10, 0.05), 60.0)
    while True:
        await asyncio.sleep(interval)
        try:
            count = await delete_expired_events(api, ttl=ttl)
            if count:
                log.info("deleted %d expired events", count)
        except errors.APIError as err:
            log.warning("event expiry sweep failed: %s", err)
