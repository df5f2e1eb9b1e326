"""The shared informer keeps a controller's own writes over stale watch events.

Events are fed to the informer's reflector by hand, in the order a lagging
watch delivers them after the controller's own write, so each case is
deterministic.
"""

from __future__ import annotations

from control.api.manifest import to_message
from control.controllers.informers import Informer


def pod(name: str, uid: str, version: int, *, deleting: bool = False):
    metadata = {"name": name, "namespace": "default", "uid": uid, "resourceVersion": str(version)}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return to_message({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                       "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}})


def informer() -> tuple[Informer, list[tuple[str | None, str | None]]]:
    seen: list[tuple[str | None, str | None]] = []
    shared = Informer(api=None, kind="Pod")  # type: ignore[arg-type]  # no list/watch runs here
    shared.add_handler(lambda old, new: seen.append((old and old.metadata.uid, new and new.metadata.uid)))
    return shared, seen


def test_an_event_from_before_a_deletion_the_controller_saw_does_not_bring_the_object_back():
    shared, seen = informer()
    shared.reflector._apply("ADDED", pod("web-0", "a", 10))
    shared.assume_deleted(pod("web-0", "a", 10))  # deleted at once (grace 0): gone from the store
    shared.reflector._apply("MODIFIED", pod("web-0", "a", 11, deleting=True))  # in flight from before
    assert shared.get("default", "web-0") is None
    shared.reflector._apply("DELETED", pod("web-0", "a", 12))
    assert shared.get("default", "web-0") is None
    assert seen == [(None, "a"), ("a", None), ("a", None)]


def test_the_deletion_event_of_an_old_object_leaves_its_successor_in_place():
    shared, _ = informer()
    shared.reflector._apply("ADDED", pod("web-0", "a", 10))
    shared.assume_deleted(pod("web-0", "a", 10))
    shared.assume(pod("web-0", "b", 13))  # created again under the name before the watch caught up
    shared.reflector._apply("MODIFIED", pod("web-0", "a", 11, deleting=True))
    shared.reflector._apply("DELETED", pod("web-0", "a", 12))
    assert shared.get("default", "web-0").metadata.uid == "b"
    shared.reflector._apply("ADDED", pod("web-0", "b", 13))
    assert shared.get("default", "web-0").metadata.uid == "b"
    assert [p.metadata.uid for p in shared.list("default")] == ["b"]


def test_an_older_event_does_not_replace_an_assumed_newer_copy():
    shared, _ = informer()
    shared.reflector._apply("ADDED", pod("web-0", "a", 10))
    shared.assume(pod("web-0", "a", 15))
    shared.reflector._apply("MODIFIED", pod("web-0", "a", 12))
    assert shared.get("default", "web-0").metadata.resource_version == "15"
    shared.reflector._apply("MODIFIED", pod("web-0", "a", 16))
    assert shared.get("default", "web-0").metadata.resource_version == "16"


def test_the_late_answer_to_a_delete_does_not_bring_back_what_the_watch_saw_deleted():
    shared, _ = informer()
    shared.reflector._apply("ADDED", pod("web-3", "a", 10))
    # The node confirmed the graceful deletion before the controller read the answer to its delete.
    shared.reflector._apply("MODIFIED", pod("web-3", "a", 11, deleting=True))
    shared.reflector._apply("DELETED", pod("web-3", "a", 12))
    shared.assume(pod("web-3", "a", 11, deleting=True))
    assert shared.get("default", "web-3") is None
    assert shared.owned_by("sts") == [] and len(shared) == 0
