"""The command line itself: global flags before or after the subcommand,
defaults, and failures that are one line on stderr with exit code 1 (usage
errors, unknown kinds, an unreachable control service)."""

from __future__ import annotations

import pytest

from control.cli.main import build_parser, main
from tests.support.control import free_port


def test_namespace_and_server_work_after_the_subcommand():
    args = build_parser().parse_args(["get", "pods", "-n", "demo", "--server", "10.0.0.1:6443"])
    assert (args.namespace, args.server, args.resources) == ("demo", "10.0.0.1:6443", ["pods"])


def test_namespace_and_server_work_before_the_subcommand():
    args = build_parser().parse_args(["--server", "10.0.0.1:6443", "-n", "demo", "get", "pods"])
    assert (args.namespace, args.server) == ("demo", "10.0.0.1:6443")


def test_global_flags_default_to_unset():
    args = build_parser().parse_args(["get", "pods"])
    assert (args.namespace, args.server) == (None, None)


def test_control_has_the_service_defaults():
    args = build_parser().parse_args(["control"])
    assert (args.store, args.listen, args.metrics_listen) == (
        "sqlite:///var/lib/sampan/state.db", "127.0.0.1:6443", "127.0.0.1:10249")


def test_delete_wait_takes_a_boolean_value():
    assert build_parser().parse_args(["delete", "pod", "web", "--wait=false"]).wait is False
    assert build_parser().parse_args(["delete", "pod", "web"]).wait is True


def one_line_failure(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_an_unknown_flag_is_one_line(capsys):
    assert one_line_failure(capsys, ["get", "pods", "--bogus"]) == \
        "error: unknown flag: --bogus (see 'sampan get --help')"


def test_a_missing_subcommand_is_one_line(capsys):
    assert one_line_failure(capsys, []).startswith("error: ")


def test_an_unknown_kind_is_one_line(capsys):
    assert one_line_failure(capsys, ["get", "podz"]) == 'error: the server doesn\'t have a resource type "podz"'


def test_get_without_a_kind_is_one_line(capsys):
    assert one_line_failure(capsys, ["get"]).startswith("error: you must specify the type of resource to get")


def test_an_unreachable_server_is_one_line_naming_it(capsys):
    address = f"127.0.0.1:{free_port()}"
    line = one_line_failure(capsys, ["get", "pods", "--server", address])
    assert line.startswith(f"error: cannot reach the control service at {address}: ")
    assert "--server" in line and "SAMPAN_SERVER" in line


def test_the_server_address_comes_from_the_environment(capsys, monkeypatch):
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("SAMPAN_SERVER", address)
    assert f"at {address}:" in one_line_failure(capsys, ["get", "pods"])


def test_version_prints_the_client_version_even_when_the_server_is_down(capsys):
    assert main(["version", "--server", f"127.0.0.1:{free_port()}"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "Client Version: v0.1.0\n"
    assert captured.err.startswith("error: cannot reach the control service")


def test_version_client_only_needs_no_server(capsys):
    assert main(["version", "--client"]) == 0
    assert capsys.readouterr().out == "Client Version: v0.1.0\n"


@pytest.mark.parametrize("argv", [["--help"], ["get", "--help"]])
def test_help_exits_zero(argv, capsys):
    assert main(argv) == 0
    assert "usage: sampan" in capsys.readouterr().out
