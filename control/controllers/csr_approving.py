"""The CSR approver: approves what nodes may have, denies the rest.

Each CertificateSigningRequest without a decision gets one, from who asked
(spec.username and groups, which the API server sets from the caller) and
what the request says:

a. a bootstrapper (``system:bootstrappers``, a bootstrap token) asking the
   node client signer for ``CN=system:node:NAME, O=system:nodes`` with client
   usages: Approved (a new node joining);
b. a node ``system:node:NAME`` asking the node client signer for that same
   subject: Approved (its renewal);
c. a node asking the serving signer for ``CN=system:node:NAME,
   O=system:nodes`` whose names (SANs) are all the node's name or addresses
   in its Node's status: Approved. While that Node does not exist yet the
   request waits (up to ``SERVING_WAIT``), since an agent registers before it
   asks for its serving certificate;
d. anything else: Denied, with the reason.

Requests to the generic client signer are left for an administrator (they
approve one by adding the Approved condition through the status). The
signer in the control service (control/auth/csr_signing.py) issues what is
approved.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from typing import Hashable

from control.api import certificates as csrs, errors
from control.auth.identity import BOOTSTRAPPERS_GROUP, NODE_PREFIX, NODES_GROUP
from control.auth.pki import csr_server_names, load_csr, subject_names
from control.controllers.informers import queue_key_of
from control.controllers.manager import ControllerContext
from control.controllers.queue import WorkQueue, run_workers

log = logging.getLogger(__name__)

APPROVE, DENY, WAIT = "approve", "deny", "wait"
# How long a serving request waits for its Node to register before it is denied.
SERVING_WAIT = 600.0
_RECHECK = 2.0


def _node_subject(csr_spec) -> tuple[str | None, str]:
    """(NAME, "") when the request is for CN=system:node:NAME, O=system:nodes, else (None, why not)."""
    try:
        request = load_csr(csr_spec.request)
    except ValueError as err:
        return None, str(err)
    common_name, organizations = subject_names(request)
    if not common_name.startswith(NODE_PREFIX) or not common_name[len(NODE_PREFIX):]:
        return None, f'the subject\'s common name must be "{NODE_PREFIX}<node name>", not "{common_name}"'
    if organizations != (NODES_GROUP,):
        return None, f'the subject\'s organization must be exactly "{NODES_GROUP}", not {list(organizations)}'
    return common_name[len(NODE_PREFIX):], ""


def decide(csr, node=None) -> tuple[str, str, str]:
    """(APPROVE | DENY | WAIT, reason, message) for a pending request; node: the Node the
    request names, if it exists (needed for serving certificates)."""
    spec = csr.spec
    signer = spec.signer_name
    if signer == csrs.CLIENT_SIGNER:
        return WAIT, "", "left for an administrator"
    if signer not in (csrs.NODE_CLIENT_SIGNER, csrs.NODE_SERVING_SIGNER):
        return DENY, "UnknownSigner", f'no automatic approval for the signer "{signer}"'
    name, why = _node_subject(spec)
    if name is None:
        return DENY, "NotANodeCertificate", why
    requester_is_node = spec.username == NODE_PREFIX + name and NODES_GROUP in spec.groups
    if signer == csrs.NODE_CLIENT_SIGNER:
        if csr_server_names(load_csr(spec.request)):
            return DENY, "UnexpectedNames", "a node client certificate carries no subject alternative names"
        if BOOTSTRAPPERS_GROUP in spec.groups:
            return APPROVE, "AutoApproved", f'a bootstrap token\'s request for node "{name}"\'s client certificate'
        if requester_is_node:
            return APPROVE, "AutoApproved", f'node "{name}" renewing its own client certificate'
        return DENY, "NotAllowed", (f'"{spec.username}" may not ask for node "{name}"\'s client certificate: only a '
                                    f'bootstrap token or that node itself')
    if not requester_is_node:
        return DENY, "NotAllowed", (f'"{spec.username}" may not ask for node "{name}"\'s serving certificate: only '
                                    'that node itself')
    names = csr_server_names(load_csr(spec.request))
    if not names:
        return DENY, "NoNames", "a serving certificate must name the node (subject alternative names)"
    if node is None:
        return WAIT, "", f'node "{name}" has not registered yet'
    allowed = {name} | {address.address for address in node.status.addresses}
    strangers = [n for n in names if n not in allowed and _canonical_ip(n) not in allowed]
    if strangers:
        return DENY, "UnknownNames", (f'{", ".join(strangers)} {"is" if len(strangers) == 1 else "are"} neither '
                                      f'the node\'s name nor one of its addresses ({", ".join(sorted(allowed))})')
    return APPROVE, "AutoApproved", f'node "{name}"\'s serving certificate for its name and addresses'


def _canonical_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _age_seconds(csr, now: float) -> float:
    try:
        created = dt.datetime.fromisoformat(csr.metadata.creation_timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
    return now - created


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def run_csr_approving_controller(ctx: ControllerContext) -> None:
    requests = ctx.informers.get("CertificateSigningRequest")
    nodes = ctx.informers.get("Node")
    queue = WorkQueue()

    async def reconcile(key: Hashable) -> float | None:
        _namespace, name = key  # type: ignore[misc]
        cached = requests.get("", name)
        if cached is None or csrs.is_decided(cached):
            return None
        node_name, _ = _node_subject(cached.spec)
        verdict, reason, message = decide(cached, nodes.get("", node_name) if node_name else None)
        if verdict == WAIT:
            if cached.spec.signer_name == csrs.CLIENT_SIGNER:
                return None
            if _age_seconds(cached, ctx.clock()) < SERVING_WAIT:
                return _RECHECK
            verdict, reason = DENY, "NodeNotRegistered"
        try:
            current = await ctx.api.get("CertificateSigningRequest", name)
        except errors.NotFoundError:
            return None
        if csrs.is_decided(current) or current.metadata.uid != cached.metadata.uid:
            return None
        decision = csrs.APPROVED if verdict == APPROVE else csrs.DENIED
        csrs.add_condition(current, decision, reason=reason, message=message, now=_now())
        await ctx.api.update_status(current)
        log.info("%s certificate signing request %s: %s", decision.lower(), name, message)
        return None

    await ctx.informers.wait_synced(["CertificateSigningRequest", "Node"])
    requests.add_handler(queue_key_of(queue.add))
    try:
        await run_workers(queue, reconcile, workers=ctx.options.workers)
    finally:
        queue.close()
