"""``sampan create`` end to end: from files (AlreadyExists is kubectl's
error line) and from the command line (namespace, configmap, secret generic)."""

from __future__ import annotations

import base64

import yaml

from tests.cli import sampan

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: nginx}]\n"


def test_create_from_a_file_prints_kind_slash_name_created(capsys, control_server, tmp_path):
    (tmp_path / "pod.yaml").write_text(POD)
    result = sampan(capsys, control_server, "create", "-f", str(tmp_path / "pod.yaml"))
    assert (result.code, result.out) == (0, "pod/web created\n")


def test_creating_an_existing_object_is_already_exists(capsys, control_server, tmp_path):
    (tmp_path / "pod.yaml").write_text(POD)
    sampan(capsys, control_server, "create", "-f", str(tmp_path / "pod.yaml"))
    result = sampan(capsys, control_server, "create", "-f", str(tmp_path / "pod.yaml"))
    assert (result.code, result.out, result.err) == (
        1, "", 'Error from server (AlreadyExists): pods "web" already exists\n')


def test_create_namespace_and_its_alias(capsys, control_server):
    assert sampan(capsys, control_server, "create", "namespace", "demo").out == "namespace/demo created\n"
    assert sampan(capsys, control_server, "create", "ns", "demo2").out == "namespace/demo2 created\n"


def test_create_configmap_from_literals_and_files(capsys, control_server, tmp_path):
    (tmp_path / "app.conf").write_text("port=80\n")
    result = sampan(capsys, control_server, "create", "configmap", "cfg", "--from-literal=mode=fast",
                    f"--from-file={tmp_path / 'app.conf'}")
    assert result.out == "configmap/cfg created\n"
    cm = yaml.safe_load(sampan(capsys, control_server, "get", "cm", "cfg", "-o", "yaml").out)
    assert cm["data"] == {"app.conf": "port=80\n", "mode": "fast"}


def test_create_secret_generic_stores_base64_data(capsys, control_server):
    result = sampan(capsys, control_server, "create", "secret", "generic", "creds", "--from-literal=password=hunter2")
    assert result.out == "secret/creds created\n"
    secret = yaml.safe_load(sampan(capsys, control_server, "get", "secret", "creds", "-o", "yaml").out)
    assert (secret["type"], base64.b64decode(secret["data"]["password"])) == ("Opaque", b"hunter2")


def test_a_repeated_key_is_refused(capsys, control_server):
    result = sampan(capsys, control_server, "create", "cm", "cfg", "--from-literal=a=1", "--from-literal=a=2")
    assert result.code == 1 and result.err.startswith('error: cannot add key "a"')


def test_client_dry_run_prints_without_creating(capsys, control_server):
    result = sampan(capsys, control_server, "create", "cm", "cfg", "--from-literal=a=1", "--dry-run=client",
                    "-o", "yaml")
    assert yaml.safe_load(result.out)["data"] == {"a": "1"}
    assert sampan(capsys, control_server, "get", "cm", "cfg").code == 1
