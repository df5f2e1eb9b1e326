"""``sampan agent``: run the node agent in this process (see agent.service)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from agent import service

    return service.run(args)
