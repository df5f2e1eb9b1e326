"""``sampan cordon|uncordon NODE...``: mark nodes unschedulable, or schedulable again.

A cordoned node (``spec.unschedulable``) takes no new pods; the node
lifecycle controller gives it the ``node.kubernetes.io/unschedulable``
taint too. The pods it runs stay (``sampan drain`` evicts them). Nodes are
named, or selected with ``-l``. kubectl's lines: ``node/NAME cordoned``,
``node/NAME already cordoned``, and the same for uncordon.
"""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from control.api import errors
from control.cli.connection import connect, server_of
from control.cli.errors import CommandError, api_error_line, report
from control.client import Client


async def select_nodes(api: Client, args: argparse.Namespace) -> tuple[list[Message], list[str]]:
    """The nodes the command line names or selects, and an error line for each named one missing."""
    if args.nodes and args.selector:
        raise CommandError("error: cannot specify both a node name and a --selector option")
    if not args.nodes and not args.selector:
        raise CommandError(f"error: USAGE: {args.command} NODE [flags] (see 'sampan {args.command} --help')")
    if args.selector:
        nodes, _ = await api.list("Node", label_selector=args.selector)
        if not nodes:
            report("No resources found")
        return sorted(nodes, key=lambda node: node.metadata.name), []
    found, failures = [], []
    for name in dict.fromkeys(args.nodes):
        try:
            found.append(await api.get("Node", name))
        except errors.NotFoundError as err:
            failures.append(api_error_line(err, server=server_of(args)))
    return found, failures


async def set_schedulable(api: Client, node: Message, *, schedulable: bool) -> str:
    """Cordon (schedulable False) or uncordon the node; kubectl's line saying what happened."""
    name = node.metadata.name
    verb = "uncordoned" if schedulable else "cordoned"
    if bool(node.spec.unschedulable) == (not schedulable):
        return f"node/{name} already {verb}"
    await api.patch("Node", name, {"spec": {"unschedulable": None if schedulable else True}})
    return f"node/{name} {verb}"


async def run(args: argparse.Namespace) -> int:
    async with connect(args) as api:
        nodes, failures = await select_nodes(api, args)
        for node in nodes:
            print(await set_schedulable(api, node, schedulable=args.command == "uncordon"), flush=True)
    for line in failures:
        report(line)
    return 1 if failures else 0
