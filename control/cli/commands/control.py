"""``sampan control``: run the control service in this process.

The service owns its event loop and signal handling (control.service), so
this ``run`` is synchronous and imports the server only when it is chosen.
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from control import service

    return service.run(args)
