"""Table output of ``get``: kubectl's pod STATUS/READY/RESTARTS logic, node
STATUS and ROLES, the other kinds' columns, and table layout (NAME first,
AGE last, NAMESPACE first with -A, kind-prefixed names, LABELS, alignment)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from control.api import kinds, manifest
from control.cli import printers

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
CREATED = "2024-05-01T11:59:00Z"  # 60s before NOW
POD = kinds.by_kind("Pod")


def pod(name: str = "web", *, containers: int = 1, init_containers: int = 0, status: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None, spec: dict[str, Any] | None = None):
    return manifest.to_message({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": CREATED, **(metadata or {})},
        "spec": {
            "containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)],
            **({"initContainers": [{"name": f"i{i}", "image": "busybox"} for i in range(init_containers)]}
               if init_containers else {}),
            **(spec or {}),
        },
        "status": status or {},
    })


def running(name: str = "c0", *, ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts,
            "state": {"running": {"startedAt": CREATED}}}


def waiting(reason: str, name: str = "c0", *, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}}


def terminated(reason: str = "", name: str = "c0", *, exit_code: int = 0, signal: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "finishedAt": CREATED}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


# ------------------------------------------------------------- pod status


def test_a_pod_without_status_is_pending():
    summary = printers.pod_summary(pod())
    assert (summary.status, summary.ready, summary.total) == ("Pending", 0, 1)


def test_a_pod_shows_its_phase():
    assert printers.pod_summary(pod(status={"phase": "Running"})).status == "Running"


def test_ready_counts_ready_running_containers_out_of_all():
    summary = printers.pod_summary(pod(containers=3, status={"phase": "Running", "containerStatuses": [
        running("c0"), running("c1", ready=False), running("c2")]}))
    assert (summary.ready, summary.total) == (2, 3)


def test_a_waiting_container_reason_replaces_the_phase():
    status = {"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}
    assert printers.pod_summary(pod(status=status)).status == "ContainerCreating"


def test_crash_loop_back_off_shows_with_restarts():
    status = {"phase": "Running", "containerStatuses": [waiting("CrashLoopBackOff", restarts=4)]}
    summary = printers.pod_summary(pod(status=status))
    assert (summary.status, summary.restarts) == ("CrashLoopBackOff", 4)


def test_a_terminated_container_shows_its_reason():
    status = {"phase": "Succeeded", "containerStatuses": [terminated("Completed")]}
    assert printers.pod_summary(pod(status=status)).status == "Completed"


def test_a_terminated_container_without_reason_shows_its_exit_code_or_signal():
    assert printers.pod_summary(pod(status={"containerStatuses": [terminated(exit_code=3)]})).status == "ExitCode:3"
    assert printers.pod_summary(pod(status={"containerStatuses": [terminated(signal=9)]})).status == "Signal:9"


def test_completed_with_a_container_still_running_is_running_when_ready():
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
              "containerStatuses": [terminated("Completed", "c0"), running("c1")]}
    assert printers.pod_summary(pod(containers=2, status=status)).status == "Running"


def test_completed_with_a_container_still_running_is_not_ready_otherwise():
    status = {"phase": "Running", "containerStatuses": [terminated("Completed", "c0"), running("c1")]}
    assert printers.pod_summary(pod(containers=2, status=status)).status == "NotReady"


def test_init_containers_in_progress_show_how_many_are_done():
    status = {"phase": "Pending", "initContainerStatuses": [
        terminated("Completed", "i0"), {"name": "i1", "state": {"running": {}}}]}
    assert printers.pod_summary(pod(init_containers=2, status=status)).status == "Init:1/2"


def test_a_failing_init_container_shows_its_reason():
    status = {"phase": "Pending", "initContainerStatuses": [waiting("CrashLoopBackOff", "i0", restarts=2)]}
    summary = printers.pod_summary(pod(init_containers=1, status=status))
    assert (summary.status, summary.restarts) == ("Init:CrashLoopBackOff", 2)


def test_an_init_container_that_exited_non_zero_shows_its_error():
    status = {"phase": "Pending", "initContainerStatuses": [terminated("Error", "i0", exit_code=1)]}
    assert printers.pod_summary(pod(init_containers=1, status=status)).status == "Init:Error"


def test_a_pod_being_deleted_is_terminating():
    p = pod(status={"phase": "Running"}, metadata={"deletionTimestamp": CREATED})
    assert printers.pod_summary(p).status == "Terminating"


def test_a_finished_pod_being_deleted_keeps_its_status():
    p = pod(status={"phase": "Succeeded", "containerStatuses": [terminated("Completed")]},
            metadata={"deletionTimestamp": CREATED})
    assert printers.pod_summary(p).status == "Completed"


def test_restarts_add_when_the_last_one_happened():
    status = {"phase": "Running", "containerStatuses": [{
        **running(restarts=2), "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}}}]}
    cells = printers.pod_cells(pod(status=status), now=NOW, wide=False)
    assert cells == ["web", "1/1", "Running", "2 (5m ago)", "60s"]


def test_wide_pod_columns_show_ip_and_node_or_none():
    cells = printers.pod_cells(pod(spec={"nodeName": "node-1"}, status={"podIPs": [{"ip": "10.0.0.5"}]}),
                               now=NOW, wide=True)
    assert cells[5:] == ["10.0.0.5", "node-1", "<none>", "<none>"]


# ------------------------------------------------------------------ nodes


def node(*, ready: str | None = "True", unschedulable: bool = False, labels: dict[str, str] | None = None):
    return manifest.to_message({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "creationTimestamp": CREATED, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable} if unschedulable else {},
        "status": {"conditions": [{"type": "Ready", "status": ready}] if ready else [],
                   "nodeInfo": {"kubeletVersion": "v0.1.0"}},
    })


def test_node_status_follows_its_ready_condition():
    assert printers.node_status(node(ready="True")) == "Ready"
    assert printers.node_status(node(ready="False")) == "NotReady"
    assert printers.node_status(node(ready=None)) == "Unknown"


def test_a_cordoned_node_adds_scheduling_disabled():
    assert printers.node_status(node(unschedulable=True)) == "Ready,SchedulingDisabled"


def test_node_roles_come_from_role_labels():
    labels = {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker", "zone": "a"}
    assert printers.node_roles(node(labels=labels)) == ["control-plane", "worker"]
    assert printers.node_cells(node(), now=NOW, wide=False) == ["node-1", "Ready", "<none>", "60s", "v0.1.0"]


# ------------------------------------------------------------ other kinds


def test_configmap_data_counts_text_and_binary_keys():
    cm = manifest.to_message({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                              "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}})
    assert printers.configmap_cells(cm, now=NOW, wide=False) == ["cfg", "3", "<unknown>"]


def test_event_row_names_the_object_as_kind_slash_name():
    event = manifest.to_message({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"},
        "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Scheduled", "type": "Normal",
        "message": "assigned\n", "lastTimestamp": CREATED})
    assert printers.event_cells(event, now=NOW, wide=False) == ["60s", "Normal", "Scheduled", "pod/web", "assigned"]


# ------------------------------------------------------------------ tables


def rendered_lines(table: printers.Table) -> list[str]:
    return printers.render(table).splitlines()


def test_pod_table_has_kubectl_headers_name_first_age_last():
    table = printers.table(POD, [pod()], now=NOW)
    assert table.headers == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]


def test_columns_are_separated_by_at_least_three_spaces_and_aligned():
    lines = rendered_lines(printers.table(POD, [pod("web"), pod("a-much-longer-name")], now=NOW))
    assert lines[0] == "NAME                 READY   STATUS    RESTARTS   AGE"
    assert lines[1] == "web                  0/1     Pending   0          60s"
    assert lines[2] == "a-much-longer-name   0/1     Pending   0          60s"


def test_all_namespaces_adds_a_namespace_column_first():
    table = printers.table(POD, [pod()], now=NOW, all_namespaces=True)
    assert table.headers[0] == "NAMESPACE" and table.rows[0][:2] == ["default", "web"]


def test_all_namespaces_adds_no_namespace_column_to_cluster_scoped_kinds():
    table = printers.table(kinds.by_kind("Node"), [node()], now=NOW, all_namespaces=True)
    assert table.headers[0] == "NAME"


def test_several_kinds_prefix_names_with_the_kind():
    table = printers.table(POD, [pod()], now=NOW, with_kind=True)
    assert table.rows[0][0] == "pod/web"


def test_show_labels_adds_sorted_labels_last():
    table = printers.table(POD, [pod(metadata={"labels": {"tier": "front", "app": "web"}}), pod("db")],
                           now=NOW, show_labels=True)
    assert table.headers[-1] == "LABELS"
    assert [row[-1] for row in table.rows] == ["app=web,tier=front", "<none>"]


def test_rendering_without_headers_prints_rows_only():
    assert printers.render(printers.table(POD, [pod()], now=NOW), with_headers=False).startswith("web")


def test_wide_output_uses_the_wide_headers():
    assert printers.headers(POD, wide=True)[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert printers.headers(kinds.by_kind("ConfigMap"), wide=True) == ["NAME", "DATA", "AGE"]
