"""Event expiry deletes Events older than the TTL and keeps recent ones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from control.controllers.events import delete_expired_events
from protos.api.v1 import core_pb2
from tests.server.test_api import make_pod


def make_event(name: str, last: datetime) -> core_pb2.Event:
    event = core_pb2.Event(api_version="v1", kind="Event")
    event.metadata.name = name
    event.metadata.namespace = "default"
    event.involved_object.kind = "Pod"
    event.involved_object.name = "web"
    event.reason = "Test"
    event.last_timestamp = last.strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


async def test_events_older_than_the_ttl_are_deleted(api):
    now = datetime.now(timezone.utc)
    await api.create(make_event("old", now - timedelta(hours=2)))
    await api.create(make_event("recent", now - timedelta(minutes=5)))
    assert await delete_expired_events(api, ttl=3600, now=now) == 1
    names = [e.metadata.name for e in (await api.list("Event", namespace="default"))[0]]
    assert names == ["recent"]
