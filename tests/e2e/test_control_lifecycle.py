"""The control service end to end, as a user drives it: the real `sampan
control` process on each store, the `sampan` CLI applying a multi-document
manifest, every given field coming back, re-apply being a no-op, bad
manifests refused with the field path, and state surviving a restart (kill -9
included)."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
import yaml

from tests.e2e.manifests import APP
from tests.support.components import require_binary
from tests.support.control import ControlServer
from tests.support.etcd import running_etcd


def sampan(server: ControlServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "control.cli.main", "--server", server.address, *args],
        input=stdin, capture_output=True, text=True, timeout=60)


def assert_contains(given, got, path="") -> None:
    """Every field of `given` is in `got` with the same value. got may have
    more: defaulted fields, and list items the server appends (default
    tolerations) after the given ones."""
    if isinstance(given, dict):
        assert isinstance(got, dict), f"{path}: expected a mapping, got {got!r}"
        for key, value in given.items():
            assert key in got, f"{path}.{key} is missing from the stored object"
            assert_contains(value, got[key], f"{path}.{key}")
    elif isinstance(given, list):
        assert isinstance(got, list) and len(got) >= len(given), f"{path}: {got!r} != {given!r}"
        for index, (a, b) in enumerate(zip(given, got)):
            assert_contains(a, b, f"{path}[{index}]")
    else:
        assert given == got, f"{path}: stored {got!r}, given {given!r}"


def expected_stored(document: dict) -> dict:
    """What the server keeps of a document: a Secret's stringData lands in data."""
    if document["kind"] == "Secret" and "stringData" in document:
        document = dict(document)
        data = dict(document.get("data", {}))
        for key, value in document.pop("stringData").items():
            data[key] = base64.b64encode(value.encode()).decode()
        document["data"] = data
    return document


def apply_and_check_roundtrip(server: ControlServer) -> dict[str, tuple[str, str]]:
    """Apply APP, check every field comes back; return name -> (uid, resourceVersion)."""
    result = sampan(server, "apply", "-f", "-", stdin=APP)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "namespace/shop created", "configmap/settings created", "secret/db created", "pod/web created"]
    identities = {}
    for document in yaml.safe_load_all(APP):
        kind = document["kind"].lower()
        name = document["metadata"]["name"]
        args = ["get", kind, name, "-o", "yaml"]
        if kind != "namespace":
            args += ["-n", "shop"]
        got = sampan(server, *args)
        assert got.returncode == 0, got.stderr
        stored = yaml.safe_load(got.stdout)
        assert_contains(expected_stored(document), stored, kind)
        identities[f"{kind}/{name}"] = (stored["metadata"]["uid"], stored["metadata"]["resourceVersion"])
    again = sampan(server, "apply", "-f", "-", stdin=APP)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "namespace/shop unchanged", "configmap/settings unchanged", "secret/db unchanged", "pod/web unchanged"]
    return identities


def current_identities(server: ControlServer, names) -> dict[str, tuple[str, str]]:
    found = {}
    for ref in names:
        kind, name = ref.split("/")
        args = ["get", kind, name, "-o", "yaml"] + ([] if kind == "namespace" else ["-n", "shop"])
        got = sampan(server, *args)
        assert got.returncode == 0, got.stderr
        meta = yaml.safe_load(got.stdout)["metadata"]
        found[ref] = (meta["uid"], meta["resourceVersion"])
    return found


def test_sqlite_store_keeps_every_field_and_survives_restart_and_kill(tmp_path):
    server = ControlServer(tmp_path / "control").start()
    try:
        identities = apply_and_check_roundtrip(server)
        assert server.stop() == 0, "SIGTERM must stop the service cleanly"
        server.start()
        assert current_identities(server, identities) == identities
        server.kill()
        server.start()
        assert current_identities(server, identities) == identities
        assert "pod/web unchanged" in sampan(server, "apply", "-f", "-", stdin=APP).stdout
    finally:
        server.kill()


def test_etcd_store_keeps_every_field_and_etcdctl_shows_the_objects(tmp_path):
    binary = require_binary("etcd", package="etcd-server")
    etcdctl = require_binary("etcdctl", package="etcd-client")
    with running_etcd(binary=binary) as cluster:
        server = ControlServer(tmp_path / "control", store_url="etcd://" + cluster.endpoints[0]).start()
        try:
            identities = apply_and_check_roundtrip(server)
            server.kill()
            server.start()
            assert current_identities(server, identities) == identities
        finally:
            server.kill()
        keys = subprocess.run(
            [etcdctl, f"--endpoints={cluster.endpoints[0]}", "get", "--prefix", "/registry/", "--keys-only"],
            capture_output=True, text=True, timeout=30, env={"ETCDCTL_API": "3"})
        assert keys.returncode == 0, keys.stderr
        stored = set(filter(None, keys.stdout.splitlines()))
        assert {"/registry/namespaces/shop", "/registry/configmaps/shop/settings",
                "/registry/secrets/shop/db", "/registry/pods/shop/web"} <= stored


BAD_MANIFESTS = {
    "unknown field": ("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"
                      "spec:\n  containers:\n  - name: a\n    image: b\n    imagee: c\n",
                      'spec.containers[0].imagee'),
    "invalid name": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid}\ndata: {a: b}\n",
                     "metadata.name"),
    "duplicate key": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\ndata: {a: b}\ndata: {c: d}\n",
                      "data"),
    "alias bomb": ("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                   "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                   "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                   "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n", "alias"),
    "deep nesting": ("a: " + "[" * 10_000 + "]" * 10_000 + "\n", "deep"),
    "oversized": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: "
                  + "x" * (3 * 1024 * 1024 + 1) + "\n", "3145728 bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_bad_manifest_exits_1_names_the_problem_and_stores_nothing(control_server, case):
    text, expected = BAD_MANIFESTS[case]
    result = sampan(control_server, "apply", "-f", "-", stdin=text)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    listed = sampan(control_server, "get", "configmaps,pods", "-A", "-o", "name")
    assert listed.returncode == 0 and listed.stdout.strip() == "", listed.stdout
