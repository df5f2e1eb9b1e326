"""The relister (kubelet's PLEG): snapshots grouped by pod, the lifecycle
events between two snapshots, and fresh state for a worker on demand."""

from __future__ import annotations

from agent.pods.relister import (
    CONTAINER_DIED,
    CONTAINER_REMOVED,
    CONTAINER_STARTED,
    SANDBOX_CHANGED,
    PodLifecycleEvent,
    PodRelister,
    RuntimeSnapshot,
    lifecycle_events,
)
from agent.runtime.base import LABEL_POD_UID, ContainerSpec, ContainerStatus, SandboxSpec, SandboxStatus


def sandbox(uid: str, sid: str, ready: bool = True) -> SandboxStatus:
    return SandboxStatus(id=sid, pod_uid=uid, pod_name="p", namespace="default", attempt=0, ready=ready, ip="",
                         created_at=1.0)


def instance(uid: str, cid: str, state: str, sandbox_id: str = "") -> ContainerStatus:
    labels = {LABEL_POD_UID: uid} if not sandbox_id else {}
    return ContainerStatus(id=cid, sandbox_id=sandbox_id or f"sb-{uid}", name="app", attempt=0, image="x",
                           image_ref="", state=state, created_at=1.0, labels=labels)


def snapshot(sandboxes=(), containers=()) -> RuntimeSnapshot:
    return RuntimeSnapshot.build(list(sandboxes), list(containers), 0.0)


def test_a_snapshot_groups_containers_by_pod_label_or_sandbox():
    snap = snapshot([sandbox("u1", "sb-1")], [instance("u1", "a", "running"), instance("", "b", "running", "sb-1")])
    assert [c.id for c in snap.containers_of("u1")] == ["a", "b"]
    assert snap.pod_uids() == {"u1"}


def test_a_new_running_container_is_started_and_an_exited_one_died():
    old = snapshot(containers=[instance("u1", "a", "running")])
    new = snapshot(containers=[instance("u1", "a", "exited"), instance("u1", "b", "running")])
    assert sorted(lifecycle_events(old, new), key=lambda e: e.id) == [
        PodLifecycleEvent("u1", CONTAINER_DIED, "a"), PodLifecycleEvent("u1", CONTAINER_STARTED, "b")]


def test_a_container_that_went_is_removed():
    old = snapshot(containers=[instance("u1", "a", "exited")])
    assert lifecycle_events(old, snapshot()) == [PodLifecycleEvent("u1", CONTAINER_REMOVED, "a")]


def test_sandbox_changes_are_events():
    old = snapshot([sandbox("u1", "s1")])
    assert lifecycle_events(old, snapshot([sandbox("u1", "s1", ready=False)])) == [
        PodLifecycleEvent("u1", SANDBOX_CHANGED, "s1")]


def test_nothing_changed_means_no_events():
    same = snapshot([sandbox("u1", "s1")], [instance("u1", "a", "running")])
    assert lifecycle_events(same, same) == []


async def test_relisting_emits_what_changed_in_the_runtime(runtime, tmp_path):
    events: list[PodLifecycleEvent] = []
    relister = PodRelister(runtime, interval=1.0, emit=events.append)
    await relister.relist()
    spec = SandboxSpec(pod_uid="u9", pod_name="p", namespace="default", log_directory=str(tmp_path))
    box = await runtime.run_sandbox(spec)
    cid = await runtime.create_container(box.id, ContainerSpec(name="app", image="busybox:1.36", command=("true",),
                                                               labels={LABEL_POD_UID: "u9"}), spec)
    await runtime.start_container(cid)
    fresh = await relister.relist()
    assert fresh.containers_of("u9")[0].id == cid
    assert PodLifecycleEvent("u9", SANDBOX_CHANGED, box.id) in events
    assert {e.type for e in events if e.id == cid} & {CONTAINER_STARTED, CONTAINER_DIED}


async def test_newer_than_reuses_a_listing_that_began_after_the_moment(runtime):
    relister = PodRelister(runtime, interval=1.0, emit=lambda event: None)
    first = await relister.relist()
    assert await relister.newer_than(first.taken_at) is first
    later = await relister.newer_than(first.taken_at + 0.001)
    assert later is not first and later.taken_at > first.taken_at


async def test_priming_sets_a_baseline_without_events(runtime, tmp_path):
    events: list[PodLifecycleEvent] = []
    spec = SandboxSpec(pod_uid="u8", pod_name="p", namespace="default", log_directory=str(tmp_path))
    await runtime.run_sandbox(spec)
    relister = PodRelister(runtime, interval=1.0, emit=events.append)
    relister.prime(await relister.list_now())
    await relister.relist()
    assert events == []
