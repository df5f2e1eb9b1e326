"""The flags of ``sampan logs`` and ``sampan exec`` (the commands themselves run
end to end in tests/e2e/test_logs_exec.py).

Covered: everything after ``--`` is exec's command, flags included, while
``--`` keeps its usual meaning for other commands; exec without a command is
a usage error; --since is whole seconds and must be positive; --tail below
-1 is refused; a pod may be named pod/NAME but not as another kind.
"""

from __future__ import annotations

import pytest

from control.cli.commands.logs import since_seconds
from control.cli.errors import CommandError
from control.cli.main import build_parser, main, parse_command_line
from control.cli.targets import pod_name


def test_everything_after_the_dashes_is_the_command_to_exec():
    args, extra = parse_command_line(build_parser(), ["exec", "web", "-c", "a", "--", "sh", "-c", "exit 3", "-n", "x"])
    assert (args.pod, args.container, args.command_argv, extra) == ("web", "a", ["sh", "-c", "exit 3", "-n", "x"], [])


def test_dashes_keep_their_meaning_for_other_commands():
    args, extra = parse_command_line(build_parser(), ["get", "pods", "--", "-odd-name"])
    assert (args.resources, extra) == (["pods", "-odd-name"], [])


def test_exec_without_a_command_is_a_usage_error(capsys):
    assert main(["exec", "web"]) == 1
    assert capsys.readouterr().err.startswith("error: you must specify at least one command for the container")


def test_since_is_whole_positive_seconds():
    assert since_seconds("") is None
    assert since_seconds("1m30s") == 90
    assert since_seconds("1500ms") == 2
    with pytest.raises(CommandError, match="--since must be greater than 0"):
        since_seconds("0s")


def test_tail_below_minus_one_is_refused(capsys):
    assert main(["logs", "web", "--tail", "-2"]) == 1
    assert capsys.readouterr().err == "error: --tail must be greater than or equal to -1\n"


def test_a_pod_may_be_named_with_its_kind():
    assert [pod_name(text) for text in ("web", "pod/web", "po/web", "pods/web")] == ["web"] * 4
    with pytest.raises(CommandError, match="only a pod's containers"):
        pod_name("configmap/web")
