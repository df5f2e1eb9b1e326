"""``sampan secrets reencrypt``: rewrite every Secret with the current encryption key.

After a key rotation (a new first key in the control service's
EncryptionConfiguration, every replica restarted with it) the Secrets are
still stored under the old key. This command rewrites them through the API,
as ``kubectl get secrets -A -o json | kubectl replace -f -`` does: each
Secret is read and updated unchanged, with its resourceVersion as the
precondition. The store's encryption layer marks a value stored with an
older key (or unencrypted) as stale, and the API writes a stale value even
when an update changes nothing, so each write uses the new key. The old key
can leave the configuration once this reports no failure.

A Secret changed or deleted by someone else meanwhile needs nothing: that
write used the new key. A Secret the service cannot decrypt fails the whole
list, with the key's name in the error: the configuration lacks a key that
is still in use.
"""

from __future__ import annotations

import argparse

from control.api import errors
from control.cli.connection import connect


async def run(args: argparse.Namespace) -> int:
    namespace = getattr(args, "namespace", None) or ""
    rewritten = current = 0
    async with connect(args) as api:
        secrets, _ = await api.list("Secret", namespace=namespace)
        for secret in sorted(secrets, key=lambda s: (s.metadata.namespace, s.metadata.name)):
            meta = secret.metadata
            where = f"secret/{meta.name} -n {meta.namespace}"
            try:
                written = await api.update(secret)
            except (errors.ConflictError, errors.NotFoundError):
                print(f"{where} changed meanwhile (stored with the current key)", flush=True)
                rewritten += 1
                continue
            if written.metadata.resource_version != meta.resource_version:
                rewritten += 1
                print(f"{where} rewritten", flush=True)
            else:
                current += 1
                print(f"{where} already current", flush=True)
    print(f"{rewritten + current} secrets: {rewritten} rewritten with the current key, {current} already current")
    return 0
