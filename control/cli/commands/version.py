"""``sampan version``: this client's version and the server's (from discovery).

When the server cannot be reached the client version is still printed,
then the one-line error, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from control.api import errors
from control.cli.connection import connect, server_of
from control.cli.errors import api_error_line

UNKNOWN_VERSION = "0.0.0+unknown"


def client_version() -> str:
    try:
        version = metadata.version("sampan")
    except metadata.PackageNotFoundError:
        version = UNKNOWN_VERSION
    return version if version.startswith("v") else f"v{version}"


async def run(args: argparse.Namespace) -> int:
    print(f"Client Version: {client_version()}", flush=True)
    if args.client:
        return 0
    try:
        async with connect(args) as api:
            discovery = await api.discovery()
    except errors.APIError as err:
        print(api_error_line(err, server=server_of(args)), file=sys.stderr)
        return 1
    print(f"Server Version: {discovery.server_version}")
    return 0
