"""``sampan apply`` end to end: created / unchanged / configured lines,
removals that follow the manifest, directories and stdin, and errors that
name the field or repeat the server's message while the other objects go on."""

from __future__ import annotations

import asyncio
import textwrap

import yaml

from control.client import Client
from tests.cli import sampan

MANIFEST = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata:
      name: web
      namespace: demo
      labels: {app: web, tier: front}
    spec:
      containers:
      - name: web
        image: nginx:1.25
    ---
    apiVersion: v1
    kind: Namespace
    metadata:
      name: demo
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
      namespace: demo
    data:
      mode: fast
    """)


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_apply_creates_every_object_namespaces_first(capsys, control_server, tmp_path):
    result = sampan(capsys, control_server, "apply", "-f", write(tmp_path / "app.yaml", MANIFEST))
    assert (result.code, result.err) == (0, "")
    assert result.lines == ["namespace/demo created", "pod/web created", "configmap/settings created"]


def test_applying_the_same_manifest_again_changes_nothing(capsys, control_server, tmp_path):
    path = write(tmp_path / "app.yaml", MANIFEST)
    sampan(capsys, control_server, "apply", "-f", path)
    before = sampan(capsys, control_server, "get", "cm", "settings", "-n", "demo", "-o", "yaml")
    result = sampan(capsys, control_server, "apply", "-f", path)
    assert result.lines == ["namespace/demo unchanged", "pod/web unchanged", "configmap/settings unchanged"]
    after = sampan(capsys, control_server, "get", "cm", "settings", "-n", "demo", "-o", "yaml")
    assert yaml.safe_load(after.out)["metadata"]["resourceVersion"] == \
        yaml.safe_load(before.out)["metadata"]["resourceVersion"]


def test_an_edited_manifest_configures_the_object(capsys, control_server, tmp_path):
    sampan(capsys, control_server, "apply", "-f", write(tmp_path / "app.yaml", MANIFEST))
    edited = MANIFEST.replace("mode: fast", "mode: slow")
    result = sampan(capsys, control_server, "apply", "-f", write(tmp_path / "app.yaml", edited))
    assert result.lines == ["namespace/demo unchanged", "pod/web unchanged", "configmap/settings configured"]
    got = sampan(capsys, control_server, "get", "configmap", "settings", "-n", "demo", "-o", "yaml")
    assert yaml.safe_load(got.out)["data"] == {"mode": "slow"}


def test_a_label_removed_from_the_manifest_is_removed_from_the_object(capsys, control_server, tmp_path):
    sampan(capsys, control_server, "apply", "-f", write(tmp_path / "app.yaml", MANIFEST))
    edited = MANIFEST.replace("labels: {app: web, tier: front}", "labels: {app: web}")
    result = sampan(capsys, control_server, "apply", "-f", write(tmp_path / "app.yaml", edited))
    assert "pod/web configured" in result.lines
    got = sampan(capsys, control_server, "get", "pod", "web", "-n", "demo", "-o", "yaml")
    assert yaml.safe_load(got.out)["metadata"]["labels"] == {"app": "web"}


def label_configmap(server, name: str, **labels: str) -> None:
    """Someone other than apply changes the object."""
    async def patch() -> None:
        async with Client.connect(server.address) as api:
            await api.patch("ConfigMap", name, {"metadata": {"labels": labels}}, namespace="default")

    asyncio.run(patch())


def test_a_label_added_by_someone_else_survives_apply(capsys, control_server, tmp_path):
    path = write(tmp_path / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n")
    sampan(capsys, control_server, "apply", "-f", path)
    label_configmap(control_server, "c", owner="ops")
    edited = write(tmp_path / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: w}\n")
    assert sampan(capsys, control_server, "apply", "-f", edited).lines == ["configmap/c configured"]
    got = yaml.safe_load(sampan(capsys, control_server, "get", "cm", "c", "-o", "yaml").out)
    assert (got["metadata"]["labels"], got["data"]) == ({"owner": "ops"}, {"k": "w"})


def test_objects_without_a_namespace_go_to_the_namespace_flag(capsys, control_server, tmp_path):
    sampan(capsys, control_server, "create", "namespace", "team")
    path = write(tmp_path / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert sampan(capsys, control_server, "apply", "-f", path, "-n", "team").lines == ["configmap/c created"]
    assert sampan(capsys, control_server, "get", "cm", "-n", "team", "-o", "name").lines == ["configmap/c"]


def test_a_directory_applies_its_manifests_in_name_order(capsys, control_server, tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("b.yaml", "a.json", "c.yml"):
        stem = name.split(".")[0]
        (tmp_path / "d" / name).write_text(
            f'{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "{stem}"}}}}')
    (tmp_path / "d" / "notes.txt").write_text("not a manifest")
    result = sampan(capsys, control_server, "apply", "-f", str(tmp_path / "d"))
    assert result.lines == ["configmap/a created", "configmap/b created", "configmap/c created"]


def test_apply_reads_standard_input(capsys, control_server):
    result = sampan(capsys, control_server, "apply", "-f", "-",
                    stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: piped}\n")
    assert result.lines == ["configmap/piped created"]


def test_an_unknown_field_names_its_path_and_the_other_objects_go_on(capsys, control_server, tmp_path):
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: typo}
        spec:
          containers:
          - {name: web, imagee: nginx}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: fine}
        """)
    path = write(tmp_path / "typo.yaml", text)
    result = sampan(capsys, control_server, "apply", "-f", path)
    assert result.code == 1
    assert result.lines == ["configmap/fine created"]
    assert result.err.splitlines() == [
        f'error: error validating "{path}": error validating data: [unknown field "spec.containers[0].imagee"]']


def test_an_object_the_server_refuses_prints_its_message(capsys, control_server, tmp_path):
    path = write(tmp_path / "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n")
    result = sampan(capsys, control_server, "apply", "-f", path)
    assert result.code == 1 and result.out == ""
    assert result.err.startswith('The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"')
    assert len(result.err.splitlines()) == 1


def test_a_missing_file_is_one_error_line(capsys, control_server, tmp_path):
    result = sampan(capsys, control_server, "apply", "-f", str(tmp_path / "nope.yaml"))
    assert (result.code, result.err) == (1, f'error: the path "{tmp_path / "nope.yaml"}" does not exist\n')


def test_apply_over_an_object_created_without_it_warns_and_takes_over(capsys, control_server, tmp_path):
    path = write(tmp_path / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n")
    sampan(capsys, control_server, "create", "-f", path)
    result = sampan(capsys, control_server, "apply", "-f", path)
    assert result.lines == ["configmap/c configured"]
    assert result.err.startswith("Warning: resource configmaps/c is missing the "
                                 "kubectl.kubernetes.io/last-applied-configuration annotation")
    again = sampan(capsys, control_server, "apply", "-f", path)
    assert (again.code, again.out, again.err) == (0, "configmap/c unchanged\n", "")
