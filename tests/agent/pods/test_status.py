"""compute_pod_status: the status kubelet would write, from the pod, its
runtime state, probe results and the time. A pure function: no agent, no API.

Organised by what a user reads: phase, container states, readiness and
probes, conditions and their transition times, addresses and times kept.
"""

from __future__ import annotations

from typing import Any

from agent.pods.status import ContainerProbeResults, PodRuntimeState, Waiting, compute_pod_status
from control.api.timestamps import format_time
from agent.runtime.base import ContainerStatus, SandboxStatus
from control.api import manifest
from protos.api.v1 import core_pb2

NOW = 1_700_000_000.0
HOST_IP = "10.0.0.5"


def make_pod(*containers: str, init: tuple[str, ...] = (), restart_policy: str = "Always",
             status: dict[str, Any] | None = None, **spec: Any) -> core_pb2.Pod:
    def c(name: str) -> dict[str, Any]:
        return {"name": name, "image": f"img-{name}"}

    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
           "spec": {"restartPolicy": restart_policy, "containers": [c(n) for n in containers],
                    "initContainers": [c(n) for n in init], **spec},
           "status": status or {}}
    return manifest.to_message(obj)


def sandbox(ip: str = "10.244.0.7", ready: bool = True) -> SandboxStatus:
    return SandboxStatus(id="sb", pod_uid="u1", pod_name="web", namespace="default", attempt=0, ready=ready, ip=ip,
                         created_at=NOW - 100)


def running(name: str, attempt: int = 0, *, cid: str = "", started_at: float = NOW - 50) -> ContainerStatus:
    return ContainerStatus(id=cid or f"{name}-{attempt}", sandbox_id="sb", name=name, attempt=attempt,
                           image=f"img-{name}", image_ref=f"sha256:{name}", state="running",
                           created_at=started_at - 1, started_at=started_at)


def exited(name: str, attempt: int = 0, *, code: int = 0, reason: str = "", cid: str = "") -> ContainerStatus:
    return ContainerStatus(id=cid or f"{name}-{attempt}", sandbox_id="sb", name=name, attempt=attempt,
                           image=f"img-{name}", image_ref=f"sha256:{name}", state="exited",
                           created_at=NOW - 60 + attempt, started_at=NOW - 59 + attempt,
                           finished_at=NOW - 58 + attempt, exit_code=code, reason=reason)


def created(name: str) -> ContainerStatus:
    return ContainerStatus(id=f"{name}-0", sandbox_id="sb", name=name, attempt=0, image=f"img-{name}",
                           image_ref="", state="created", created_at=NOW - 1)


def compute(pod: core_pb2.Pod, *containers: ContainerStatus, sb: SandboxStatus | None = None,
            waiting: dict[str, Waiting] | None = None, probes: dict[str, ContainerProbeResults] | None = None,
            now: float = NOW) -> core_pb2.PodStatus:
    state = PodRuntimeState(host_ip=HOST_IP, runtime_name="containerd", sandbox=sb, containers=containers,
                            waiting=waiting or {})
    return compute_pod_status(pod, state, probes or {}, now)


def of(status: core_pb2.PodStatus, name: str) -> core_pb2.ContainerStatus:
    return next(s for s in (*status.container_statuses, *status.init_container_statuses) if s.name == name)


def conditions(status: core_pb2.PodStatus) -> dict[str, str]:
    return {c.type: c.status for c in status.conditions}


def condition(status: core_pb2.PodStatus, type_: str) -> core_pb2.PodCondition:
    return next(c for c in status.conditions if c.type == type_)


# ----------------------------------------------------------------- phase

def test_a_pod_with_nothing_created_yet_is_pending_and_its_container_creating():
    status = compute(make_pod("app"))
    assert status.phase == "Pending"
    assert of(status, "app").state.waiting.reason == "ContainerCreating"
    assert not of(status, "app").ready and of(status, "app").restart_count == 0


def test_a_pod_whose_containers_all_run_is_running():
    status = compute(make_pod("app", "sidecar"), running("app"), running("sidecar"), sb=sandbox())
    assert status.phase == "Running"


def test_a_pod_with_one_container_still_waiting_is_pending():
    status = compute(make_pod("app", "sidecar"), running("app"), sb=sandbox())
    assert status.phase == "Pending"


def test_never_with_every_container_succeeded_is_succeeded():
    status = compute(make_pod("app", restart_policy="Never"), exited("app", code=0), sb=sandbox())
    assert status.phase == "Succeeded"


def test_never_with_a_failed_container_is_failed_once_all_stopped():
    pod = make_pod("a", "b", restart_policy="Never")
    assert compute(pod, exited("a", code=0), running("b"), sb=sandbox()).phase == "Running"
    assert compute(pod, exited("a", code=0), exited("b", code=1), sb=sandbox()).phase == "Failed"


def test_on_failure_with_a_failed_container_is_still_running_because_it_restarts():
    pod = make_pod("a", "b", restart_policy="OnFailure")
    backoff = {"b": Waiting("CrashLoopBackOff", "back-off 10s")}
    status = compute(pod, exited("a", code=0), exited("b", code=1), sb=sandbox(), waiting=backoff)
    assert status.phase == "Running"


def test_on_failure_with_every_container_succeeded_is_succeeded():
    status = compute(make_pod("a", restart_policy="OnFailure"), exited("a", code=0), sb=sandbox())
    assert status.phase == "Succeeded"


def test_always_with_a_crash_looping_container_is_running():
    waiting = {"app": Waiting("CrashLoopBackOff", "back-off 10s")}
    status = compute(make_pod("app"), exited("app", 1, code=1), sb=sandbox(), waiting=waiting)
    assert status.phase == "Running"


def test_succeeded_and_failed_are_final():
    pod = make_pod("app", status={"phase": "Succeeded"})
    assert compute(pod).phase == "Succeeded"
    pod = make_pod("app", status={"phase": "Failed"})
    assert compute(pod, running("app"), sb=sandbox()).phase == "Failed"


# -------------------------------------------------------- container states

def test_a_running_container_reports_its_ids_start_and_restart_count():
    status = compute(make_pod("app"), exited("app", 0, code=1), running("app", 1), sb=sandbox())
    app = of(status, "app")
    assert app.state.running.started_at == format_time(NOW - 50)
    assert app.container_id == "containerd://app-1"
    assert app.image == "img-app" and app.image_id == "sha256:app"
    assert app.restart_count == 1


def test_the_previous_instance_is_the_last_state():
    status = compute(make_pod("app"), exited("app", 0, code=137, reason="OOMKilled"), running("app", 1), sb=sandbox())
    last = of(status, "app").last_state.terminated
    assert (last.exit_code, last.reason) == (137, "OOMKilled")
    assert last.container_id == "containerd://app-0"
    assert last.finished_at == format_time(NOW - 58)


def test_only_the_newest_two_instances_are_reported():
    status = compute(make_pod("app"), exited("app", 0, code=1), exited("app", 1, code=2), running("app", 2),
                     sb=sandbox())
    assert of(status, "app").last_state.terminated.exit_code == 2
    assert of(status, "app").restart_count == 2


def test_an_exited_container_is_terminated_completed_or_error():
    pod = make_pod("ok", "bad", restart_policy="Never")
    status = compute(pod, exited("ok", code=0), exited("bad", code=2), sb=sandbox())
    assert (of(status, "ok").state.terminated.reason, of(status, "ok").state.terminated.exit_code) == ("Completed", 0)
    assert (of(status, "bad").state.terminated.reason, of(status, "bad").state.terminated.exit_code) == ("Error", 2)


def test_the_runtime_reason_wins_over_the_default_one():
    status = compute(make_pod("app", restart_policy="Never"), exited("app", code=137, reason="OOMKilled"), sb=sandbox())
    assert of(status, "app").state.terminated.reason == "OOMKilled"


def test_a_container_waiting_to_restart_shows_why_and_its_exit_as_last_state():
    waiting = {"app": Waiting("CrashLoopBackOff", "back-off 20s restarting failed container=app pod=web_default(u1)")}
    status = compute(make_pod("app"), exited("app", 0, code=1), exited("app", 1, code=3), sb=sandbox(),
                     waiting=waiting)
    app = of(status, "app")
    assert app.state.waiting.reason == "CrashLoopBackOff"
    assert app.state.waiting.message.startswith("back-off 20s")
    assert app.last_state.terminated.exit_code == 3  # the instance that just ended
    assert app.restart_count == 1 and not app.ready


def test_a_container_not_started_shows_the_agents_reason():
    waiting = {"app": Waiting("CreateContainerConfigError", 'configmap "x" not found')}
    app = of(compute(make_pod("app"), sb=sandbox(), waiting=waiting), "app")
    assert (app.state.waiting.reason, app.state.waiting.message) == ("CreateContainerConfigError",
                                                                     'configmap "x" not found')
    assert not app.HasField("container_id")


def test_image_pull_reasons_pass_through():
    for reason in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "RunContainerError"):
        app = of(compute(make_pod("app"), sb=sandbox(), waiting={"app": Waiting(reason)}), "app")
        assert app.state.waiting.reason == reason


def test_a_created_but_not_started_container_is_creating():
    assert of(compute(make_pod("app"), created("app"), sb=sandbox()), "app").state.waiting.reason == "ContainerCreating"


def test_a_stale_waiting_reason_does_not_hide_a_running_container():
    status = compute(make_pod("app"), running("app"), sb=sandbox(), waiting={"app": Waiting("CrashLoopBackOff")})
    assert of(status, "app").state.HasField("running")


def test_container_statuses_follow_the_spec_order():
    status = compute(make_pod("b", "a"), running("a"), running("b"), sb=sandbox())
    assert [s.name for s in status.container_statuses] == ["b", "a"]


# ------------------------------------------------------ readiness and probes

def test_without_probes_a_running_container_is_started_and_ready():
    app = of(compute(make_pod("app"), running("app"), sb=sandbox()), "app")
    assert app.started and app.ready


def test_a_readiness_probe_without_a_result_means_not_ready():
    pod = make_pod("app")
    pod.spec.containers[0].readiness_probe.exec.command.append("true")
    app = of(compute(pod, running("app"), sb=sandbox()), "app")
    assert app.started and not app.ready
    ready = of(compute(pod, running("app"), sb=sandbox(), probes={"app-0": ContainerProbeResults(ready=True)}), "app")
    assert ready.ready


def test_a_startup_probe_holds_started_and_ready():
    pod = make_pod("app")
    pod.spec.containers[0].startup_probe.exec.command.append("true")
    app = of(compute(pod, running("app"), sb=sandbox(), probes={"app-0": ContainerProbeResults(ready=True)}), "app")
    assert not app.started and not app.ready
    app = of(compute(pod, running("app"), sb=sandbox(), probes={"app-0": ContainerProbeResults(started=True)}), "app")
    assert app.started and app.ready


def test_probe_results_belong_to_one_instance():
    pod = make_pod("app")
    pod.spec.containers[0].readiness_probe.exec.command.append("true")
    results = {"app-0": ContainerProbeResults(ready=True)}  # the old instance's result
    app = of(compute(pod, exited("app", 0, code=1), running("app", 1), sb=sandbox(), probes=results), "app")
    assert not app.ready


# ------------------------------------------------------------- conditions

def test_conditions_of_a_ready_pod():
    status = compute(make_pod("app"), running("app"), sb=sandbox())
    assert conditions(status) == {"Initialized": "True", "Ready": "True", "ContainersReady": "True",
                                  "PodScheduled": "True"}


def test_unready_containers_are_named_in_the_ready_conditions():
    status = compute(make_pod("a", "b"), running("a"), sb=sandbox())
    for type_ in ("Ready", "ContainersReady"):
        cond = condition(status, type_)
        assert (cond.status, cond.reason) == ("False", "ContainersNotReady")
        assert cond.message == "containers with unready status: [b]"


def test_a_completed_pod_is_not_ready_with_reason_pod_completed():
    status = compute(make_pod("app", restart_policy="Never"), exited("app", code=0), sb=sandbox())
    assert (condition(status, "Ready").status, condition(status, "Ready").reason) == ("False", "PodCompleted")
    assert condition(status, "ContainersReady").reason == "PodCompleted"


def test_transition_times_are_kept_while_a_condition_holds_and_renewed_when_it_flips():
    first = compute(make_pod("app"), running("app"), sb=sandbox(), now=NOW)
    pod = make_pod("app")
    pod.status.CopyFrom(first)
    same = compute(pod, running("app"), sb=sandbox(), now=NOW + 60)
    assert condition(same, "Ready").last_transition_time == format_time(NOW)
    flipped = compute(pod, sb=sandbox(), now=NOW + 60)
    assert condition(flipped, "Ready").last_transition_time == format_time(NOW + 60)
    assert condition(flipped, "Initialized").last_transition_time == format_time(NOW)


def test_readiness_gates_hold_ready_until_their_condition_is_true():
    pod = make_pod("app", readinessGates=[{"conditionType": "example.com/lb"}],
                   status={"conditions": [{"type": "example.com/lb", "status": "False"}]})
    status = compute(pod, running("app"), sb=sandbox())
    assert condition(status, "ContainersReady").status == "True"
    assert (condition(status, "Ready").status, condition(status, "Ready").reason) == ("False", "ReadinessGatesNotReady")
    assert condition(status, "example.com/lb").status == "False"  # kept: not the agent's to change
    pod.status.conditions[0].status = "True"
    assert condition(compute(pod, running("app"), sb=sandbox()), "Ready").status == "True"


def test_the_schedulers_pod_scheduled_condition_is_kept():
    pod = make_pod("app", status={"conditions": [{"type": "PodScheduled", "status": "True",
                                                  "lastTransitionTime": "2020-01-01T00:00:00Z"}]})
    assert condition(compute(pod), "PodScheduled").last_transition_time == "2020-01-01T00:00:00Z"


# -------------------------------------------------------- init containers

def test_while_an_init_container_runs_the_pod_is_pending_and_not_initialized():
    status = compute(make_pod("app", init=("first", "second")), running("first"), sb=sandbox())
    assert status.phase == "Pending"
    assert of(status, "second").state.waiting.reason == "PodInitializing"
    assert of(status, "app").state.waiting.reason == "PodInitializing"
    initialized = condition(status, "Initialized")
    assert (initialized.status, initialized.reason) == ("False", "ContainersNotInitialized")
    assert initialized.message == "containers with incomplete status: [first second]"


def test_completed_init_containers_are_ready_and_the_pod_initialized():
    status = compute(make_pod("app", init=("first",)), exited("first"), running("app"), sb=sandbox())
    assert condition(status, "Initialized").status == "True"
    assert of(status, "first").ready and of(status, "first").state.terminated.reason == "Completed"
    assert status.phase == "Running"


def test_a_failed_init_container_fails_the_pod_under_never():
    status = compute(make_pod("app", init=("setup",), restart_policy="Never"), exited("setup", code=1), sb=sandbox())
    assert status.phase == "Failed"
    assert of(status, "app").state.waiting.reason == "PodInitializing"


def test_a_failed_init_container_backing_off_keeps_the_pod_pending_under_always():
    waiting = {"setup": Waiting("CrashLoopBackOff")}
    status = compute(make_pod("app", init=("setup",)), exited("setup", code=1), sb=sandbox(), waiting=waiting)
    assert status.phase == "Pending"
    assert of(status, "setup").state.waiting.reason == "CrashLoopBackOff"


def test_a_running_sidecar_counts_as_initialized_and_must_be_ready():
    pod = make_pod("app", init=("proxy",))
    pod.spec.init_containers[0].restart_policy = "Always"
    status = compute(pod, running("proxy"), running("app"), sb=sandbox())
    assert condition(status, "Initialized").status == "True"
    assert status.phase == "Running" and condition(status, "Ready").status == "True"


# ------------------------------------------------- addresses and kept fields

def test_the_pod_ip_is_the_sandboxs_and_the_host_ip_the_nodes():
    status = compute(make_pod("app"), running("app"), sb=sandbox(ip="10.244.0.9"))
    assert status.pod_ip == "10.244.0.9" and [ip.ip for ip in status.pod_ips] == ["10.244.0.9"]
    assert status.host_ip == HOST_IP and [ip.ip for ip in status.host_ips] == [HOST_IP]


def test_a_host_network_pod_has_the_nodes_ip():
    status = compute(make_pod("app", hostNetwork=True), running("app"), sb=sandbox(ip=""))
    assert status.pod_ip == HOST_IP


def test_the_pod_ip_is_kept_when_the_sandbox_no_longer_reports_one():
    pod = make_pod("app", restart_policy="Never", status={"podIP": "10.244.0.7"})
    status = compute(pod, exited("app"), sb=sandbox(ip="", ready=False))
    assert status.pod_ip == "10.244.0.7"


def test_start_time_is_set_once_and_kept():
    assert compute(make_pod("app")).start_time == format_time(NOW)
    pod = make_pod("app", status={"startTime": "2020-01-01T00:00:00Z"})
    assert compute(pod).start_time == "2020-01-01T00:00:00Z"


def test_the_qos_class_set_by_the_api_is_kept():
    pod = make_pod("app", status={"qosClass": "Burstable"})
    assert compute(pod).qos_class == "Burstable"


def test_the_same_inputs_give_the_same_status():
    pod = make_pod("app", init=("first",))
    a = compute(pod, exited("first"), running("app"), sb=sandbox())
    b = compute(pod, exited("first"), running("app"), sb=sandbox())
    assert a == b
