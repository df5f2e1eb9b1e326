"""A pod's resolver settings (its /etc/resolv.conf), formed as the kubelet forms them.

``pod_dns(pod, host=..., cluster=...)`` starts from the pod's dnsPolicy:

- ``ClusterFirst`` (the default): the cluster DNS (the agent's
  ``--cluster-dns``, the kube-dns Service's cluster IP) as the only
  nameserver, which forwards what is not the cluster's; search
  ``NAMESPACE.svc.DOMAIN svc.DOMAIN DOMAIN`` then the host's search domains;
  ``options ndots:5`` (so ``web`` and ``web.shop`` are tried under the
  cluster's domains first). A hostNetwork pod with ClusterFirst gets the
  host's settings instead, as in Kubernetes; ``ClusterFirstWithHostNet``
  gives it the cluster's. An agent without ``--cluster-dns`` gives the
  host's, with a MissingClusterDNS warning.
- ``Default``: the host's resolv.conf (nameservers, search, options).
- ``None``: nothing but the pod's dnsConfig.

The pod's ``dnsConfig`` is then merged in: its nameservers and search
domains appended (duplicates dropped, first kept), its options replacing
those of the same name (an option without a value is its bare name). The
result is cut to what resolvers take: 3 nameservers, 32 search domains and
2048 characters of search list; what is cut is named in a DNSConfigForming
warning.

Where it lands: containerd writes the sandbox's resolv.conf from the CRI's
``dns_config`` and mounts it into every container (for hostNetwork pods
too). The process runtime has no mount namespace: its processes read the
host's /etc/resolv.conf whatever the policy says (a limit of that runtime).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.runtime.base import DNSConfig
from protos.api.v1 import core_pb2

RESOLV_CONF = "/etc/resolv.conf"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
CLUSTER_OPTIONS = ("ndots:5",)
# What resolvers take (glibc: 3 nameservers; Kubernetes' limits on search domains).
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048


@dataclass(frozen=True)
class ClusterDNS:
    """The agent's ``--cluster-dns`` addresses and ``--cluster-domain``; no servers: no cluster DNS."""

    servers: tuple[str, ...] = ()
    domain: str = DEFAULT_CLUSTER_DOMAIN


@dataclass(frozen=True)
class PodDNS:
    """A pod's resolver settings and the warnings forming them raised, as (reason, message)."""

    config: DNSConfig
    warnings: tuple[tuple[str, str], ...] = ()


def read_resolv_conf(path: str = RESOLV_CONF) -> DNSConfig:
    """A resolv.conf's nameservers, search domains (the last search or domain line) and options."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if not path:
        return DNSConfig()
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return DNSConfig()
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = [name.rstrip(".") for name in fields[1:] if name != "."]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return DNSConfig(tuple(servers), tuple(searches), tuple(options))


def _uses_cluster_dns(spec: core_pb2.PodSpec) -> bool:
    policy = spec.dns_policy or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet":
        return True
    return policy == "ClusterFirst" and not spec.host_network


def pod_dns(pod: core_pb2.Pod, *, host: DNSConfig, cluster: ClusterDNS) -> PodDNS:
    """The pod's resolver settings; see the module docstring."""
    spec = pod.spec
    warnings: list[tuple[str, str]] = []
    if spec.dns_policy == "None":
        base = DNSConfig()
    elif _uses_cluster_dns(spec) and cluster.servers:
        domain = cluster.domain.strip(".")
        cluster_searches = (f"{pod.metadata.namespace}.svc.{domain}", f"svc.{domain}", domain) if domain else ()
        base = DNSConfig(servers=cluster.servers, searches=_unique([*cluster_searches, *host.searches]),
                         options=CLUSTER_OPTIONS)
    else:
        if _uses_cluster_dns(spec):
            warnings.append(("MissingClusterDNS", f"pod: {pod.metadata.name!r}. The agent has no --cluster-dns. "
                             f"Falling back to the host's resolver settings for dnsPolicy "
                             f"{spec.dns_policy or 'ClusterFirst'}."))
        base = host
    extra = spec.dns_config
    servers = _unique([*base.servers, *extra.nameservers])
    searches = _unique([*base.searches, *(name.rstrip(".") for name in extra.searches)])
    options = {option.split(":", 1)[0]: option for option in base.options}
    for option in extra.options:
        options[option.name] = f"{option.name}:{option.value}" if option.HasField("value") else option.name
    config, cut = _within_limits(DNSConfig(servers, searches, tuple(options.values())))
    if cut:
        warnings.append(("DNSConfigForming", cut))
    return PodDNS(config, tuple(warnings))


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


def _within_limits(config: DNSConfig) -> tuple[DNSConfig, str]:
    """The config cut to what resolvers take, and a message naming what was cut ("" if nothing)."""
    problems = []
    servers = config.servers[:MAX_NAMESERVERS]
    if len(config.servers) > MAX_NAMESERVERS:
        problems.append(f"Nameserver limits were exceeded, some nameservers have been omitted, "
                        f"the applied nameserver line is: {' '.join(servers)}")
    searches = list(config.searches[:MAX_SEARCHES])
    while searches and len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches.pop()
    if len(searches) < len(config.searches):
        problems.append(f"Search Line limits were exceeded, some search paths have been omitted, "
                        f"the applied search line is: {' '.join(searches)}")
    return DNSConfig(servers, tuple(searches), config.options), "; ".join(problems)
