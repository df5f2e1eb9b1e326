"""The desired state kept one Service at a time (proxy/tracker.py).

Pure, like tests/proxy/test_state.py: the tracker, fed the changes the
reflectors would report, must give exactly what ``desired_state`` computes
from all the objects, after every step of a long random sequence of
changes (Services added, changed and deleted; slices added, changed,
moved to another Service, turned IPv6 and deleted), and must hand back the
very same VirtualService objects for the Services that did not change.
"""

from __future__ import annotations

import random

from control.reflector import namespaced_name
from proxy.state import desired_state
from proxy.tracker import StateTracker
from tests.proxy.test_state import endpoint_slice, node, service

NAMES = [f"svc{i}" for i in range(8)]


class World:
    """The reflectors' dictionaries, and the tracker told about every change to them."""

    def __init__(self) -> None:
        self.services: dict = {}
        self.slices: dict = {}
        self.tracker = StateTracker(node_name="n1")

    def put_service(self, svc) -> None:
        key = namespaced_name(svc)
        old = self.services.get(key)
        self.services[key] = svc
        self.tracker.service_changed(old, svc)

    def delete_service(self, key) -> None:
        self.tracker.service_changed(self.services.pop(key), None)

    def put_slice(self, slice_) -> None:
        key = namespaced_name(slice_)
        old = self.slices.get(key)
        self.slices[key] = slice_
        self.tracker.slice_changed(old, slice_, key=key)

    def delete_slice(self, key) -> None:
        self.tracker.slice_changed(self.slices.pop(key), None, key=key)

    def state(self, *, full: bool):
        return self.tracker.state(services=self.services, slices=self.slices, node=node(), full=full)

    def expected(self):
        return desired_state(node_name="n1", node=node(), services=self.services.values(),
                             slices=self.slices.values())


def random_change(world: World, rng: random.Random) -> None:
    choice = rng.random()
    name = rng.choice(NAMES)
    if choice < 0.25:
        world.put_service(service(name, cluster_ip=f"10.96.0.{NAMES.index(name) + 1}", ports=(
            ("http", 80, "TCP", 0), *((("dns", 53, "UDP", 0),) if rng.random() < 0.5 else ()))))
    elif choice < 0.35 and ("default", name) in world.services:
        world.delete_service(("default", name))
    elif choice < 0.85:
        slice_name = f"slice{rng.randrange(10)}"
        endpoints = [(f"10.244.{rng.randrange(4)}.{rng.randrange(1, 9)}", rng.choice([True, False, None]), "n1")
                     for _ in range(rng.randrange(4))]
        made = endpoint_slice(name, endpoints, name=slice_name,
                              ports=(("http", 8080, "TCP"), ("dns", 5353, "UDP")))
        if rng.random() < 0.1:
            made.address_type = "IPv6"
        world.put_slice(made)
    elif world.slices:
        world.delete_slice(rng.choice(sorted(world.slices)))


def test_the_incremental_state_equals_the_whole_computation_after_every_change():
    rng = random.Random(7)
    world = World()
    assert world.state(full=True) == world.expected()
    most_backends = 0
    for step in range(400):
        for _ in range(rng.randrange(1, 4)):
            random_change(world, rng)
        full = step % 50 == 49
        state = world.state(full=full)
        assert state == world.expected(), f"step {step} (full={full})"
        most_backends = max(most_backends, state.endpoint_count)
    assert most_backends >= 5  # the sequence did reach Services with backends


def test_unchanged_services_keep_their_objects_and_a_changed_one_gets_new_ones():
    world = World()
    for name in NAMES:
        world.put_service(service(name, cluster_ip=f"10.96.0.{NAMES.index(name) + 1}"))
        world.put_slice(endpoint_slice(name, [("10.244.0.2", True, "n1")], name=f"{name}-a"))
    before = {port.name.name: port for port in world.state(full=True).services}
    world.put_slice(endpoint_slice("svc3", [("10.244.0.2", True, "n1"), ("10.244.0.9", True, "n1")],
                                   name="svc3-a"))
    after = {port.name.name: port for port in world.state(full=False).services}
    assert [name for name in NAMES if after[name] is not before[name]] == ["svc3"]
    assert len(after["svc3"].backends) == 2


def test_a_slice_moved_to_another_service_leaves_the_first():
    world = World()
    for name in ("a", "b"):
        world.put_service(service(name, cluster_ip="10.96.0.1" if name == "a" else "10.96.0.2"))
    world.put_slice(endpoint_slice("a", [("10.244.0.2", True, "n1")], name="shared"))
    world.state(full=True)
    world.put_slice(endpoint_slice("b", [("10.244.0.2", True, "n1")], name="shared"))
    ports = {port.name.name: port.backends for port in world.state(full=False).services}
    assert ports["a"] == () and len(ports["b"]) == 1
