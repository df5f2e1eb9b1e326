"""The desired ``ProxyState``, recomputed one Service at a time between full syncs.

``desired_state`` (proxy/state.py) computes the state from every Service
and EndpointSlice: at 10,000 Services that alone is about a quarter of a
second, paid on every sync. ``StateTracker`` keeps each Service's
``VirtualService`` values and recomputes only those of the Services whose
Service or EndpointSlices changed since the last sync:

- the proxy's watch handlers tell it what changed (``service_changed``,
  ``slice_changed``); a slice's change marks the Service its
  ``kubernetes.io/service-name`` label names, before and after the change,
  and the tracker keeps which slices belong to which Service;
- ``state(full=False)`` recomputes the marked Services from the reflectors'
  current objects and hands back a ``ProxyState`` whose other
  ``VirtualService`` objects are the very ones of the previous state: a
  mode can tell an unchanged Service port by identity, without comparing
  it (proxy/nft_services.py);
- ``state(full=True)`` (the first sync, the periodic resync, after a
  failure) computes everything again, as ``desired_state`` does, and
  rebuilds the index of slices: whatever the incremental path might have
  missed is put right there.

The node's addresses are read on every call (one Node). Services are in
the state sorted by namespace and name, then by port name: the order
``desired_state`` gives.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping

from google.protobuf.message import Message

from proxy.state import SERVICE_NAME_LABEL, ProxyState, VirtualService, node_addresses, virtual_services

ServiceKey = tuple[str, str]  # namespace, name


def slice_service(slice_: Message) -> ServiceKey | None:
    """The Service an IPv4 EndpointSlice belongs to, or None (no label, another address type)."""
    name = slice_.metadata.labels.get(SERVICE_NAME_LABEL)
    if not name or (slice_.address_type or "IPv4") != "IPv4":
        return None
    return slice_.metadata.namespace, name


class StateTracker:
    """See the module docstring."""

    def __init__(self, *, node_name: str) -> None:
        self.node_name = node_name
        self._ports: dict[ServiceKey, tuple[VirtualService, ...]] = {}  # Services with ports the proxy serves
        self._order: list[ServiceKey] | None = None  # sorted keys of _ports; None: to sort again
        self._slices: dict[ServiceKey, set[Hashable]] = {}  # Service -> keys of its slices
        self._dirty: set[ServiceKey] = set()

    def service_changed(self, old: Message | None, new: Message | None) -> None:
        current = new if new is not None else old
        if current is not None:
            self._dirty.add((current.metadata.namespace, current.metadata.name))

    def slice_changed(self, old: Message | None, new: Message | None, *, key: Hashable) -> None:
        """An EndpointSlice (``key``: its key in the slices' mapping) was added, changed or deleted."""
        before = slice_service(old) if old is not None else None
        after = slice_service(new) if new is not None else None
        if before is not None:
            self._dirty.add(before)
            if before != after:
                self._slices.get(before, set()).discard(key)
        if after is not None:
            self._dirty.add(after)
            self._slices.setdefault(after, set()).add(key)

    def state(self, *, services: Mapping[ServiceKey, Message], slices: Mapping[Hashable, Message],
              node: Message | None, full: bool) -> ProxyState:
        """The desired state; ``services`` and ``slices`` are the reflectors' objects by their keys."""
        if full:
            self._rebuild(services, slices)
        else:
            dirty, self._dirty = self._dirty, set()
            for key in dirty:
                self._recompute(key, services.get(key), (slices[k] for k in self._slices.get(key, ()) if k in slices))
                if not self._slices.get(key, True):
                    del self._slices[key]
        if self._order is None:
            self._order = sorted(self._ports)
        ports = self._ports
        return ProxyState(node_name=self.node_name, node_addresses=node_addresses(node),
                          services=tuple(port for key in self._order for port in ports[key]))

    def _rebuild(self, services: Mapping[ServiceKey, Message], slices: Mapping[Hashable, Message]) -> None:
        self._dirty.clear()
        self._slices = {}
        for slice_key, slice_ in slices.items():
            owner = slice_service(slice_)
            if owner is not None:
                self._slices.setdefault(owner, set()).add(slice_key)
        self._ports = {}
        self._order = None
        for key, service in services.items():
            self._recompute(key, service, (slices[k] for k in self._slices.get(key, ())))

    def _recompute(self, key: ServiceKey, service: Message | None, slices: Iterable[Message]) -> None:
        ports = tuple(sorted(virtual_services(service, slices), key=lambda port: port.name)) if service else ()
        if ports:
            if key not in self._ports:
                self._order = None
            self._ports[key] = ports
        elif self._ports.pop(key, None) is not None:
            self._order = None
