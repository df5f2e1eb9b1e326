"""``sampan certs`` (check-expiration, renew, issue-user) on a PKI directory, and
``sampan config`` (get-contexts, use-context, current-context) on a client
config, with ``--config`` and ``$SAMPAN_CONFIG`` choosing the file; bad
lifetimes are refused naming the flag. Against a running service:
tests/auth/test_tls_by_default.py."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from control.auth import pki
from control.cli.commands.certs import expires, short_human_duration
from control.cli.main import main
from control.client_config import CONFIG_ENV, credentials_from_config, write_config


@pytest.fixture
def config_env(monkeypatch):
    """--config sets $SAMPAN_CONFIG for the process: put it back after the test."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    return monkeypatch


@pytest.fixture
def cluster_pki(tmp_path) -> pki.ClusterPKI:
    directory = pki.ClusterPKI(tmp_path / "pki")
    directory.ensure(validity=pki.parse_validity("10y"))
    return directory


def table(text: str) -> dict[str, list[str]]:
    """Rows of an aligned table by their first cell (columns split on runs of 3+ spaces)."""
    import re

    return {cells[0]: cells[1:] for cells in (re.split(r" {3,}", line.strip()) for line in text.splitlines() if line)}


def test_check_expiration_shows_a_ten_year_ca_and_the_chosen_leaf_lifetime(cluster_pki, capsys):
    assert main(["certs", "check-expiration", "--pki-dir", str(cluster_pki.directory)]) == 0
    out = capsys.readouterr().out
    leaves, authorities = out.split("\n\n")
    assert leaves.splitlines()[0].split("   ")[0] == "CERTIFICATE"
    assert "RESIDUAL TIME" in leaves.splitlines()[0] and "CERTIFICATE AUTHORITY" in leaves.splitlines()[0]
    rows = table(leaves)
    ten_years = expires(pki.now() + dt.timedelta(days=3650))[:12]  # "Nov 23, 2036"
    for name in ("server", "control-client", "admin"):
        assert rows[name][0].startswith(ten_years) and rows[name][1:] == ["9y", "ca"], rows[name]
    ca = table(authorities)["ca"]
    assert ca[0].startswith(ten_years) and ca[1] == "9y"


def test_renew_reissues_with_the_new_lifetime_and_updates_the_admin_config(cluster_pki, tmp_path, capsys):
    admin_config = write_config("127.0.0.1:6443", path=tmp_path / "admin.config", ca=cluster_pki.ca_pem,
                                cert=cluster_pki.load("admin").cert_pem, key=cluster_pki.load("admin").key_pem)
    before = {name: cluster_pki.load(name).cert.serial_number for name in cluster_pki.leaf_names()}
    assert main(["certs", "renew", "all", "--cert-validity", "30d", "--pki-dir", str(cluster_pki.directory),
                 "--admin-config", str(admin_config)]) == 0
    assert "certificate server renewed" in capsys.readouterr().out
    for name in cluster_pki.leaf_names():
        renewed = cluster_pki.load(name)
        assert renewed.cert.serial_number != before[name]
        assert renewed.not_after - pki.now() <= dt.timedelta(days=30)
    assert credentials_from_config("127.0.0.1:6443", admin_config).cert == cluster_pki.load("admin").cert_pem
    # The server certificate keeps its names.
    assert "localhost" in cluster_pki._server_names()


def test_renew_refuses_an_unknown_certificate_and_a_bad_lifetime(cluster_pki, capsys):
    assert main(["certs", "renew", "etcd", "--pki-dir", str(cluster_pki.directory)]) == 1
    assert capsys.readouterr().err.startswith('error: unknown certificate "etcd": choose all or one of server')
    assert main(["certs", "renew", "all", "--cert-validity", "forever", "--pki-dir", str(cluster_pki.directory)]) == 1
    assert capsys.readouterr().err.startswith('error: --cert-validity: invalid duration "forever"')


def test_check_expiration_without_a_ca_says_where_it_looked(tmp_path, capsys):
    assert main(["certs", "check-expiration", "--pki-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: --pki-dir {tmp_path}: no ca.crt")


def test_issue_user_signs_a_certificate_naming_the_user_and_groups_and_writes_its_config(cluster_pki, tmp_path,
                                                                                        capsys):
    out = tmp_path / "alice.config"
    assert main(["certs", "issue-user", "alice", "--group", "dev", "--group", "ops", "--validity", "90d",
                 "--server", "10.0.0.1:6443", "--pki-dir", str(cluster_pki.directory), "--out", str(out)]) == 0
    assert f"written to {out}" in capsys.readouterr().out
    credentials = credentials_from_config("10.0.0.1:6443", out)
    assert credentials.ca == cluster_pki.ca_pem
    cert = pki.CertKey(pki.load_cert(credentials.cert), pki.load_key(credentials.key))
    assert (cert.common_name, cert.organizations) == ("alice", ("dev", "ops"))
    assert pki.verify_signed_by(cert.cert, cluster_pki.ca.cert)
    assert dt.timedelta(days=89) < cert.not_after - pki.now() <= dt.timedelta(days=90)
    assert out.stat().st_mode & 0o077 == 0


def test_issue_user_refuses_a_bad_validity_naming_the_flag(cluster_pki, tmp_path, capsys):
    assert main(["certs", "issue-user", "alice", "--validity", "10", "--pki-dir", str(cluster_pki.directory),
                 "--out", str(tmp_path / "x")]) == 1
    assert capsys.readouterr().err.startswith('error: --validity: invalid duration "10"')
    assert not (tmp_path / "x").exists()


def _two_contexts(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod",
        "clusters": [{"name": "prod", "cluster": {"server": "10.0.0.1:6443"}},
                     {"name": "lab", "cluster": {"server": "10.0.0.2:6443"}}],
        "users": [{"name": "admin", "user": {}}, {"name": "alice", "user": {}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "admin"}},
                     {"name": "lab", "context": {"cluster": "lab", "user": "alice", "namespace": "dev"}}],
    }, sort_keys=False))
    return path


def test_get_contexts_marks_the_current_one(tmp_path, config_env, capsys):
    config = _two_contexts(tmp_path / "config")
    assert main(["config", "get-contexts", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE",
        "*         prod   prod      admin      ",
        "          lab    lab       alice      dev",
    ]
    assert main(["config", "get-contexts", "-o", "name", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "prod\nlab\n"


def test_use_context_switches_and_current_context_follows(tmp_path, config_env, capsys):
    config = _two_contexts(tmp_path / "config")
    config_env.setenv(CONFIG_ENV, str(config))
    assert main(["config", "current-context"]) == 0
    assert main(["config", "use-context", "lab"]) == 0
    assert main(["config", "current-context"]) == 0
    assert capsys.readouterr().out == 'prod\nSwitched to context "lab".\nlab\n'
    assert yaml.safe_load(config.read_text())["users"][1]["name"] == "alice"  # the rest is kept


def test_use_context_refuses_an_unknown_context(tmp_path, config_env, capsys):
    config = _two_contexts(tmp_path / "config")
    assert main(["--config", str(config), "config", "use-context", "staging"]) == 1
    assert capsys.readouterr().err.strip() == 'error: no context exists with the name: "staging"'
    assert yaml.safe_load(config.read_text())["current-context"] == "prod"


def test_current_context_without_a_config_is_an_error(tmp_path, config_env, capsys):
    assert main(["config", "current-context", "--config", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err.strip() == "error: current-context is not set"


def test_control_refuses_a_bad_cert_validity_naming_the_flag(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "control.cli.main", "control", "--store", f"sqlite:///{tmp_path}/state.db",
         "--listen", "127.0.0.1:0", "--metrics-listen", "", "--pki-dir", str(tmp_path / "pki"),
         "--cert-validity", "1 year"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert '--cert-validity: invalid duration "1 year"' in done.stderr
    assert not (tmp_path / "pki").exists()


def test_residual_time_reads_as_kubeadm_prints_it():
    assert [short_human_duration(dt.timedelta(seconds=s)) for s in (-5, 30, 90, 7200, 86400 * 364 + 5,
                                                                     86400 * 3650 - 60)] == [
        "<invalid>", "30s", "1m", "2h", "364d", "9y"]
    assert expires(dt.datetime(2030, 12, 30, 23, 36, 59, tzinfo=dt.timezone.utc)) == "Dec 30, 2030 23:36 UTC"
