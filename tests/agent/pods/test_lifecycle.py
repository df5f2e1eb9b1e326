"""A pod's life on a node, end to end: a real control service, the process
runtime (commands run on the host) and a PodManager.

Covers: Running and Ready with a pod IP; restart policies (Always with
growing back-off and CrashLoopBackOff, OnFailure, Never); init containers in
order; a failed init container under Never; a sidecar (an init container
with restartPolicy Always); graceful deletion (preStop, SIGTERM, the pod
disappears from the API); force deletion (containers killed, pod dir
removed); Events written as the agent.
"""

from __future__ import annotations

import os

from control.api.timestamps import parse_time
from tests.agent.pods.support import (
    NODE,
    condition,
    container,
    container_status,
    eventually,
    gone,
    pod_manifest,
    pod_until,
    waiting_reason,
)


async def test_a_bound_pod_becomes_running_and_ready_with_a_pod_ip(api, agent):
    await api.create(pod_manifest("web", container("app")))
    pod = await pod_until(api, "web", lambda p: p.status.phase == "Running" and condition(p, "Ready") == "True")
    status = container_status(pod, "app")
    assert status.ready and status.started and status.state.HasField("running")
    assert status.container_id.startswith("process://")
    assert status.image_id == "process://busybox:1.36"
    assert pod.status.pod_ip == "127.0.0.1" and [ip.ip for ip in pod.status.pod_ips] == ["127.0.0.1"]
    assert pod.status.host_ip == "127.0.0.1"
    assert pod.status.start_time
    assert {c.type: c.status for c in pod.status.conditions} == {
        "Initialized": "True", "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    assert pod.status.qos_class == "BestEffort"  # set by the API, kept by the agent


async def test_pods_bound_to_other_nodes_are_left_alone(api, agent):
    await api.create(pod_manifest("elsewhere", container("app"), node="node-b"))
    await api.create(pod_manifest("here", container("app")))
    await pod_until(api, "here", lambda p: p.status.phase == "Running")
    elsewhere = await api.get("Pod", "elsewhere", namespace="default")
    assert elsewhere.status.phase == "Pending" and not elsewhere.status.container_statuses


async def test_a_crashing_container_is_restarted_with_growing_back_off(api, agent, tmp_path):
    starts = tmp_path / "starts"
    await api.create(pod_manifest("crash", container("app", f"date +%s.%N >> {starts}; exit 1")))
    pod = await pod_until(api, "crash", lambda p: container_status(p, "app").restart_count >= 4, timeout=20)
    times = [float(line) for line in starts.read_text().split()]
    intervals = [b - a for a, b in zip(times, times[1:])]
    # The first restart is immediate; each later one waits at least the back-off,
    # which doubles from 0.2 s to the 0.8 s maximum.
    for interval, back_off in zip(intervals[1:4], (0.2, 0.4, 0.8)):
        assert interval >= back_off - 0.01, intervals
    assert pod.status.phase == "Running"  # restartPolicy Always: it is being restarted
    assert container_status(pod, "app").last_state.terminated.exit_code == 1


async def test_a_crash_looping_container_waits_with_reason_crash_loop_back_off(api, start_agent):
    from agent.pods import RestartBackoff

    await start_agent(backoff=RestartBackoff(initial=5.0, maximum=10.0))
    await api.create(pod_manifest("loop", container("app", "exit 2")))
    pod = await pod_until(api, "loop", lambda p: waiting_reason(p, "app") == "CrashLoopBackOff")
    status = container_status(pod, "app")
    assert status.state.waiting.message == (
        f"back-off 5s restarting failed container=app pod=loop_default({pod.metadata.uid})")
    assert status.last_state.terminated.exit_code == 2
    assert status.last_state.terminated.reason == "Error"
    assert status.restart_count == 1 and not status.ready
    assert condition(pod, "Ready") == "False"


async def test_on_failure_does_not_restart_a_container_that_succeeded(api, agent):
    await api.create(pod_manifest("job", container("app", "exit 0"), restartPolicy="OnFailure"))
    pod = await pod_until(api, "job", lambda p: p.status.phase == "Succeeded")
    status = container_status(pod, "app")
    assert status.state.terminated.exit_code == 0 and status.state.terminated.reason == "Completed"
    assert status.restart_count == 0
    assert condition(pod, "Ready") == "False"
    assert next(c for c in pod.status.conditions if c.type == "Ready").reason == "PodCompleted"


async def test_on_failure_restarts_a_failed_container_until_it_succeeds(api, agent, tmp_path):
    marker = tmp_path / "tries"
    script = f"echo x >> {marker}; test $(wc -l < {marker}) -ge 3"
    await api.create(pod_manifest("retry", container("app", script), restartPolicy="OnFailure"))
    pod = await pod_until(api, "retry", lambda p: p.status.phase == "Succeeded", timeout=20)
    assert container_status(pod, "app").restart_count == 2


async def test_never_leaves_a_failed_container_and_the_pod_fails(api, agent):
    await api.create(pod_manifest("once", container("app", "exit 3"), restartPolicy="Never"))
    pod = await pod_until(api, "once", lambda p: p.status.phase == "Failed")
    status = container_status(pod, "app")
    assert status.state.terminated.exit_code == 3 and status.restart_count == 0


async def test_a_finished_pod_keeps_its_containers_until_it_is_deleted(api, agent, runtime):
    await api.create(pod_manifest("done", container("app", "exit 0"), restartPolicy="Never"))
    pod = await pod_until(api, "done", lambda p: p.status.phase == "Succeeded")
    kept = [c for c in await runtime.list_containers() if c.labels.get("io.sampan.pod.uid") == pod.metadata.uid]
    assert [c.state for c in kept] == ["exited"]
    await api.delete("Pod", "done", namespace="default")
    await eventually(runtime.list_containers, lambda found: not any(
        c.labels.get("io.sampan.pod.uid") == pod.metadata.uid for c in found), what="containers removed")


async def test_init_containers_run_in_order_before_the_app_containers(api, agent, tmp_path):
    log = tmp_path / "order"
    await api.create(pod_manifest(
        "init", container("app", f"echo app >> {log}; exec sleep 300"),
        initContainers=[container("first", f"sleep 0.2; echo first >> {log}"),
                        container("second", f"echo second >> {log}")]))
    pod = await pod_until(api, "init", lambda p: p.status.phase == "Running")
    await eventually(lambda: _read(log), lambda text: "app" in text)
    assert log.read_text().split() == ["first", "second", "app"]
    assert condition(pod, "Initialized") == "True"
    assert [s.state.terminated.reason for s in pod.status.init_container_statuses] == ["Completed", "Completed"]
    assert all(s.ready for s in pod.status.init_container_statuses)


async def test_while_init_containers_run_the_pod_is_pending_and_initializing(api, agent):
    await api.create(pod_manifest("slow-init", container("app"), initContainers=[container("wait")]))
    pod = await pod_until(api, "slow-init", lambda p: container_status(p, "wait").state.HasField("running"))
    assert pod.status.phase == "Pending"
    assert waiting_reason(pod, "app") == "PodInitializing"
    initialized = next(c for c in pod.status.conditions if c.type == "Initialized")
    assert (initialized.status, initialized.reason) == ("False", "ContainersNotInitialized")
    assert initialized.message == "containers with incomplete status: [wait]"


async def test_a_failed_init_container_under_never_fails_the_pod(api, agent, tmp_path):
    ran = tmp_path / "ran"
    await api.create(pod_manifest("bad-init", container("app", f"touch {ran}; exec sleep 300"),
                                  initContainers=[container("setup", "exit 1")], restartPolicy="Never"))
    pod = await pod_until(api, "bad-init", lambda p: p.status.phase == "Failed")
    assert container_status(pod, "setup").state.terminated.exit_code == 1
    assert waiting_reason(pod, "app") == "PodInitializing"
    assert not ran.exists()


async def test_a_failed_init_container_is_retried_under_always(api, agent, tmp_path):
    tries = tmp_path / "tries"
    script = f"echo x >> {tries}; test $(wc -l < {tries}) -ge 2"
    await api.create(pod_manifest("retry-init", container("app"), initContainers=[container("setup", script)]))
    pod = await pod_until(api, "retry-init", lambda p: p.status.phase == "Running")
    assert container_status(pod, "setup").restart_count == 1


async def test_deleting_a_pod_stops_its_containers_gracefully_and_removes_it(api, agent, tmp_path):
    marker = tmp_path / "got-sigterm"
    script = f"trap 'echo bye > {marker}; exit 0' TERM; while true; do sleep 0.05; done"
    await api.create(pod_manifest("graceful", container("app", script)))
    pod = await pod_until(api, "graceful", lambda p: p.status.phase == "Running")
    _, deleted = await api.delete("Pod", "graceful", namespace="default")
    assert not deleted  # bound to a node: only marked; the agent confirms
    await gone(api, "graceful")
    assert marker.read_text().strip() == "bye"
    assert not any(pod.metadata.uid in entry for entry in os.listdir(agent.data_dir / "pods"))


async def test_a_pre_stop_hook_runs_before_the_container_is_stopped(api, agent, tmp_path):
    log = tmp_path / "log"
    script = f"trap 'echo term >> {log}; exit 0' TERM; while true; do sleep 0.05; done"
    hook = {"preStop": {"exec": {"command": ["sh", "-c", f"echo pre-stop >> {log}"]}}}
    await api.create(pod_manifest("hooked", container("app", script, lifecycle=hook)))
    await pod_until(api, "hooked", lambda p: p.status.phase == "Running")
    await api.delete("Pod", "hooked", namespace="default")
    await gone(api, "hooked")
    assert log.read_text().split() == ["pre-stop", "term"]


async def test_a_force_deleted_pod_has_its_containers_killed_and_its_directory_removed(api, agent, runtime):
    await api.create(pod_manifest("forced", container("app")))
    pod = await pod_until(api, "forced", lambda p: p.status.phase == "Running")
    uid = pod.metadata.uid
    await api.delete("Pod", "forced", namespace="default", grace_period_seconds=0, force=True)
    await eventually(runtime.list_containers, lambda found: not any(
        c.labels.get("io.sampan.pod.uid") == uid for c in found), what="the pod's containers removed")
    await eventually(lambda: _listdir(agent.data_dir / "pods"), lambda entries: not any(uid in e for e in entries),
                     what="the pod directory removed")


async def test_the_agent_records_events_for_what_it_does(api, agent):
    await api.create(pod_manifest("noted", container("app")))
    pod = await pod_until(api, "noted", lambda p: p.status.phase == "Running")

    async def reasons():
        events, _ = await api.list("Event", namespace="default")
        return {e.reason: e for e in events if e.involved_object.uid == pod.metadata.uid}

    found = await eventually(reasons, lambda r: {"Pulled", "Created", "Started"} <= r.keys(), what="events")
    started = found["Started"]
    assert started.message == "Started container app"
    assert started.source.component == "sampan-agent" and started.source.host == NODE
    assert started.involved_object.field_path == "spec.containers{app}"


async def test_status_start_time_is_kept_once_set(api, agent):
    await api.create(pod_manifest("steady", container("app")))
    first = await pod_until(api, "steady", lambda p: p.status.phase == "Running")
    await api.create(pod_manifest("other", container("app")))
    await pod_until(api, "other", lambda p: p.status.phase == "Running")
    again = await api.get("Pod", "steady", namespace="default")
    assert again.status.start_time == first.status.start_time
    assert parse_time(again.status.start_time) > 0


async def _read(path) -> str:
    return path.read_text() if path.exists() else ""


async def _listdir(path) -> list[str]:
    return os.listdir(path) if path.exists() else []


async def test_a_sidecar_init_container_starts_first_and_keeps_running(api, agent, tmp_path):
    log = tmp_path / "order"
    sidecar = container("proxy", f"echo proxy >> {log}; exec sleep 300", restartPolicy="Always")
    await api.create(pod_manifest("sidecar", container("app", f"echo app >> {log}; exec sleep 300"),
                                  initContainers=[sidecar]))
    pod = await pod_until(api, "sidecar", lambda p: p.status.phase == "Running"
                          and container_status(p, "app").ready and container_status(p, "proxy").ready)
    assert container_status(pod, "proxy").state.HasField("running")
    assert log.read_text().split() == ["proxy", "app"]
