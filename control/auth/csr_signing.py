"""The CSR signer: the cluster CA issues approved CertificateSigningRequests.

It runs in the control service, on the leader (it needs the CA's key, which
only the control service holds: ``ControlService.pki``), over the leader's
informers. An approved request without a certificate is checked once more
against its signer's rules (defence in depth; the approver,
control/controllers/csr_approving.py, decided on the same):

- node client signer: ``CN=system:node:NAME, O=system:nodes``, no names,
  a client certificate;
- node serving signer: the same subject, a server certificate for the
  request's names (SANs);
- generic client signer: any subject but ``system:masters`` (unless a
  master asked), a client certificate.

The certificate lives as long as the control service's ``--cert-validity``,
or the request's ``expirationSeconds`` when shorter, and is written to
``status.certificate``. A request that breaks its signer's rules gets the
Failed condition with the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Hashable

from control.api import certificates as csrs, errors
from control.auth.identity import NODE_PREFIX, NODES_GROUP, SYSTEM_MASTERS
from control.auth.pki import ClusterPKI, csr_server_names, issue, load_csr, subject_names
from control.client import Client
from control.controllers.informers import Informers, queue_key_of
from control.controllers.queue import WorkQueue, run_workers

log = logging.getLogger(__name__)


class SigningError(Exception):
    """Why an approved request cannot be issued."""


class CertificateSigner:
    """Issues one request's certificate with the cluster CA."""

    def __init__(self, pki: ClusterPKI, *, validity: dt.timedelta) -> None:
        self.pki = pki
        self.validity = validity

    def sign(self, spec) -> bytes:
        """The PEM certificate for an approved request's spec; SigningError says why not."""
        try:
            request = load_csr(spec.request)
        except ValueError as err:
            raise SigningError(str(err)) from None
        common_name, organizations = subject_names(request)
        names = csr_server_names(request)
        signer = spec.signer_name
        if signer in (csrs.NODE_CLIENT_SIGNER, csrs.NODE_SERVING_SIGNER):
            if not common_name.startswith(NODE_PREFIX) or organizations != (NODES_GROUP,):
                raise SigningError(f"{signer} signs only CN={NODE_PREFIX}<name>, O={NODES_GROUP}")
            if signer == csrs.NODE_CLIENT_SIGNER and names:
                raise SigningError(f"{signer} signs no subject alternative names")
            if signer == csrs.NODE_SERVING_SIGNER and not names:
                raise SigningError(f"{signer} needs the node's names (subject alternative names)")
        elif signer == csrs.CLIENT_SIGNER:
            if SYSTEM_MASTERS in organizations and SYSTEM_MASTERS not in spec.groups:
                raise SigningError(f"only a member of {SYSTEM_MASTERS} may be issued a certificate in that group")
            if names:
                raise SigningError(f"{signer} signs no subject alternative names")
        else:
            raise SigningError(f'unknown signer "{signer}"')
        validity = self.validity
        if spec.HasField("expiration_seconds"):
            validity = min(validity, dt.timedelta(seconds=spec.expiration_seconds))
        serving = signer == csrs.NODE_SERVING_SIGNER
        pair = issue(self.pki.ca, common_name=common_name, organizations=organizations, validity=validity,
                     client=not serving, server=serving, server_names=names, public_key=request.public_key())
        return pair.cert_pem


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def needs_signing(csr) -> bool:
    return (csrs.condition(csr, csrs.APPROVED) is not None and not csr.status.certificate
            and csrs.condition(csr, csrs.DENIED) is None and csrs.condition(csr, csrs.FAILED) is None)


async def run_csr_signer(api: Client, informers: Informers, signer: CertificateSigner, *, workers: int = 2) -> None:
    """Issue approved requests until cancelled (the informer is asked for at once, so it
    starts with the others)."""
    requests = informers.get("CertificateSigningRequest")
    queue = WorkQueue()

    async def reconcile(key: Hashable) -> float | None:
        _namespace, name = key  # type: ignore[misc]
        cached = requests.get("", name)
        if cached is None or not needs_signing(cached):
            return None
        try:
            current = await api.get("CertificateSigningRequest", name)
        except errors.NotFoundError:
            return None
        if not needs_signing(current):
            return None
        try:
            current.status.certificate = signer.sign(current.spec)
            log.info("issued certificate signing request %s (%s)", name, current.spec.signer_name)
        except SigningError as err:
            csrs.add_condition(current, csrs.FAILED, reason="SignerValidationFailure", message=str(err), now=_now())
            log.warning("cannot issue certificate signing request %s: %s", name, err)
        await api.update_status(current)
        return None

    await requests.synced.wait()
    requests.add_handler(queue_key_of(queue.add))
    try:
        await run_workers(queue, reconcile, workers=workers)
    finally:
        queue.close()
