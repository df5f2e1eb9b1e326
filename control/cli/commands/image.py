"""``sampan image import FILE.tar``: load an image archive into nodes' containerd.

For machines that cannot reach a registry: the archive (an OCI image layout or
a ``docker save`` tar) goes up through the control service to each node's
agent (agent/image_import.py), which imports it where the CRI finds images.
With ``--node`` only that node; without, every Ready node, one after another
(a node that fails is reported and the rest still get the archive). Each
image imported prints ``node/NAME: imported IMAGE``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from control.cli.connection import connect
from control.cli.errors import CommandError, error_line, report
from control.client import Client
from protos.api.v1 import core_pb2


def is_ready(node: core_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def ready_nodes(api: Client) -> list[str]:
    nodes, _ = await api.list("Node")
    return sorted(node.metadata.name for node in nodes if isinstance(node, core_pb2.Node) and is_ready(node))


async def run(args: argparse.Namespace) -> int:
    archive = Path(args.archive)
    if not archive.is_file():
        raise CommandError(f"error: {archive}: no such file")
    async with connect(args) as api:
        nodes = [args.node] if args.node else await ready_nodes(api)
        if not nodes:
            raise CommandError("error: no Ready nodes to import the image into")
        failed = False
        for node in nodes:
            try:
                images = await api.import_image(archive, node=node)
            except Exception as err:  # noqa: BLE001 - worded below; a bug re-raises
                line = error_line(err, server=getattr(args, "server", None))
                if line is None:
                    raise
                report(f"node/{node}: {line}")
                failed = True
                continue
            if not images:
                print(f"node/{node}: imported no images (the archive names none)", flush=True)
            for image in images:
                print(f"node/{node}: imported {image}", flush=True)
    return 1 if failed else 0
