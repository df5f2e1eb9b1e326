"""The desired state a proxy computes from Services, EndpointSlices and its Node (proxy/state.py).

Pure: API objects in, ProxyState out. Covers which Services and ports are
served, which endpoints become backends (ready only, the slice's number for
the port of the same name and protocol), NodePorts by Service type, ClientIP
affinity and its default timeout, externalTrafficPolicy Local and the
node's addresses.
"""

from __future__ import annotations

from protos.api.v1 import core_pb2, services_pb2
from proxy.state import Backend, ServicePortName, desired_state


def service(name: str = "web", *, cluster_ip: str = "10.96.0.10", type_: str = "ClusterIP",
            ports: tuple[tuple[str, int, str, int], ...] = (("http", 80, "TCP", 0),), namespace: str = "default",
            affinity: str = "", affinity_timeout: int = 0, policy: str = "") -> services_pb2.Service:
    svc = services_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name, svc.metadata.namespace = name, namespace
    svc.spec.cluster_ip = cluster_ip
    svc.spec.type = type_
    for port_name, number, protocol, node_port in ports:
        port = svc.spec.ports.add(name=port_name, port=number, protocol=protocol)
        if node_port:
            port.node_port = node_port
    if affinity:
        svc.spec.session_affinity = affinity
    if affinity_timeout:
        svc.spec.session_affinity_config.client_ip.timeout_seconds = affinity_timeout
    if policy:
        svc.spec.external_traffic_policy = policy
    return svc


def endpoint_slice(service_name: str, endpoints: list[tuple[str, bool | None, str]], *,
                   ports: tuple[tuple[str, int, str], ...] = (("http", 8080, "TCP"),),
                   namespace: str = "default", name: str = "") -> services_pb2.EndpointSlice:
    """endpoints: (address, ready (None: unset), node name)."""
    slice_ = services_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice", address_type="IPv4")
    slice_.metadata.name = name or f"{service_name}-abc"
    slice_.metadata.namespace = namespace
    slice_.metadata.labels["kubernetes.io/service-name"] = service_name
    for port_name, number, protocol in ports:
        slice_.ports.add(name=port_name, port=number, protocol=protocol)
    for address, ready, node_name in endpoints:
        entry = slice_.endpoints.add(addresses=[address], node_name=node_name)
        if ready is not None:
            entry.conditions.ready = ready
    return slice_


def node(name: str = "n1", addresses: tuple[tuple[str, str], ...] = (("InternalIP", "192.168.1.5"),)) -> core_pb2.Node:
    result = core_pb2.Node(api_version="v1", kind="Node")
    result.metadata.name = name
    for kind, address in addresses:
        result.status.addresses.add(type=kind, address=address)
    return result


def test_each_service_port_becomes_a_virtual_service_with_its_ready_backends_only():
    state = desired_state(node_name="n1", node=None, services=[service()], slices=[
        endpoint_slice("web", [("10.244.0.2", True, "n1"), ("10.244.0.3", False, "n1"), ("10.244.0.4", None, "n2")])])
    [web] = state.services
    assert web.name == ServicePortName("default", "web", "http", "TCP")
    assert (web.cluster_ip, web.port, web.protocol, web.node_port) == ("10.96.0.10", 80, "TCP", 0)
    # Not ready: no traffic. Unset ready counts as ready (discovery/v1).
    assert web.backends == (Backend("10.244.0.2", 8080, "n1"), Backend("10.244.0.4", 8080, "n2"))
    assert state.endpoint_count == 2


def test_each_port_takes_the_number_its_slice_gives_for_the_same_name_and_protocol():
    svc = service(ports=(("http", 80, "TCP", 0), ("dns", 53, "UDP", 0), ("dns-tcp", 53, "TCP", 0)))
    slices = [
        endpoint_slice("web", [("10.244.0.2", True, "")], ports=(("http", 8080, "TCP"), ("dns", 5353, "UDP"))),
        # Pods that serve the named port on another number sit in their own slice.
        endpoint_slice("web", [("10.244.0.9", True, "")], ports=(("http", 9090, "TCP"),), name="web-other"),
    ]
    state = desired_state(node_name="n1", node=None, services=[svc], slices=slices)
    by_port = {v.name.port: v.backends for v in state.services}
    assert by_port["http"] == (Backend("10.244.0.2", 8080), Backend("10.244.0.9", 9090))
    assert by_port["dns"] == (Backend("10.244.0.2", 5353),)
    assert by_port["dns-tcp"] == ()  # no slice serves it: a virtual service without backends (rejected)


def test_slices_of_other_services_and_namespaces_are_not_backends():
    slices = [endpoint_slice("other", [("10.244.0.5", True, "")]),
              endpoint_slice("web", [("10.244.0.6", True, "")], namespace="elsewhere")]
    [web] = desired_state(node_name="n1", node=None, services=[service()], slices=slices).services
    assert web.backends == ()


def test_headless_unallocated_and_external_name_services_are_not_served():
    services = [service("headless", cluster_ip="None"), service("pending", cluster_ip=""),
                service("ext", cluster_ip="", type_="ExternalName"), service("web")]
    state = desired_state(node_name="n1", node=None, services=services, slices=[])
    assert [v.name.name for v in state.services] == ["web"]


def test_sctp_ports_are_left_out_and_an_unnamed_port_is_named_by_its_number():
    svc = service(ports=(("", 80, "TCP", 0),))
    svc.spec.ports.add(name="sctp", port=9, protocol="SCTP")
    state = desired_state(node_name="n1", node=None, services=[svc], slices=[])
    assert [str(v.name) for v in state.services] == ["default/web:80/tcp"]


def test_node_ports_are_served_only_for_node_port_and_load_balancer_services():
    services = [service("np", type_="NodePort", ports=(("http", 80, "TCP", 30080),)),
                service("lb", type_="LoadBalancer", cluster_ip="10.96.0.11", ports=(("http", 80, "TCP", 30081),)),
                service("cip", cluster_ip="10.96.0.12", ports=(("http", 80, "TCP", 30082),))]
    state = desired_state(node_name="n1", node=None, services=services, slices=[])
    assert {v.name.name: v.node_port for v in state.services} == {"np": 30080, "lb": 30081, "cip": 0}


def test_client_ip_affinity_carries_its_timeout_or_kubernetes_default():
    services = [service("a", affinity="ClientIP", affinity_timeout=60),
                service("b", affinity="ClientIP", cluster_ip="10.96.0.11"),
                service("c", affinity="None", cluster_ip="10.96.0.12")]
    state = desired_state(node_name="n1", node=None, services=services, slices=[])
    assert {v.name.name: v.affinity_timeout for v in state.services} == {"a": 60, "b": 10800, "c": 0}


def test_external_traffic_policy_local_picks_this_nodes_backends_for_node_ports():
    svc = service(type_="NodePort", ports=(("http", 80, "TCP", 30080),), policy="Local")
    slices = [endpoint_slice("web", [("10.244.0.2", True, "n1"), ("10.244.1.2", True, "n2")])]
    [web] = desired_state(node_name="n1", node=None, services=[svc], slices=slices).services
    assert web.local_external_traffic
    assert web.local_backends("n1") == (Backend("10.244.0.2", 8080, "n1"),)
    assert len(web.backends) == 2  # ClusterIP traffic still reaches every backend


def test_the_nodes_ipv4_internal_and_external_addresses_are_its_node_addresses():
    this = node(addresses=(("Hostname", "n1"), ("InternalIP", "192.168.1.5"), ("ExternalIP", "203.0.113.7"),
                           ("InternalIP", "fd00::5")))
    state = desired_state(node_name="n1", node=this, services=[], slices=[])
    assert state.node_addresses == ("192.168.1.5", "203.0.113.7")
    assert desired_state(node_name="n1", node=None, services=[], slices=[]).node_addresses == ()


def test_the_same_objects_give_an_equal_state():
    objects = dict(services=[service("b", cluster_ip="10.96.0.11"), service("a")],
                   slices=[endpoint_slice("a", [("10.244.0.3", True, ""), ("10.244.0.2", True, "")])])
    first = desired_state(node_name="n1", node=node(), **objects)
    reordered = desired_state(node_name="n1", node=node(), services=objects["services"][::-1],
                              slices=objects["slices"])
    assert first == reordered
    assert [v.name.name for v in first.services] == ["a", "b"]
