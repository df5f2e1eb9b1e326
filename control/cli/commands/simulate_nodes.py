"""``sampan simulate-nodes``: serve simulated nodes from this process (see agent.simulated).

Registers the nodes, says so on stderr, then keeps them alive (leases, pod
statuses, deletions) until SIGINT or SIGTERM. The Nodes stay registered
afterwards, as a stopped agent's do; their leases then expire.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys


async def _serve(args: argparse.Namespace) -> None:
    from agent.service import parse_labels
    from agent.simulated import SimulatedNodesConfig, parse_taints, serve
    from control.client import Client, resolve_server

    try:
        labels = parse_labels(args.labels)
    except ValueError as err:  # worded for the agent's --node-labels
        raise ValueError(str(err).replace("--node-labels", "--labels")) from None
    config = SimulatedNodesConfig(
        count=args.count, pods_per_node=args.pods_per_node, name_prefix=args.name_prefix, cpu=args.cpu,
        memory=args.memory, labels=labels,
        taints=parse_taints(args.taints), lease_interval=args.lease_interval, status_interval=args.status_interval)
    config.check()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        print(f"{config.count} simulated nodes registered ({config.name_prefix}0 .. "
              f"{config.name_prefix}{config.count - 1}); serving until interrupted", file=sys.stderr, flush=True)

    async with Client.connect(resolve_server(getattr(args, "server", None))) as api:
        serving = asyncio.create_task(serve(api, config, ready=ready))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if serving.done():
                serving.result()
        finally:
            for task in (serving, stopping):
                task.cancel()
            await asyncio.gather(serving, stopping, return_exceptions=True)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("agent.node").setLevel(logging.WARNING)  # not a line per node registered
    try:
        asyncio.run(_serve(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
