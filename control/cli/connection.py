"""What every command that talks to the control service needs from its flags."""

from __future__ import annotations

import argparse

from control.client import Client, resolve_server

DEFAULT_NAMESPACE = "default"


def server_of(args: argparse.Namespace) -> str:
    return resolve_server(getattr(args, "server", None))


def namespace_of(args: argparse.Namespace) -> str:
    """The namespace the command works in: -n, else "default"."""
    return getattr(args, "namespace", None) or DEFAULT_NAMESPACE


def connect(args: argparse.Namespace) -> Client:
    """A client for --server (else $SAMPAN_SERVER, else the default); use with ``async with``."""
    return Client.connect(server_of(args))
