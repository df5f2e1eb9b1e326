"""What the nftables mode's table holds, Service port by Service port, so a sync writes only what changed.

``AppliedServices`` remembers, for each Service port the table serves, the
``VirtualService`` it was built from and the part of the table it adds
(``nft_ruleset.service_rules``: its chains, affinity sets and map elements),
and how many Service ports have each backend in the hairpin set (two
Services may share a backend).

``update(state)`` brings that record to a new state and returns the
transaction for the Service ports that changed: a port is unchanged when
the state hands over the same ``VirtualService`` object (the proxy's core
keeps the objects of unchanged Services, proxy/state.py) or an equal one,
and only the parts of the changed, new and removed ports are built and
compared (``partial_transaction`` on those parts alone). So one endpoint
added to one Service costs that Service's lines and a walk over the state's
names, whatever the number of Services; the table as a whole is never built
between full syncs. A hairpin element is added when its first Service port
appears and deleted when its last one goes.

``ruleset()`` is the whole table from the parts, for a full sync, which
still lists the kernel's table and removes whatever is stale. Map keys are
assumed unique to a Service port (the API allocates ClusterIPs and
NodePorts once); were two ports to claim one key, the next full sync
settles it.
"""

from __future__ import annotations

from collections import Counter

from proxy.nft_ruleset import (
    HAIRPIN,
    PART_ELEMENTS,
    Ruleset,
    hairpin_element,
    partial_transaction,
    service_rules,
    whole_ruleset,
)
from proxy.state import ProxyState, ServicePortName, VirtualService


class AppliedServices:
    """The table's content per Service port (see the module docstring)."""

    def __init__(self, *, node_name: str, cluster_cidr: str = "") -> None:
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self.services: dict[ServicePortName, tuple[VirtualService, Ruleset]] = {}
        self.hairpin: Counter[str] = Counter()

    def ruleset(self, *, mark: int) -> Ruleset:
        """The whole table for what the record holds."""
        return whole_ruleset((part for _, part in self.services.values()), hairpin=self.hairpin, mark=mark)

    def update(self, state: ProxyState, *, transaction: bool = True) -> str:
        """Record ``state``; the transaction of the changed Service ports ('' when none, or not asked for)."""
        if state.node_name != self.node_name:
            raise ValueError(f"state for node {state.node_name!r}, record for {self.node_name!r}")
        before, after = _empty_part(), _empty_part()
        hairpin_was: dict[str, bool] = {}  # element -> in the set before this update
        seen: set[ServicePortName] = set()
        for service in state.services:
            seen.add(service.name)
            known = self.services.get(service.name)
            if known is not None and (known[0] is service or known[0] == service):
                continue
            if known is not None:
                before.merge(known[1])
                self._count_hairpin(known[0], -1, hairpin_was)
            part = service_rules(service, node_name=self.node_name, cluster_cidr=self.cluster_cidr)
            after.merge(part)
            self.services[service.name] = (service, part)
            self._count_hairpin(service, 1, hairpin_was)
        for name in self.services.keys() - seen:
            old_service, old_part = self.services.pop(name)
            before.merge(old_part)
            self._count_hairpin(old_service, -1, hairpin_was)
        if not transaction:
            return ""
        for element, was in hairpin_was.items():
            now = element in self.hairpin
            if was != now:
                (after if now else before).elements[HAIRPIN][element] = ""
        return partial_transaction(before, after)

    def _count_hairpin(self, service: VirtualService, step: int, was: dict[str, bool]) -> None:
        for backend in service.backends:
            element = hairpin_element(backend)
            was.setdefault(element, element in self.hairpin)
            self.hairpin[element] += step
            if self.hairpin[element] <= 0:
                del self.hairpin[element]


def _empty_part() -> Ruleset:
    return Ruleset(elements={name: {} for name in PART_ELEMENTS})
