"""``sampan proxy``: run the service proxy in this process (see proxy.service).

Flags that make no sense, and a ``--mode`` this machine cannot run, are
refused here with one line before anything starts.
"""

from __future__ import annotations

import argparse

from control.cli.errors import CommandError


def run(args: argparse.Namespace) -> int:
    from proxy import service
    from proxy.modes import ModeUnavailable

    problem = service.flag_problem(args)
    if problem:
        raise CommandError(f"error: {problem}")
    try:
        return service.run(args)
    except ModeUnavailable as err:
        raise CommandError(f"error: {err}") from None
