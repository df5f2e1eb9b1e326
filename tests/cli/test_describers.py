"""describe's text: kubectl's sections and alignment for pods, the Events
table, secrets that never show their values, config maps, and the generic
layout for other kinds."""

from __future__ import annotations

from datetime import datetime, timezone

from control.api import manifest
from control.cli.describers import describe
from control.cli.describers.pod import describe_probe, qos_class
from control.cli.merge_patch import LAST_APPLIED

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def pod(**spec):
    return manifest.to_message({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front", "app": "web"},
                     "annotations": {LAST_APPLIED: "{}\n", "note": "hi"}},
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}], **spec},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.5"}], "podIP": "10.1.0.5",
                   "containerStatuses": [{"name": "web", "ready": True, "restartCount": 2,
                                          "state": {"running": {"startedAt": "2024-05-01T11:00:00Z"}}}]},
    })


def event(reason: str, when: str, *, count: int = 1, message: str = "m"):
    return manifest.to_message({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"web.{reason}", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web"}, "reason": reason, "type": "Normal", "message": message,
        "source": {"component": "sampan-scheduler"}, "count": count,
        "firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": when,
    })


def test_pod_header_fields_are_aligned_in_one_column():
    lines = describe(pod(), events=None, now=NOW).splitlines()
    assert lines[:4] == ["Name:         web", "Namespace:    default", "Node:         <none>",
                         "Labels:       app=web"]
    assert lines[4] == "              tier=front"


def test_the_last_applied_annotation_is_hidden():
    text = describe(pod(), events=None, now=NOW)
    assert "Annotations:  note: hi" in text and LAST_APPLIED not in text


def test_containers_show_image_port_state_readiness_and_restarts():
    text = describe(pod(), events=None, now=NOW)
    assert "Containers:\n  web:\n" in text
    fields = {line.split(":")[0].strip(): line.split(":", 1)[1].strip() for line in text.splitlines()
              if line.startswith("    ") and not line.startswith("      ")}
    assert (fields["Image"], fields["Port"], fields["State"], fields["Ready"], fields["Restart Count"]) == \
        ("nginx", "80/TCP", "Running", "True", "2")


def test_no_events_reads_none():
    assert describe(pod(), events=[], now=NOW).splitlines()[-1].split() == ["Events:", "<none>"]


def test_events_are_a_table_sorted_by_last_timestamp():
    text = describe(pod(), events=[event("Started", "2024-05-01T11:59:00Z"),
                                   event("Pulled", "2024-05-01T11:58:00Z", count=3)], now=NOW)
    events = text[text.index("Events:"):].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split() == ["Normal", "Pulled", "2m", "(x3", "over", "10m)", "sampan-scheduler", "m"]
    assert events[4].split()[:3] == ["Normal", "Started", "10m"]


def test_the_events_table_is_aligned_apart_from_the_text_above():
    text = describe(pod(), events=[event("Started", "2024-05-01T11:59:00Z")], now=NOW)
    assert "\n  Type    Reason   Age   From              Message\n" in text


def test_probes_read_as_kubectl_prints_them_with_defaults():
    container = pod(containers=[{"name": "web", "image": "nginx", "readinessProbe": {
        "httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5}}]).spec.containers[0]
    assert describe_probe(container.readiness_probe) == \
        "http-get http://:http/ready delay=0s timeout=1s period=5s #success=1 #failure=3"


def test_qos_class_follows_requests_and_limits():
    assert qos_class(pod()) == "BestEffort"
    limited = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert qos_class(pod(containers=[{"name": "c", "image": "i", "resources": limited}])) == "Guaranteed"
    requested = {"requests": {"cpu": "100m"}}
    assert qos_class(pod(containers=[{"name": "c", "image": "i", "resources": requested}])) == "Burstable"


def test_a_secret_shows_sizes_never_values():
    secret = manifest.to_message({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                  "metadata": {"name": "s", "namespace": "default"},
                                  "data": {"password": "aHVudGVyMg=="}})
    text = describe(secret, events=[], now=NOW)
    assert "password:  7 bytes" in text and "hunter2" not in text and "aHVudGVyMg" not in text


def test_a_configmap_lists_its_keys_with_values():
    cm = manifest.to_message({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "cfg", "namespace": "default"}, "data": {"mode": "fast"}})
    assert "\nData\n====\nmode:\n----\nfast\n" in describe(cm, events=[], now=NOW)


def test_other_kinds_get_the_generic_layout_in_words():
    lease = manifest.to_message({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                 "metadata": {"name": "node-1", "namespace": "kube-node-lease", "uid": "u-1"},
                                 "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}})
    lines = describe(lease, events=[], now=NOW).splitlines()
    assert "API Version:  coordination.k8s.io/v1" in lines
    assert "Spec:" in lines
    assert any(line.split() == ["Holder", "Identity:", "node-1"] for line in lines)
    assert any(line.split() == ["UID:", "u-1"] for line in lines)
