"""``sampan api-resources``: the kinds the server serves, from its discovery answer.

kubectl's columns: NAME (plural), SHORTNAMES, APIVERSION, NAMESPACED, KIND
(``-o wide`` adds VERBS; ``-o name`` prints ``plural[.group]``), core group
first, then by group, each by name.
"""

from __future__ import annotations

import argparse
import sys

from control.cli import printers
from control.cli.connection import connect


async def run(args: argparse.Namespace) -> int:
    async with connect(args) as api:
        discovery = await api.discovery()
    resources = [r for r in discovery.resources if args.namespaced is None or r.namespaced == args.namespaced]
    resources.sort(key=lambda r: (_group(r.api_version) != "", _group(r.api_version), r.name))
    if args.output == "name":
        for resource in resources:
            group = _group(resource.api_version)
            print(f"{resource.name}.{group}" if group else resource.name)
        return 0
    headers = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    if args.output == "wide":
        headers.append("VERBS")
    rows = []
    for resource in resources:
        cells = [resource.name, ",".join(resource.short_names), resource.api_version,
                 "true" if resource.namespaced else "false", resource.kind]
        if args.output == "wide":
            cells.append(",".join(resource.verbs))
        rows.append(cells)
    sys.stdout.write(printers.render(printers.Table(headers, rows), with_headers=not args.no_headers))
    return 0


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]
