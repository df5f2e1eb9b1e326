"""CertificateSigningRequests as every party reads them: signers, usages, conditions.

Shared by the agents that ask (agent/certificates.py), the validation and
the signer that answer in the control service, and the approver
(control/controllers/csr_approving.py). The signer names and usages are
Kubernetes' certificates.k8s.io/v1 ones; a request's state is its
conditions: none (pending), Approved (then status.certificate once signed),
Denied, or Failed (approved but the signer could not issue it).
"""

from __future__ import annotations

from typing import Sequence

from protos.api.v1 import certificates_pb2

API_VERSION = "certificates.k8s.io/v1"
KIND = "CertificateSigningRequest"
# A node's client certificate (CN=system:node:NAME, O=system:nodes), for calling the API.
NODE_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
# A node's serving certificate (its agent's gRPC server), SANs its name and addresses.
NODE_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
# Any other client certificate (never approved automatically).
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
SIGNERS = (NODE_CLIENT_SIGNER, NODE_SERVING_SIGNER, CLIENT_SIGNER)

DIGITAL_SIGNATURE = "digital signature"
KEY_ENCIPHERMENT = "key encipherment"
CLIENT_AUTH = "client auth"
SERVER_AUTH = "server auth"
USAGES = (DIGITAL_SIGNATURE, KEY_ENCIPHERMENT, CLIENT_AUTH, SERVER_AUTH)
CLIENT_USAGES = (DIGITAL_SIGNATURE, CLIENT_AUTH)
SERVING_USAGES = (DIGITAL_SIGNATURE, SERVER_AUTH)
# What each signer issues: the usages a request to it may ask for, and the one it must.
SIGNER_USAGES = {
    NODE_CLIENT_SIGNER: ({DIGITAL_SIGNATURE, KEY_ENCIPHERMENT, CLIENT_AUTH}, CLIENT_AUTH),
    NODE_SERVING_SIGNER: ({DIGITAL_SIGNATURE, KEY_ENCIPHERMENT, SERVER_AUTH}, SERVER_AUTH),
    CLIENT_SIGNER: ({DIGITAL_SIGNATURE, KEY_ENCIPHERMENT, CLIENT_AUTH}, CLIENT_AUTH),
}
# Kubernetes' floor for spec.expirationSeconds.
MIN_EXPIRATION_SECONDS = 600

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
CONDITION_TYPES = (APPROVED, DENIED, FAILED)


def new_request(*, name: str = "", generate_name: str = "", request: bytes, signer_name: str,
                usages: Sequence[str], expiration_seconds: int | None = None
                ) -> certificates_pb2.CertificateSigningRequest:
    csr = certificates_pb2.CertificateSigningRequest(api_version=API_VERSION, kind=KIND)
    if name:
        csr.metadata.name = name
    if generate_name:
        csr.metadata.generate_name = generate_name
    csr.spec.request = request
    csr.spec.signer_name = signer_name
    csr.spec.usages.extend(usages)
    if expiration_seconds is not None:
        csr.spec.expiration_seconds = expiration_seconds
    return csr


def condition(csr, type_: str):
    """The request's condition of this type (status True), or None."""
    for cond in csr.status.conditions:
        if cond.type == type_ and cond.status == "True":
            return cond
    return None


def is_decided(csr) -> bool:
    return condition(csr, APPROVED) is not None or condition(csr, DENIED) is not None


def state(csr) -> str:
    """Pending, Approved, Approved,Issued, Denied or Failed (as kubectl's CONDITION column)."""
    if condition(csr, DENIED) is not None:
        return DENIED
    if condition(csr, FAILED) is not None:
        return FAILED
    if condition(csr, APPROVED) is not None:
        return "Approved,Issued" if csr.status.certificate else APPROVED
    return "Pending"


def add_condition(csr, type_: str, *, reason: str, message: str, now: str) -> None:
    csr.status.conditions.add(type=type_, status="True", reason=reason, message=message,
                              last_update_time=now, last_transition_time=now)
