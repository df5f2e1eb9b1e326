"""Who asked for a certificate: the API server's part of a CertificateSigningRequest.

As Kubernetes' API server does, the requester's name, uid and groups in a
new request's spec are the authenticated caller's, whatever the client
wrote there: the approver (control/controllers/csr_approving.py) decides on
them, so they must not be the client's word.
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.auth.identity import UserInfo


def stamp_requester(csr: Message, user: UserInfo) -> None:
    spec = csr.spec
    spec.username = user.name
    spec.ClearField("uid")
    del spec.groups[:]
    spec.groups.extend(user.groups)
