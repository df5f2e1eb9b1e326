"""``sampan get`` end to end: tables per kind, -A, names, selectors, the
structured outputs, and what an empty answer, a missing object or a missing
namespace print."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from tests.cli import sampan

OBJECTS = textwrap.dedent("""\
    apiVersion: v1
    kind: Namespace
    metadata: {name: demo}
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: web
      labels: {app: web}
      annotations: {team: blue}
    spec:
      nodeSelector: {disk: ssd}
      restartPolicy: OnFailure
      containers:
      - name: web
        image: nginx:1.25
        command: [nginx, -g, daemon off;]
        env: [{name: MODE, value: fast}]
        ports: [{containerPort: 80, name: http}]
        resources:
          limits: {cpu: 500m, memory: 128Mi}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: db, labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres:16}]
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings, namespace: demo}
    data: {a: "1", b: "2"}
    """)


@pytest.fixture
def cluster(capsys, control_server, tmp_path):
    path = tmp_path / "objects.yaml"
    path.write_text(OBJECTS)
    assert sampan(capsys, control_server, "apply", "-f", str(path)).code == 0
    return control_server


def test_pods_print_as_a_kubectl_table(capsys, cluster):
    result = sampan(capsys, cluster, "get", "pods")
    assert result.code == 0
    assert result.lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert result.lines[0].startswith("NAME   READY   STATUS    RESTARTS   AGE")
    rows = sorted(line.split()[:4] for line in result.lines[1:])
    assert rows == [["db", "0/1", "Pending", "0"], ["web", "0/1", "Pending", "0"]]


def test_kind_aliases_all_work(capsys, cluster):
    outputs = {sampan(capsys, cluster, "get", alias, "-o", "name").out for alias in ("po", "pod", "pods", "Pod")}
    assert outputs == {"pod/db\npod/web\n"}


def test_all_namespaces_adds_the_namespace_column(capsys, cluster):
    result = sampan(capsys, cluster, "get", "configmaps", "-A")
    assert result.lines[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert ["demo", "settings", "2"] in [line.split()[:3] for line in result.lines[1:]]


def test_several_kinds_print_one_table_each_with_kind_prefixed_names(capsys, cluster):
    result = sampan(capsys, cluster, "get", "po,cm", "-n", "demo")
    assert (result.code, result.err) == (0, "")
    assert result.lines[0].split() == ["NAME", "DATA", "AGE"]
    assert result.lines[1].split()[:2] == ["configmap/settings", "2"]


def test_named_gets_print_one_row_per_name(capsys, cluster):
    result = sampan(capsys, cluster, "get", "pods", "web", "db")
    assert [line.split()[0] for line in result.lines[1:]] == ["web", "db"]


def test_a_missing_name_is_an_error_while_the_others_print(capsys, cluster):
    result = sampan(capsys, cluster, "get", "pods", "web", "ghost")
    assert result.code == 1
    assert [line.split()[0] for line in result.lines] == ["NAME", "web"]
    assert result.err == 'Error from server (NotFound): pods "ghost" not found\n'


def test_a_label_selector_filters(capsys, cluster):
    assert sampan(capsys, cluster, "get", "pods", "-l", "app=web", "-o", "name").lines == ["pod/web"]


def test_a_field_selector_filters(capsys, cluster):
    assert sampan(capsys, cluster, "get", "pods", "--field-selector", "metadata.name=db", "-o", "name").lines == \
        ["pod/db"]


def test_show_labels_adds_the_labels_column(capsys, cluster):
    result = sampan(capsys, cluster, "get", "pod", "web", "--show-labels")
    assert result.lines[0].split()[-1] == "LABELS" and result.lines[1].split()[-1] == "app=web"


def test_yaml_output_returns_every_field_given(capsys, cluster):
    pod = yaml.safe_load(sampan(capsys, cluster, "get", "pod", "web", "-o", "yaml").out)
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert pod["metadata"]["annotations"]["team"] == "blue"
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["nginx", "-g", "daemon off;"]
    assert container["env"] == [{"name": "MODE", "value": "fast"}]
    assert container["ports"][0]["containerPort"] == 80 and container["ports"][0]["name"] == "http"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}


def test_json_output_of_a_listing_is_a_list(capsys, cluster):
    document = json.loads(sampan(capsys, cluster, "get", "pods", "-o", "json").out)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    assert sorted(item["metadata"]["name"] for item in document["items"]) == ["db", "web"]


def test_an_empty_answer_says_so_on_stderr(capsys, control_server):
    result = sampan(capsys, control_server, "get", "pods")
    assert (result.code, result.out, result.err) == (0, "", "No resources found in default namespace.\n")


def test_an_empty_answer_across_namespaces_names_none(capsys, control_server):
    assert sampan(capsys, control_server, "get", "pods", "-A").err == "No resources found\n"


def test_a_namespace_that_does_not_exist_is_an_error(capsys, control_server):
    result = sampan(capsys, control_server, "get", "pods", "-n", "nope")
    assert (result.code, result.out, result.err) == (
        1, "", 'Error from server (NotFound): namespaces "nope" not found\n')


def test_cluster_scoped_kinds_ignore_the_namespace(capsys, control_server):
    result = sampan(capsys, control_server, "get", "namespaces", "-n", "nope")
    assert result.code == 0 and "default" in result.out
