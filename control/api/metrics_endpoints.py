"""Where a node's daemons serve their Prometheus metrics: two Node annotations.

Kubernetes' Node has one field for a daemon's endpoint,
``status.daemonEndpoints.kubeletEndpoint``, and it names the kubelet's API
port; Sampan's agent uses it for the same thing (logs, exec). The agent's and
the proxy's ``/metrics`` listen elsewhere, so each daemon records its own
address in an annotation on its Node, as node add-ons do for facts the
schema has no place for (flannel's public IP, kubeadm's CRI socket):

- ``sampan.io/agent-metrics``, written by the agent when it registers;
- ``sampan.io/proxy-metrics``, merge-patched by the proxy once its Node exists.

Each daemon owns one key, so neither rewrites the other's. The value is the
``HOST:PORT`` the daemon listens on with the real port (``--metrics-listen``
port 0 becomes the port it got). A wildcard host (``0.0.0.0``, ``::``) means
"every address of this node": readers use the Node's InternalIP instead
(``scrape_host``).
"""

from __future__ import annotations

AGENT_METRICS = "sampan.io/agent-metrics"
PROXY_METRICS = "sampan.io/proxy-metrics"

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def join_host_port(host: str, port: int) -> str:
    """``HOST:PORT``, an IPv6 host in brackets."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(value: str) -> tuple[str, int]:
    """The host and port of ``HOST:PORT`` (host may be bracketed IPv6 or empty);
    ValueError naming the rule otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: must be HOST:PORT with a port from 1 to 65535")
    return host.strip("[]"), int(port)


def scrape_host(host: str, *, node_ip: str) -> str:
    """The host to scrape a daemon listening on host: node_ip for a wildcard."""
    return node_ip if host in WILDCARD_HOSTS else host
