"""``sampan top nodes|pods``: resource usage, as ``kubectl top`` shows it.

The control service asks the agents of the Ready nodes for their usage
(control/server/top.py, agent/usage.py). CPU is in millicores (``12m``),
memory in Mi (``34Mi``), as kubectl prints them; ``top nodes`` adds the
share of each node's allocatable. A node whose agent did not answer is
named on stderr as a warning and left out of the table.
"""

from __future__ import annotations

import argparse
import sys

from control.cli import tabwriter
from control.cli.connection import connect, namespace_of
from control.cli.errors import CommandError
from protos.api.v1 import api_pb2

MI = 1024 * 1024


def cpu_text(millicores: int) -> str:
    return f"{millicores}m"


def memory_text(count: int) -> str:
    return f"{count // MI}Mi"


def percent(used: int, allocatable: int) -> str:
    return f"{used * 100 // allocatable}%" if allocatable else "<unknown>"


def nodes_table(response: api_pb2.TopResponse, *, headers: bool) -> list[list[str]]:
    rows = [["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]] if headers else []
    for node in response.nodes:
        rows.append([node.name, cpu_text(node.cpu_millicores),
                     percent(node.cpu_millicores, node.allocatable_cpu_millicores),
                     memory_text(node.memory_bytes), percent(node.memory_bytes, node.allocatable_memory_bytes)])
    return rows


def pods_table(response: api_pb2.TopResponse, *, headers: bool, all_namespaces: bool) -> list[list[str]]:
    rows = [["NAMESPACE"] * all_namespaces + ["NAME", "CPU(cores)", "MEMORY(bytes)"]] if headers else []
    for pod in response.pods:
        rows.append([pod.namespace] * all_namespaces + [pod.name, cpu_text(pod.cpu_millicores),
                                                        memory_text(pod.memory_bytes)])
    return rows


async def run(args: argparse.Namespace) -> int:
    all_namespaces = getattr(args, "all_namespaces", False)
    namespace = namespace_of(args)
    async with connect(args) as api:
        response = await api.top(args.what, namespace=namespace, all_namespaces=all_namespaces)
    for warning in response.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    if args.what == "nodes":
        rows = nodes_table(response, headers=not args.no_headers)
        if not response.nodes:
            raise CommandError("error: metrics not available yet")
    else:
        rows = pods_table(response, headers=not args.no_headers, all_namespaces=all_namespaces)
        if not response.pods:
            where = "" if all_namespaces else f" in {namespace} namespace"
            print(f"No resources found{where}.", file=sys.stderr)
            return 0
    text = "".join("\t".join(row) + "\n" for row in rows)
    sys.stdout.write(tabwriter.align(text, minwidth=6, padding=3))
    return 0
