"""``sampan auth can-i VERB KIND[/NAME] [NAME]``: may I (or --as USER) do this?

Prints ``yes`` (exit 0) or ``no`` (exit 1, with the server's reason when it
gives one), as kubectl does. The server answers through its AccessReview
call (control/server/access_review.py), with the authorizers a real request
meets. ``--as USER [--as-group G]...`` asks about another user: the CLI adds
the groups the API would give that user (``system:authenticated``; a service
account's ``system:serviceaccounts`` groups), as Kubernetes' impersonation
does, and the caller needs create on subjectaccessreviews. KIND is resolved
as ``get`` resolves it (``po``, ``deployments.apps``); ``*`` means every
resource. Cluster-scoped kinds are asked about at the cluster scope; ``-A``
asks about every namespace.
"""

from __future__ import annotations

import argparse
import sys

from control.api import kinds
from control.auth.identity import AUTHENTICATED, SERVICE_ACCOUNTS_GROUP, UserInfo
from control.cli.connection import connect, namespace_of
from control.cli.errors import UsageError


def _resource(name: str) -> tuple[str, str, bool]:
    """(plural, API group, namespaced) for a kind as the user typed it."""
    if name == "*":
        return "*", "", True
    try:
        kind = kinds.resolve(name)
    except kinds.UnknownKindError:
        print(f"Warning: the server doesn't have a resource type '{name}'", file=sys.stderr)
        return name, "", True
    return kind.plural, kind.group, kind.namespaced


def impersonated_groups(user: str, groups: list[str]) -> list[str]:
    """The groups the API gives an authenticated USER with these groups."""
    extra = [AUTHENTICATED]
    account = UserInfo(user).service_account
    if account is not None:
        extra += [SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{account[0]}"]
    return list(dict.fromkeys([*groups, *extra]))


async def run(args: argparse.Namespace) -> int:
    kind_name, _, name = args.resource.partition("/")
    if name and args.name:
        raise UsageError("error: give the name either as KIND/NAME or as NAME, not both")
    name = name or args.name
    if args.as_groups and not args.as_user:
        raise UsageError("error: --as-group needs --as (a user to ask about)")
    resource, group, namespaced = _resource(kind_name)
    namespace = "" if args.all_namespaces or not namespaced else namespace_of(args)
    groups = impersonated_groups(args.as_user, args.as_groups) if args.as_user else []
    async with connect(args) as api:
        review = await api.access_review(verb=args.verb, resource=resource, group=group,
                                         subresource=args.subresource, namespace=namespace, name=name,
                                         user=args.as_user, groups=groups)
    status = review.status
    if not args.quiet:
        if status.allowed:
            print("yes")
        else:
            print("no" + "".join(f" - {text}" for text in (status.reason, status.evaluation_error) if text))
    return 0 if status.allowed else 1
