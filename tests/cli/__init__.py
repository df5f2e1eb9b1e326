"""Tests of the ``sampan`` command line: unit tests of its printers, patches
and describers, and end-to-end tests that run the CLI in-process (``main``)
against a real control service (the ``control_server`` fixture).

``sampan`` below is the one helper the end-to-end tests share.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass

from control.cli.main import main


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def sampan(capsys, server, *argv: str, stdin: str | None = None) -> Result:
    """Run ``sampan ARGV --server ADDRESS`` in this process; its exit code and output."""
    capsys.readouterr()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
    try:
        code = main([*argv, "--server", server.address])
    finally:
        sys.stdin = saved
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)
