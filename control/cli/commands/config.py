"""``sampan config``: the client config's contexts, as ``kubectl config`` shows them.

- ``get-contexts [NAME...]``: a table (CURRENT, NAME, CLUSTER, AUTHINFO,
  NAMESPACE; ``*`` marks the current one), or ``-o name``;
- ``use-context NAME``: make it current (``Switched to context "NAME".``);
- ``current-context``: print its name.

The file is ``--config FILE``, else ``$SAMPAN_CONFIG``, else
``~/.sampan/config`` (control/client_config.py); ``main`` has already put a
``--config`` into ``$SAMPAN_CONFIG``.
"""

from __future__ import annotations

import argparse

from control.cli.errors import CommandError
from control.cli.tabwriter import align
from control.client_config import config_path, context_entries, load_config, set_current_context


def run(args: argparse.Namespace) -> int:
    document = load_config(config_path()) or {}
    if args.verb == "current-context":
        current = document.get("current-context")
        if not current:
            raise CommandError("error: current-context is not set")
        print(current)
        return 0
    if args.verb == "use-context":
        try:
            set_current_context(args.name, config_path())
        except KeyError:
            raise CommandError(f'error: no context exists with the name: "{args.name}"') from None
        except OSError as err:
            raise CommandError(f"error: cannot write {config_path()}: {err.strerror or err}") from None
        print(f'Switched to context "{args.name}".')
        return 0
    return _get_contexts(args, document)


def _get_contexts(args: argparse.Namespace, document: dict) -> int:
    contexts = context_entries(document)
    if args.names:
        known = dict(contexts)
        missing = [name for name in args.names if name not in known]
        if missing:
            raise CommandError(f"error: context {missing[0]} not found")
        contexts = [(name, known[name]) for name in dict.fromkeys(args.names)]
    if args.output == "name":
        for name, _context in contexts:
            print(name)
        return 0
    current = document.get("current-context")
    rows = [] if args.no_headers else ["CURRENT\tNAME\tCLUSTER\tAUTHINFO\tNAMESPACE"]
    for name, context in contexts:
        rows.append("\t".join(["*" if name == current else "", name, str(context.get("cluster") or ""),
                               str(context.get("user") or ""), str(context.get("namespace") or "")]))
    if rows:
        print(align("\n".join(rows), minwidth=6, padding=3))
    return 0
