"""``sampan describe`` end to end: a pod with its Events section (events
found by involvedObject), and a missing object as kubectl's NotFound line."""

from __future__ import annotations

import textwrap

from tests.cli import sampan

POD_AND_EVENT = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata: {name: web, labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.25}]
    ---
    apiVersion: v1
    kind: Event
    metadata: {name: web.scheduled}
    involvedObject: {kind: Pod, name: web, namespace: default}
    reason: Scheduled
    type: Normal
    message: Successfully assigned default/web to node-1
    source: {component: sampan-scheduler}
    count: 1
    firstTimestamp: "2024-05-01T12:00:00Z"
    lastTimestamp: "2024-05-01T12:00:00Z"
    ---
    apiVersion: v1
    kind: Event
    metadata: {name: other.event}
    involvedObject: {kind: Pod, name: other, namespace: default}
    reason: Killing
    type: Normal
    message: not about web
    """)


def test_describe_pod_shows_its_fields_and_its_events(capsys, control_server, tmp_path):
    (tmp_path / "pod.yaml").write_text(POD_AND_EVENT)
    assert sampan(capsys, control_server, "apply", "-f", str(tmp_path / "pod.yaml")).code == 0
    result = sampan(capsys, control_server, "describe", "pod", "web")
    assert result.code == 0
    assert result.lines[0].split() == ["Name:", "web"]
    assert result.lines[1].split() == ["Namespace:", "default"]
    assert "Containers:" in result.lines and "  web:" in result.lines
    events = result.lines[result.lines.index("Events:"):]
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:2] == ["Normal", "Scheduled"]
    assert events[3].endswith("sampan-scheduler  Successfully assigned default/web to node-1")
    assert "not about web" not in result.out


def test_describe_without_events_says_none(capsys, control_server):
    result = sampan(capsys, control_server, "describe", "namespace", "default")
    assert result.code == 0 and result.lines[-1].split() == ["Events:", "<none>"]


def test_describing_a_missing_object_is_not_found(capsys, control_server):
    result = sampan(capsys, control_server, "describe", "pod", "ghost")
    assert (result.code, result.out, result.err) == (1, "", 'Error from server (NotFound): pods "ghost" not found\n')
