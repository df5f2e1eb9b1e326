"""Where clients find the server: flag, then $SAMPAN_SERVER, then the config
file's current context, then 127.0.0.1:6443."""

from __future__ import annotations

from control.client import resolve_server
from control.client_config import server_from_config, write_config


def test_written_config_names_the_server(tmp_path):
    path = write_config("10.0.0.5:6443", path=tmp_path / "config")
    assert server_from_config(path) == "10.0.0.5:6443"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_resolution_order_is_flag_env_config_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPAN_CONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("SAMPAN_SERVER", raising=False)
    assert resolve_server() == "127.0.0.1:6443"
    write_config("10.0.0.5:6443")
    assert resolve_server() == "10.0.0.5:6443"
    monkeypatch.setenv("SAMPAN_SERVER", "10.0.0.6:6443")
    assert resolve_server() == "10.0.0.6:6443"
    assert resolve_server("10.0.0.7:6443") == "10.0.0.7:6443"


def test_a_broken_config_is_ignored(tmp_path):
    path = tmp_path / "config"
    path.write_text("{not yaml: [")
    assert server_from_config(path) is None
