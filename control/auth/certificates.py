"""Authentication by client certificate: CN is the user, O the groups.

By the time a request is read, grpc has verified the certificate against
the cluster CA (control/auth/tls.py): it is unexpired and the CA signed it.
This authenticator only reads the names, as Kubernetes' x509 authenticator
does, and refuses a certificate without a CN. An anonymous certificate
(anonymous.py) gives no identity: the request's token decides.
"""

from __future__ import annotations

from cryptography import x509

from control.api import errors
from control.auth.anonymous import is_anonymous
from control.auth.authenticator import Credentials
from control.auth.identity import UserInfo, authenticated
from control.auth.pki import subject_names


class CertificateAuthenticator:
    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        if not credentials.peer_certificate:
            return None
        try:
            cert = x509.load_pem_x509_certificate(credentials.peer_certificate)
        except ValueError:
            raise errors.UnauthorizedError("Unauthorized: the client certificate cannot be read") from None
        if is_anonymous(cert):
            return None  # it names nobody: the request's bearer token must prove who it is
        common_name, organizations = subject_names(cert)
        if not common_name:
            raise errors.UnauthorizedError("Unauthorized: the client certificate has no common name (CN) to name its user")
        return authenticated(common_name, organizations)
