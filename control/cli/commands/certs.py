"""``sampan certs``: the cluster's certificates, on the machine that holds the CA.

- ``check-expiration``: when the control service's certificates and the CA
  expire, as kubeadm's table shows it (EXPIRES as "Jan 02, 2006 15:04 UTC",
  RESIDUAL TIME as its ShortHumanDuration: 364d, 9y, <invalid> once past);
- ``renew all|server|control-client|admin``: reissue those leaves with new
  keys (``--cert-validity``, default 1y). The running service serves a
  renewed server certificate from its next handshake on (control/auth/tls.py);
  the admin's client config, when it exists, gets the renewed certificate;
- ``issue-user NAME [--group G]... [--validity D] --out FILE``: sign a client
  certificate (CN=NAME, O=the groups) and write a client config for that user,
  pointed at ``--server`` (default: the current config's server). What the
  user may do is then RBAC's to say.

All of them read ``--pki-dir`` (default /var/lib/sampan/pki) directly: they
need the CA's key, not the API.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from control.auth.pki import ADMIN_NAME, CA_NAME, ClusterPKI, Expiration, issue, now, parse_validity
from control.cli.errors import CommandError
from control.cli.tabwriter import align
from control.client import resolve_server
from control.client_config import server_from_config, write_config

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def run(args: argparse.Namespace) -> int:
    pki = ClusterPKI(Path(args.pki_dir))
    try:
        if args.verb == "check-expiration":
            return _check_expiration(pki)
        _require_ca(pki)
        if args.verb == "renew":
            return _renew(pki, args)
        return _issue_user(pki, args)
    except OSError as err:
        raise CommandError(f"error: {err.filename or args.pki_dir}: {err.strerror or err}") from None


def expires(at: dt.datetime) -> str:
    """kubeadm's EXPIRES column: "Dec 30, 2030 23:36 UTC"."""
    at = at.astimezone(dt.timezone.utc)
    return f"{_MONTHS[at.month - 1]} {at.day:02d}, {at.year} {at.hour:02d}:{at.minute:02d} UTC"


def short_human_duration(delta: dt.timedelta) -> str:
    """k8s.io/apimachinery's ShortHumanDuration, which kubeadm's RESIDUAL TIME uses."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def _require_ca(pki: ClusterPKI) -> None:
    for suffix in ("crt", "key"):
        if not pki.path(CA_NAME, suffix).exists():
            raise CommandError(f"error: --pki-dir {pki.directory}: no {CA_NAME}.{suffix}: run this where the control "
                               f"service keeps its PKI (sampan control --pki-dir)")


def _check_expiration(pki: ClusterPKI) -> int:
    rows = pki.expirations()
    if not any(row.name == CA_NAME for row in rows):
        raise CommandError(f"error: --pki-dir {pki.directory}: no {CA_NAME}.crt: run this where the control "
                           f"service keeps its PKI (sampan control --pki-dir)")
    at = now()

    def cells(row: Expiration) -> list[str]:
        return [row.name, expires(row.not_after), short_human_duration(row.residual(at))]

    leaves = ["CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY"]
    leaves += ["\t".join([*cells(row), row.authority]) for row in rows if row.name != CA_NAME]
    authorities = ["CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME"]
    authorities += ["\t".join(cells(row)) for row in rows if row.name == CA_NAME]
    print(align("\n".join(leaves), minwidth=6, padding=3))
    print()
    print(align("\n".join(authorities), minwidth=6, padding=3))
    return 0


def _validity(text: str, flag: str) -> dt.timedelta:
    try:
        return parse_validity(text)
    except ValueError as err:
        raise CommandError(f"error: {flag}: {err}") from None


def _renew(pki: ClusterPKI, args: argparse.Namespace) -> int:
    names = pki.leaf_names()
    if args.name != "all" and args.name not in names:
        raise CommandError(f'error: unknown certificate "{args.name}": choose all or one of {", ".join(names)}')
    validity = _validity(args.cert_validity, "--cert-validity")
    for name in names if args.name == "all" else (args.name,):
        pair = pki.issue_leaf(name, validity=validity)
        print(f"certificate {name} renewed (expires {expires(pair.not_after)})")
        if name == ADMIN_NAME:
            _update_admin_config(pki, Path(args.admin_config) if args.admin_config else None)
    print("A running control service serves a renewed server certificate from its next connection on; "
          "it uses a renewed control-client certificate after its next restart.")
    return 0


def _update_admin_config(pki: ClusterPKI, path: Path | None) -> None:
    if path is None or not path.exists():
        return
    server = server_from_config(path)
    if server is None:
        print(f"warning: {path} names no server; not updated")
        return
    admin = pki.load(ADMIN_NAME)
    write_config(server, path=path, ca=pki.ca_pem, cert=admin.cert_pem, key=admin.key_pem)
    print(f"client config {path} updated with the renewed admin certificate")


def _issue_user(pki: ClusterPKI, args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not name:
        raise CommandError("error: NAME: Required value: the user's name (the certificate's CN)")
    groups = [group.strip() for group in args.group]
    if any(not group for group in groups):
        raise CommandError("error: --group: Invalid value: \"\": a group needs a name")
    validity = _validity(args.validity, "--validity")
    pair = issue(pki.ca, common_name=name, organizations=list(dict.fromkeys(groups)), validity=validity)
    server = resolve_server(getattr(args, "server", None))
    out = Path(args.out).expanduser()
    write_config(server, path=out, user=name, ca=pki.ca_pem, cert=pair.cert_pem, key=pair.key_pem)
    print(f'client config for user "{name}"' + (f" (groups {', '.join(groups)})" if groups else "")
          + f" written to {out}: server {server}, certificate expires {expires(pair.not_after)}")
    return 0
