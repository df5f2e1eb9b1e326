"""``sampan token``: the bootstrap tokens nodes join with (kubeadm token, in short).

- ``create [--ttl 24h] [--description TEXT]``: a new token's Secret in
  kube-system (control/auth/bootstrap.py) and, on stdout, the join token
  ``K10<sha256 of the cluster CA>::ID.SECRET`` for ``sampan agent --token``.
  The CA is the one this client trusts (its config's current context), or
  ``--ca-file``; ``--ttl 0`` makes a token that never expires.
- ``list``: TOKEN (the id; the secret is never shown again), TTL,
  EXPIRES, USAGES and DESCRIPTION, as kubeadm prints them.
- ``delete ID...``: revoke tokens (an ``ID.SECRET`` is accepted too); a
  node that already joined keeps its certificate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from control.api import errors
from control.auth import bootstrap
from control.auth.pki import parse_validity
from control.cli.connection import connect
from control.cli.durations import human_duration
from control.cli.errors import CommandError
from control.cli.tabwriter import align

DEFAULT_CA_FILE = Path("/var/lib/sampan/pki/ca.crt")


def parse_ttl(text: str) -> dt.timedelta | None:
    """--ttl: a duration (24h, 30m, 7d, 1h30m), or 0 for never; None means never."""
    if text.strip() in ("0", "0s"):
        return None
    try:
        return parse_validity(text)
    except ValueError as err:
        raise CommandError(f"error: --ttl: {err}") from None


async def run(args: argparse.Namespace) -> int:
    async with connect(args) as api:
        if args.verb == "create":
            return await _create(api, args)
        if args.verb == "list":
            return await _list(api, args)
        return await _delete(api, args)


def _cluster_ca(api, args: argparse.Namespace) -> bytes:
    if args.ca_file:
        try:
            return Path(args.ca_file).read_bytes()
        except OSError as err:
            raise CommandError(f"error: --ca-file: {err}") from None
    if api.credentials.ca:
        return api.credentials.ca
    try:
        return DEFAULT_CA_FILE.read_bytes()
    except OSError:
        raise CommandError("error: the join token carries the cluster CA's hash, and this client knows no CA "
                           "(plain text?): give the CA certificate with --ca-file") from None


async def _create(api, args: argparse.Namespace) -> int:
    ttl = parse_ttl(args.ttl)
    ca = _cluster_ca(api, args)
    try:
        ca_hash = bootstrap.canonical_ca_hash(ca)
    except ValueError as err:
        raise CommandError(f"error: the cluster CA is not a PEM certificate: {err}") from None
    for _ in range(3):
        token_id, secret = bootstrap.generate_token()
        try:
            await api.create(bootstrap.token_secret(token_id, secret, ttl=ttl, description=args.description))
        except errors.AlreadyExistsError:
            continue
        print(bootstrap.JoinToken(ca_hash, token_id, secret))
        return 0
    raise CommandError("error: could not find a free token id")


async def _list(api, args: argparse.Namespace) -> int:
    secrets, _ = await api.list("Secret", namespace=bootstrap.TOKEN_NAMESPACE)
    now = dt.datetime.now(dt.timezone.utc)
    lines = [] if args.no_headers else ["TOKEN\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION"]
    for secret in sorted(secrets, key=lambda s: s.metadata.name):
        if secret.type != bootstrap.SECRET_TYPE:
            continue
        token_id = secret.data.get(bootstrap.ID_KEY, b"").decode()
        try:
            expiration = bootstrap.expiration_of(secret)
        except ValueError:
            expiration = None
            ttl, expires = "<invalid>", "<invalid>"
        else:
            if expiration is None:
                ttl, expires = "<forever>", "<never>"
            else:
                remaining = (expiration - now).total_seconds()
                ttl = human_duration(remaining) if remaining > 0 else "<expired>"
                expires = bootstrap.format_time(expiration)
        usages = ",".join(sorted(key[len("usage-bootstrap-"):] for key, value in secret.data.items()
                                 if key.startswith("usage-bootstrap-") and value == b"true"))
        description = secret.data.get(bootstrap.DESCRIPTION_KEY, b"").decode() or "<none>"
        lines.append(f"{token_id}\t{ttl}\t{expires}\t{usages or '<none>'}\t{description}")
    if len(lines) > (0 if args.no_headers else 1):
        print(align("\n".join(lines) + "\n", minwidth=0, padding=3), end="")
    return 0


async def _delete(api, args: argparse.Namespace) -> int:
    failed = False
    for given in args.ids:
        token_id = given.split(".", 1)[0]
        try:
            await api.delete("Secret", bootstrap.SECRET_PREFIX + token_id, namespace=bootstrap.TOKEN_NAMESPACE)
        except errors.NotFoundError:
            print(f'Error from server (NotFound): bootstrap token "{token_id}" not found', file=sys.stderr)
            failed = True
            continue
        print(f'bootstrap token "{token_id}" deleted')
    return 1 if failed else 0
