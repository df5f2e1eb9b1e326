"""``sampan logs``: print a container's log, as ``kubectl logs`` does.

The control service relays the request to the agent of the pod's node
(control/server/relay.py, agent/server.py). Output goes to stdout as it
arrives, flushed chunk by chunk, so ``-f`` shows each line as the container
writes it and ends when the container stops (or on Ctrl-C). Flags are
kubectl's: ``--tail N`` (-1 for all), ``--since 5m`` (rounded to whole
seconds), ``--previous``, ``--timestamps``, ``-c`` for a pod with several
containers.
"""

from __future__ import annotations

import argparse
import sys

from control.cli.connection import connect, namespace_of
from control.cli.durations import parse_duration
from control.cli.errors import CommandError
from control.cli.targets import pod_name


def since_seconds(text: str) -> int | None:
    """--since as whole seconds (kubectl rounds); None when not given."""
    if not text:
        return None
    seconds = int(parse_duration(text) + 0.5)  # Go's Duration.Round: halves away from zero
    if seconds <= 0:
        raise CommandError("error: --since must be greater than 0")
    return seconds


async def run(args: argparse.Namespace) -> int:
    if args.tail < -1:
        raise CommandError("error: --tail must be greater than or equal to -1")
    since = since_seconds(args.since)
    out = sys.stdout.buffer
    async with connect(args) as api:
        async for chunk in api.logs(
                pod_name(args.pod), namespace=namespace_of(args), container=args.container,
                follow=args.follow, tail_lines=None if args.tail == -1 else args.tail, since_seconds=since,
                previous=args.previous, timestamps=args.timestamps):
            out.write(chunk)
            out.flush()
    return 0
