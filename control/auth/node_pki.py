"""A node's credentials on disk: what its agent and proxy present and trust.

One directory per machine (``sampan agent --pki-dir``, default
``/var/lib/sampan/agent/pki``; ``sampan proxy --pki-dir`` reads the same):

===============================  ==============================================
file                             what
===============================  ==============================================
ca.crt                           the cluster CA: the API's and callers' anchor
client.crt, client.key           the node's identity for calling the API:
                                 CN=system:node:NAME, O=system:nodes
serving.crt, serving.key         the agent's own gRPC server (logs, exec, ...):
                                 SANs are the node's addresses and name
===============================  ==============================================

The node join (a bootstrap token and a CSR) fills the directory; so does
``sampan up`` for its own machine, which holds the CA (``issue_node``), and an
operator may fill it by hand. The agent and the proxy only read it: a missing
file is a ``NodeCredentialsMissing`` that names the file and what to do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from control.auth.identity import NODE_PREFIX, NODES_GROUP
from control.auth.pki import DEFAULT_VALIDITY, CertKey, ClusterPKI, issue, write_private
from control.auth.tls import TLSFiles

DEFAULT_NODE_PKI_DIR = Path("/var/lib/sampan/agent/pki")
CA_FILE = "ca.crt"
CLIENT = "client"
SERVING = "serving"


class NodeCredentialsMissing(ValueError):
    """A file the node needs is not in its PKI directory."""


@dataclass(frozen=True)
class NodePKI:
    """The node's PKI directory (see the module docstring for its files)."""

    directory: Path = DEFAULT_NODE_PKI_DIR

    @property
    def ca_path(self) -> Path:
        return Path(self.directory) / CA_FILE

    def cert_path(self, name: str) -> Path:
        return Path(self.directory) / f"{name}.crt"

    def key_path(self, name: str) -> Path:
        return Path(self.directory) / f"{name}.key"

    def files(self, name: str) -> TLSFiles:
        """The CA, certificate and key of CLIENT or SERVING; NodeCredentialsMissing names what is not there."""
        files = TLSFiles(ca=self.ca_path, cert=self.cert_path(name), key=self.key_path(name))
        for path in (files.ca, files.cert, files.key):
            if not path.is_file():
                raise NodeCredentialsMissing(
                    f"--pki-dir {self.directory}: {path.name} is missing; join the node with --token, "
                    f"or put the cluster CA and this node's certificates there (or run with --insecure-plaintext "
                    f"against a plain-text control service)")
        return files

    def has(self, name: str) -> bool:
        try:
            self.files(name)
        except NodeCredentialsMissing:
            return False
        return True

    def client_credentials(self):
        """The node's credentials for the API (control.client.ClientCredentials)."""
        from control.client import ClientCredentials

        ca, cert, key = self.files(CLIENT).read()
        return ClientCredentials(ca=ca, cert=cert, key=key)

    def write_ca(self, ca_pem: bytes) -> None:
        write_private(self.ca_path, ca_pem, mode=0o644)

    def write(self, name: str, pair: CertKey) -> None:
        """Save CLIENT's or SERVING's certificate (and key, when pair has one)."""
        if pair.key is not None:
            write_private(self.key_path(name), pair.key_pem)
        write_private(self.cert_path(name), pair.cert_pem, mode=0o644)


def node_server_names(node_name: str, addresses: Sequence[str]) -> list[str]:
    """The agent's serving certificate's names: what the control service dials it at."""
    return list(dict.fromkeys(n for n in (*addresses, node_name, "localhost", "127.0.0.1") if n))


def issue_node(cluster: ClusterPKI, node: NodePKI, *, node_name: str, addresses: Sequence[str],
               validity: dt.timedelta = DEFAULT_VALIDITY) -> None:
    """Sign a node's client and serving certificates with the cluster CA and fill its
    directory (for a machine that holds the CA itself, as ``sampan up``'s does)."""
    ca = cluster.ca
    node.write_ca(cluster.ca_pem)
    node.write(CLIENT, issue(ca, common_name=NODE_PREFIX + node_name, organizations=[NODES_GROUP],
                             validity=validity))
    node.write(SERVING, issue(ca, common_name=NODE_PREFIX + node_name, organizations=[NODES_GROUP],
                              validity=validity, client=False, server=True,
                              server_names=node_server_names(node_name, addresses)))
