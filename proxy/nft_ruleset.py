"""The nftables mode's rules, as data: ``build_ruleset`` and the transactions that apply it.

Everything lives in one table, ``ip sampan``; no other table is read or
written. A packet's path costs the same whatever the number of Services:

- ``nat-prerouting`` (traffic arriving) and ``nat-output`` (traffic from this
  host) jump to ``services``, which makes one lookup in the verdict map
  ``service-ips`` (ClusterIP . protocol . port) and, for a destination that
  is one of this node's addresses (``fib daddr type local``, loopback
  excepted), one in ``service-nodeports`` (protocol . port);
- a hit goes to the Service port's chain ``service-NS/NAME/PROTO/PORT``,
  which DNATs to one of its N backends, each as likely: backend i is taken
  when ``numgen random mod (N-i) == 0`` (a new random number per rule), the
  last one otherwise. A NodePort first passes
  ``external-...``, which marks the packet for masquerade
  (``externalTrafficPolicy: Cluster``) or, for ``Local``, keeps the client's
  address and goes to ``local-...`` (the same pick among this node's
  backends only; traffic from the node itself is masqueraded and may use
  any backend);
- ``nat-postrouting`` masquerades marked packets: NodePort traffic, a pod
  reaching itself through its Service (hairpin: the set ``hairpin`` holds
  each backend's ``address . address``, so one lookup of ``saddr . daddr``
  after DNAT finds it), and, with a cluster CIDR, traffic to a ClusterIP
  from outside it;
- a Service port without ready backends has an entry in
  ``no-endpoint-services`` / ``no-endpoint-nodeports``, checked by the filter
  chains (input, forward, output) for new connections: TCP is reset, other
  protocols get ICMP host-unreachable. Under ``externalTrafficPolicy: Local``
  a node without a backend of its own drops external NodePort traffic.

ClientIP affinity needs to know which backend a client got, so such a
Service's backends get chains of their own: each backend has a set
``affinity-TIMEOUTs-...`` of client addresses with that timeout; its chain
``endpoint-NS/NAME/PROTO/PORT__IP/PORT`` adds the client (``update @set
{ ip saddr }``) and DNATs; the Service's chain sends a client found in a
backend's set to that backend's chain, and others to a random one (a
``numgen`` verdict map). The timeout is part of the set's name, so a set,
once declared, never changes: a new timeout is a new set. Other Services
have no per-backend chain nor map: the kernel's work in a transaction grows
with the number of chains and sets, faster than linearly, so there is one
chain per Service port and no set of its own.

``Ruleset`` holds the table as plain data (chains with their rules, set and
map declarations, map and set elements), so a sync can compare the new
ruleset with the one it applied last. ``service_rules`` is one Service
port's part of it (``whole_ruleset`` puts the parts together with the fixed
objects), so that between full syncs only the changed ports' parts are
built and compared (proxy/nft_services.py). ``partial_transaction`` writes only
the difference: chains flushed and refilled, added or deleted, elements
deleted and added. An unchanged table needs no transaction, and one
Service's change is a transaction of that Service's lines only, however
many others there are (``nft`` itself still reads the table's names before
applying it, and the kernel checks every chain reachable from the base
chains when a transaction adds a NAT rule or a goto: costs that grow with
the table, about 2.5 µs a Service port here). Affinity sets that stay
keep their clients. ``full_transaction`` takes the names the kernel holds
now, flushes every chain and map of the table (and the hairpin set),
deletes what the ruleset does not hold, and declares and fills
everything: a stale rule, chain or set from an earlier run (or added by
hand) is gone afterwards. ``recreate_transaction`` deletes and redefines
the whole table, the fallback when the kernel's table cannot be
reconciled. Every transaction is one ``nft -f`` input, applied atomically
by the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from proxy.state import Backend, ProxyState, VirtualService

FAMILY = "ip"
TABLE = "sampan"
TABLE_REF = f"{FAMILY} {TABLE}"

MARK_FOR_MASQUERADE = "mark-for-masquerade"
MASQUERADING = "masquerading"
REJECT = "reject-chain"
SERVICES = "services"
ENDPOINTS_CHECK = "endpoints-check"
HAIRPIN = "hairpin"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"

_SERVICE_KEY = "type ipv4_addr . inet_proto . inet_service : verdict;"
_NODEPORT_KEY = "type inet_proto . inet_service : verdict;"
_LOCAL_DESTINATION = "fib daddr type local ip daddr != 127.0.0.0/8"
# The fixed sets and maps whose elements Service ports add.
PART_ELEMENTS = (SERVICE_IPS, SERVICE_NODEPORTS, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS, HAIRPIN)


@dataclass(frozen=True)
class Chain:
    """A chain and its rules; ``hook`` is the base chain's type/hook/priority, '' for a regular chain."""

    name: str
    rules: tuple[str, ...] = ()
    hook: str = ""


@dataclass(frozen=True)
class Declaration:
    """A named set or map: ``kind`` is "set" or "map", ``spec`` its body (type, flags, timeout)."""

    kind: str
    name: str
    spec: str


@dataclass
class Ruleset:
    """The whole table as data: chains, set and map declarations, and the elements the ruleset decides
    (the maps', and the hairpin set's; affinity sets are filled by packets)."""

    chains: dict[str, Chain] = field(default_factory=dict)
    declarations: dict[str, Declaration] = field(default_factory=dict)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # map -> key -> verdict ('' in a set)

    def add_chain(self, name: str, rules: Iterable[str] = (), *, hook: str = "") -> str:
        self.chains[name] = Chain(name, tuple(rules), hook)
        return name

    def merge(self, part: Ruleset) -> None:
        """Add ``part``'s chains, declarations and elements (a Service port's, from ``service_rules``)."""
        self.chains.update(part.chains)
        self.declarations.update(part.declarations)
        for name, entries in part.elements.items():
            if entries:
                self.elements.setdefault(name, {}).update(entries)

    def declare(self, kind: str, name: str, spec: str, *, with_elements: bool = False) -> str:
        """Declare a set or map; a map's elements (and, if asked, a set's) are kept by the ruleset."""
        self.declarations[name] = Declaration(kind, name, spec)
        if kind == "map" or with_elements:
            self.elements.setdefault(name, {})
        return name


@dataclass(frozen=True)
class TableObjects:
    """The names the kernel's table holds now (empty when there is no table)."""

    chains: frozenset[str] = frozenset()
    sets: frozenset[str] = frozenset()
    maps: frozenset[str] = frozenset()


# ------------------------------------------------------------ building


def build_ruleset(state: ProxyState, *, mark: int, cluster_cidr: str = "") -> Ruleset:
    """The table for ``state`` (see the module docstring)."""
    ruleset = Ruleset()
    _fixed_objects(ruleset, mark=mark)
    for service in state.services:
        _add_service(ruleset, service, node_name=state.node_name, cluster_cidr=cluster_cidr)
        for backend in service.backends:
            ruleset.elements[HAIRPIN][hairpin_element(backend)] = ""
    return ruleset


def whole_ruleset(parts: Iterable[Ruleset], *, hairpin: Iterable[str], mark: int) -> Ruleset:
    """The table from the Service ports' parts (``service_rules``) and the hairpin set's elements."""
    ruleset = Ruleset()
    _fixed_objects(ruleset, mark=mark)
    for part in parts:
        ruleset.merge(part)
    ruleset.elements[HAIRPIN].update(dict.fromkeys(hairpin, ""))
    return ruleset


def service_rules(service: VirtualService, *, node_name: str, cluster_cidr: str = "") -> Ruleset:
    """What one Service port adds to the table: its chains, sets and map elements (no fixed object)."""
    part = Ruleset(elements={name: {} for name in PART_ELEMENTS})
    _add_service(part, service, node_name=node_name, cluster_cidr=cluster_cidr)
    return part


def hairpin_element(backend: Backend) -> str:
    return f"{backend.ip} . {backend.ip}"


def _fixed_objects(ruleset: Ruleset, *, mark: int) -> None:
    for name, key in ((SERVICE_IPS, _SERVICE_KEY), (SERVICE_NODEPORTS, _NODEPORT_KEY),
                      (NO_ENDPOINT_SERVICES, _SERVICE_KEY), (NO_ENDPOINT_NODEPORTS, _NODEPORT_KEY)):
        ruleset.declare("map", name, key)
    ruleset.declare("set", HAIRPIN, "type ipv4_addr . ipv4_addr;", with_elements=True)
    ruleset.add_chain("nat-prerouting", [f"jump {SERVICES}"],
                      hook="type nat hook prerouting priority dstnat; policy accept;")
    # Output's dstnat priority (-100) by number: nft 1.0 accepts the name only in prerouting.
    ruleset.add_chain("nat-output", [f"jump {SERVICES}"], hook="type nat hook output priority -100; policy accept;")
    ruleset.add_chain("nat-postrouting", [f"jump {MASQUERADING}"],
                      hook="type nat hook postrouting priority srcnat; policy accept;")
    for hook in ("input", "forward", "output"):
        ruleset.add_chain(f"filter-{hook}", [f"ct state new jump {ENDPOINTS_CHECK}"],
                          hook=f"type filter hook {hook} priority -10; policy accept;")
    ruleset.add_chain(SERVICES, [
        f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
        f"{_LOCAL_DESTINATION} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
    ])
    ruleset.add_chain(ENDPOINTS_CHECK, [
        f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",
        f"{_LOCAL_DESTINATION} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
    ])
    ruleset.add_chain(MARK_FOR_MASQUERADE, [f"meta mark set meta mark | {mark:#x}"])
    ruleset.add_chain(MASQUERADING, [
        f"ct status dnat ip saddr . ip daddr @{HAIRPIN} jump {MARK_FOR_MASQUERADE}",  # a pod reaching itself
        f"meta mark & {mark:#x} == 0 return",
        f"meta mark set meta mark ^ {mark:#x}",  # a packet is masqueraded once; the bit must not leak on
        "masquerade fully-random",
    ])
    ruleset.add_chain(REJECT, ["meta l4proto tcp reject with tcp reset", "reject with icmp type host-unreachable"])


def chain_suffix(service: VirtualService) -> str:
    """NS/NAME/PROTO/PORT: readable, and unique (names and port names hold no '/')."""
    name = service.name
    return f"{name.namespace}/{name.name}/{service.protocol.lower()}/{name.port}"


def endpoint_chain(service: VirtualService, backend: Backend) -> str:
    return f"endpoint-{chain_suffix(service)}__{backend.ip}/{backend.port}"


def affinity_set(service: VirtualService, backend: Backend) -> str:
    return f"affinity-{service.affinity_timeout}s-{chain_suffix(service)}__{backend.ip}/{backend.port}"


def _add_service(ruleset: Ruleset, service: VirtualService, *, node_name: str, cluster_cidr: str) -> None:
    protocol = service.protocol.lower()
    cluster_key = f"{service.cluster_ip} . {protocol} . {service.port}"
    node_key = f"{protocol} . {service.node_port}"
    if not service.backends:
        ruleset.elements[NO_ENDPOINT_SERVICES][cluster_key] = f"goto {REJECT}"
        if service.node_port:
            ruleset.elements[NO_ENDPOINT_NODEPORTS][node_key] = f"goto {REJECT}"
        return
    if service.affinity_timeout:
        for backend in service.backends:
            _add_affinity_endpoint(ruleset, service, backend)
    suffix = chain_suffix(service)
    masquerade = [f"ip saddr != {cluster_cidr} jump {MARK_FOR_MASQUERADE}"] if cluster_cidr else []
    service_chain = ruleset.add_chain(f"service-{suffix}", [*masquerade, *_pick(service, service.backends)])
    ruleset.elements[SERVICE_IPS][cluster_key] = f"goto {service_chain}"
    if not service.node_port:
        return
    if not service.local_external_traffic:
        external = [f"jump {MARK_FOR_MASQUERADE}", f"goto {service_chain}"]
    else:
        # Traffic from the node itself is masqueraded and may use any backend;
        # other clients keep their address and reach this node's backends only.
        external = [f"fib saddr type local jump {MARK_FOR_MASQUERADE}", f"fib saddr type local goto {service_chain}"]
        local = service.local_backends(node_name)
        if local:
            external.append(f"goto {ruleset.add_chain(f'local-{suffix}', _pick(service, local))}")
        else:
            ruleset.elements[NO_ENDPOINT_NODEPORTS][node_key] = "drop"
    ruleset.elements[SERVICE_NODEPORTS][node_key] = f"goto {ruleset.add_chain(f'external-{suffix}', external)}"


def _add_affinity_endpoint(ruleset: Ruleset, service: VirtualService, backend: Backend) -> None:
    name = ruleset.declare("set", affinity_set(service, backend),
                           f"type ipv4_addr; flags dynamic,timeout; timeout {service.affinity_timeout}s;")
    ruleset.add_chain(endpoint_chain(service, backend), [f"update @{name} {{ ip saddr }}", _dnat(service, backend)])


def _dnat(service: VirtualService, backend: Backend) -> str:
    return f"meta l4proto {service.protocol.lower()} dnat to {backend.ip}:{backend.port}"


def _pick(service: VirtualService, backends: tuple[Backend, ...]) -> list[str]:
    """The rules that send a connection to one of ``backends``, chosen at random."""
    if service.affinity_timeout:
        rules = [f"ip saddr @{affinity_set(service, b)} goto {endpoint_chain(service, b)}" for b in backends]
        if len(backends) == 1:
            return [*rules, f"goto {endpoint_chain(service, backends[0])}"]
        choices = ", ".join(f"{i} : goto {endpoint_chain(service, b)}" for i, b in enumerate(backends))
        return [*rules, f"numgen random mod {len(backends)} vmap {{ {choices} }}"]
    # Backend i of n is taken with probability 1/(n-i) when none before it was: 1/n each in all.
    # (Rules, not an anonymous map per Service: the kernel's cost for a transaction declaring
    # thousands of anonymous maps grows much faster than for plain rules.)
    count = len(backends)
    rules = [f"numgen random mod {count - i} == 0 {_dnat(service, b)}" for i, b in enumerate(backends[:-1])]
    return [*rules, _dnat(service, backends[-1])]


# ------------------------------------------------------------ transactions


def _declare(item: Declaration) -> str:
    return f"add {item.kind} {TABLE_REF} {item.name} {{ {item.spec} }}"


def _add_chain(chain: Chain) -> str:
    return f"add chain {TABLE_REF} {chain.name}" + (f" {{ {chain.hook} }}" if chain.hook else "")


def _rules(chain: Chain) -> list[str]:
    return [f"add rule {TABLE_REF} {chain.name} {rule}" for rule in chain.rules]


def _elements(verb: str, name: str, entries: Mapping[str, str], *, keys_only: bool = False) -> list[str]:
    if not entries:
        return []
    body = ", ".join(key if keys_only or not value else f"{key} : {value}" for key, value in sorted(entries.items()))
    return [f"{verb} element {TABLE_REF} {name} {{ {body} }}"]


def _populate(ruleset: Ruleset) -> list[str]:
    lines = [_declare(item) for item in ruleset.declarations.values()]
    lines += [_add_chain(chain) for chain in ruleset.chains.values()]
    for chain in ruleset.chains.values():
        lines += _rules(chain)
    for map_name, entries in ruleset.elements.items():
        lines += _elements("add", map_name, entries)
    return lines


def full_transaction(ruleset: Ruleset, existing: TableObjects) -> str:
    """Rewrite the table from what the kernel holds: flush, delete the stale, declare and fill all."""
    lines = [f"add table {TABLE_REF}"]
    lines += [f"flush chain {TABLE_REF} {name}" for name in sorted(existing.chains)]
    lines += [f"flush map {TABLE_REF} {name}" for name in sorted(existing.maps)]
    # Sets whose elements the ruleset holds are refilled; affinity sets keep their clients.
    lines += [f"flush set {TABLE_REF} {name}" for name in sorted(existing.sets & ruleset.elements.keys())]
    lines += [f"delete chain {TABLE_REF} {name}" for name in sorted(existing.chains - ruleset.chains.keys())]
    for kind, names in (("set", existing.sets), ("map", existing.maps)):
        for name in sorted(names):
            wanted = ruleset.declarations.get(name)
            if wanted is None or wanted.kind != kind:
                lines.append(f"delete {kind} {TABLE_REF} {name}")
    return "\n".join(lines + _populate(ruleset)) + "\n"


def recreate_transaction(ruleset: Ruleset) -> str:
    """Delete the table (creating it first, so the delete cannot fail) and define it anew."""
    lines = [f"add table {TABLE_REF}", f"delete table {TABLE_REF}", f"add table {TABLE_REF}"]
    return "\n".join(lines + _populate(ruleset)) + "\n"


def partial_transaction(old: Ruleset, new: Ruleset) -> str:
    """Only what changed from ``old`` (the ruleset applied last) to ``new``; '' when nothing did."""
    lines = [_declare(item) for name, item in new.declarations.items() if name not in old.declarations]
    lines += [_add_chain(chain) for name, chain in new.chains.items() if name not in old.chains]
    for name, chain in new.chains.items():
        before = old.chains.get(name)
        if before is None:
            lines += _rules(chain)
        elif before.rules != chain.rules:
            lines.append(f"flush chain {TABLE_REF} {name}")
            lines += _rules(chain)
    for map_name in sorted(old.elements.keys() | new.elements.keys()):
        before, after = old.elements.get(map_name, {}), new.elements.get(map_name, {})
        if map_name in new.elements and map_name in old.elements:
            stale = {key: verdict for key, verdict in before.items() if after.get(key) != verdict}
            lines += _elements("delete", map_name, stale, keys_only=True)
        fresh = {key: verdict for key, verdict in after.items() if before.get(key) != verdict}
        lines += _elements("add", map_name, fresh)
    gone = sorted(old.chains.keys() - new.chains.keys())
    lines += [f"flush chain {TABLE_REF} {name}" for name in gone]  # all flushed first: they jump to each other
    lines += [f"delete chain {TABLE_REF} {name}" for name in gone]
    lines += [f"delete {old.declarations[name].kind} {TABLE_REF} {name}"
              for name in sorted(old.declarations.keys() - new.declarations.keys())]
    return "\n".join(lines) + "\n" if lines else ""

