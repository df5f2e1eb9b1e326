"""The cluster DNS against a real control service, asked by dnspython as a client.

Covers: the kube-dns Service (well-known cluster IP, ports 53 UDP/TCP, no
selector) and its Endpoints/EndpointSlice naming the running server, put
right after a hand edit; A records for a Service's cluster IP, for one created
after the server started and gone once it is deleted; a headless Service's
ready pod IPs (through the endpoints controller), its StatefulSet-style
hostnames; SRV for named ports (ClusterIP and headless); ExternalName CNAME;
PTR; NXDOMAIN with the SOA for names in the domain that hold nothing and an
empty answer for a type a name lacks; a UDP answer too large being truncated
and answered whole over TCP; names outside the domain forwarded to the
resolvers of resolv.conf (here another instance of the same server, for
another domain), and REFUSED when resolv.conf names none; FORMERR for a
message that does not parse; ``sampan control`` serving it on the address
and domain its flags give.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from control.api import errors
from control.api.timestamps import format_time
from control.client import Client
from control.controllers.informers import Informers
from control.dns.cluster_dns import ClusterDNSConfig
from control.dns.server import DNSServer
from control.dns.upstream import Forwarder
from control.dns.zone import ClusterZone
from control.service import ControlConfig, ControlService
from protos.api.v1 import core_pb2, services_pb2
from tests.support.components import require

DOMAIN = "cluster.local"


async def wait_for(predicate, *, timeout: float = 20.0, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; last seen: {last!r}")


async def start_control(tmp_path, resolv_conf: str) -> tuple[ControlService, Client, tuple[str, int]]:
    service = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="", shutdown_grace=0.5,
        cluster_dns=ClusterDNSConfig(listen="127.0.0.1:0", resolv_conf=resolv_conf)))
    await service.start()
    api = Client.connect(f"127.0.0.1:{service.port}")

    async def registered():
        try:
            endpoints = await api.get("Endpoints", "kube-dns", namespace="kube-system")
        except errors.NotFoundError:
            return None
        slices, _ = await api.list("EndpointSlice", namespace="kube-system",
                                   label_selector="kubernetes.io/service-name=kube-dns")
        subset = endpoints.subsets[0]
        return (subset.addresses[0].ip, subset.ports[0].port) if slices else None

    address = await wait_for(registered, what="the kube-dns endpoints")
    return service, api, address


@pytest.fixture
def resolv_conf(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("# no upstream resolvers\n")
    return path


@pytest.fixture
async def cluster(tmp_path, resolv_conf):
    service, api, address = await start_control(tmp_path, str(resolv_conf))
    yield api, address
    await api.close()
    await service.stop()


async def ask(address: tuple[str, int], name: str, rdtype: str = "A", *, tcp: bool = False,
              use_edns: bool = True) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=use_edns)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, address[0], port=address[1], timeout=3)


def addresses(response: dns.message.Message, rdtype: str = "A") -> list[str]:
    return sorted(item.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                  for item in rrset)


def new_service(name: str, namespace: str = "default", *, cluster_ip: str = "", selector: dict | None = None,
                ports: tuple = (("http", 80, 8080),)) -> services_pb2.Service:
    service = services_pb2.Service(api_version="v1", kind="Service")
    service.metadata.name, service.metadata.namespace = name, namespace
    if cluster_ip:
        service.spec.cluster_ip = cluster_ip
    if selector:
        service.spec.selector.update(selector)
    for port_name, port, target in ports:
        entry = service.spec.ports.add(name=port_name, port=port, protocol="TCP")
        entry.target_port.int_value = target
    return service


async def resolves_to(address, name: str, expected: list[str]):
    response = await ask(address, name)
    return response if addresses(response) == expected else None


async def test_kube_dns_is_created_with_the_well_known_ip_and_names_the_running_server(cluster):
    api, address = cluster
    service = await api.get("Service", "kube-dns", namespace="kube-system")
    assert service.spec.cluster_ip == "10.96.0.10" and not service.spec.selector
    assert sorted((p.name, p.protocol, p.port) for p in service.spec.ports) == [
        ("dns", "UDP", 53), ("dns-tcp", "TCP", 53)]
    endpoints = await api.get("Endpoints", "kube-dns", namespace="kube-system")
    assert sorted((p.name, p.protocol, p.port) for p in endpoints.subsets[0].ports) == [
        ("dns", "UDP", address[1]), ("dns-tcp", "TCP", address[1])]
    slices, _ = await api.list("EndpointSlice", namespace="kube-system",
                               label_selector="kubernetes.io/service-name=kube-dns")
    assert [list(e.addresses) for s in slices for e in s.endpoints] == [["127.0.0.1"]]
    assert slices[0].metadata.owner_references[0].uid == service.metadata.uid
    # The address the endpoints name answers, over UDP and TCP: the DNS Service resolves itself.
    for tcp in (False, True):
        response = await ask(address, "kube-dns.kube-system.svc.cluster.local", tcp=tcp)
        assert addresses(response) == ["10.96.0.10"] and response.flags & dns.flags.AA


async def test_kube_dns_endpoints_edited_by_hand_are_put_right(cluster):
    api, address = cluster
    endpoints = await api.get("Endpoints", "kube-dns", namespace="kube-system")
    endpoints.subsets[0].addresses[0].ip = "10.1.2.3"
    await api.update(endpoints)

    async def restored():
        current = await api.get("Endpoints", "kube-dns", namespace="kube-system")
        return current.subsets[0].addresses[0].ip == address[0]

    await wait_for(restored, what="the kube-dns endpoints to name the server again")


async def test_a_service_created_after_start_resolves_to_its_cluster_ip_and_goes_when_deleted(cluster):
    api, address = cluster
    name = "web.default.svc.cluster.local"
    assert (await ask(address, name)).rcode() == dns.rcode.NXDOMAIN
    created = await api.create(new_service("web"))
    response = await wait_for(lambda: resolves_to(address, name, [created.spec.cluster_ip]),
                              what="web to resolve")
    assert response.answer[0].ttl == 5
    # A type the name lacks: no records, but the name exists.
    aaaa = await ask(address, name, "AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR and not aaaa.answer
    await api.delete("Service", "web", namespace="default")

    async def gone():
        return (await ask(address, name)).rcode() == dns.rcode.NXDOMAIN

    await wait_for(gone, what="web to stop resolving")


async def test_names_in_the_domain_that_hold_nothing_are_nxdomain_with_the_soa(cluster):
    api, address = cluster
    await api.create(new_service("web"))
    await wait_for(lambda: ask_ok(address, "web.default.svc.cluster.local"), what="web to resolve")
    for name in ("nothing.default.svc.cluster.local", "web.elsewhere.svc.cluster.local",
                 "web.default.pod.cluster.local", "x.web.default.svc.cluster.local",
                 "_http._udp.web.default.svc.cluster.local"):
        response = await ask(address, name)
        assert response.rcode() == dns.rcode.NXDOMAIN, name
        assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA], name
    # The names between exist: a namespace with Services, svc, the domain itself.
    for name in ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        response = await ask(address, name)
        assert response.rcode() == dns.rcode.NOERROR and not response.answer, name


async def ask_ok(address, name: str, rdtype: str = "A"):
    response = await ask(address, name, rdtype)
    return response if response.rcode() == dns.rcode.NOERROR and response.answer else None


async def make_ready_pod(api: Client, name: str, ip: str, *, ready: bool, labels: dict, hostname: str = "",
                         subdomain: str = "", port: int = 5432) -> None:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name, pod.metadata.namespace = name, "default"
    pod.metadata.labels.update(labels)
    pod.spec.node_name = "node-a"
    if hostname:
        pod.spec.hostname, pod.spec.subdomain = hostname, subdomain
    container = pod.spec.containers.add(name="db", image="busybox:1.36")
    container.ports.add(name="pg", container_port=port)
    created = await api.create(pod)
    created.status.phase = "Running"
    created.status.pod_ip = ip
    created.status.conditions.add(type="Ready", status="True" if ready else "False",
                                  last_transition_time=format_time(time.time()))
    await api.update_status(created)


async def test_a_headless_service_answers_its_ready_pods_and_their_hostnames(cluster):
    api, address = cluster
    service = new_service("db", cluster_ip="None", selector={"app": "db"}, ports=(("pg", 5432, 0),))
    service.spec.ports[0].target_port.str_value = "pg"
    await api.create(service)
    await make_ready_pod(api, "db-0", "10.244.1.10", ready=True, labels={"app": "db"}, hostname="db-0",
                         subdomain="db")
    await make_ready_pod(api, "db-1", "10.244.2.11", ready=True, labels={"app": "db"}, hostname="db-1",
                         subdomain="db", port=6432)
    await make_ready_pod(api, "db-2", "10.244.1.12", ready=False, labels={"app": "db"}, hostname="db-2",
                         subdomain="db")
    await make_ready_pod(api, "other", "10.244.1.13", ready=True, labels={"app": "other"})
    name = "db.default.svc.cluster.local"
    await wait_for(lambda: resolves_to(address, name, ["10.244.1.10", "10.244.2.11"]),
                   what="the headless service to answer its two ready pods")
    assert addresses(await ask(address, "db-1.db.default.svc.cluster.local")) == ["10.244.2.11"]
    # A pod that is not ready has no name yet.
    assert (await ask(address, "db-2.db.default.svc.cluster.local")).rcode() == dns.rcode.NXDOMAIN
    # SRV: one record per ready endpoint, with the port its named targetPort resolves to there.
    srv = await ask(address, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    records = sorted((item.port, item.target.to_text()) for item in srv.answer[0])
    assert records == [(5432, "db-0.db.default.svc.cluster.local."), (6432, "db-1.db.default.svc.cluster.local.")]
    assert sorted(item.to_text() for rrset in srv.additional for item in rrset
                  if rrset.rdtype == dns.rdatatype.A) == ["10.244.1.10", "10.244.2.11"]


async def test_srv_names_a_cluster_ip_services_named_port(cluster):
    api, address = cluster
    created = await api.create(new_service("web", ports=(("http", 80, 8080), ("metrics", 9090, 9090))))
    srv = await wait_for(lambda: ask_ok(address, "_http._tcp.web.default.svc.cluster.local", "SRV"),
                         what="the SRV record")
    assert [(item.priority, item.weight, item.port, item.target.to_text()) for item in srv.answer[0]] == [
        (0, 100, 80, "web.default.svc.cluster.local.")]
    assert [item.to_text() for rrset in srv.additional for item in rrset] == [created.spec.cluster_ip]
    metrics = await ask(address, "_metrics._tcp.web.default.svc.cluster.local", "SRV")
    assert [item.port for item in metrics.answer[0]] == [9090]


async def test_external_name_is_a_cname_and_ptr_names_a_cluster_ip(cluster):
    api, address = cluster
    external = services_pb2.Service(api_version="v1", kind="Service")
    external.metadata.name, external.metadata.namespace = "mail", "default"
    external.spec.type = "ExternalName"
    external.spec.external_name = "mail.example.org"
    await api.create(external)
    created = await api.create(new_service("web"))
    cname = await wait_for(lambda: ask_ok(address, "mail.default.svc.cluster.local"), what="the CNAME")
    assert [(rrset.rdtype, rrset[0].to_text()) for rrset in cname.answer] == [
        (dns.rdatatype.CNAME, "mail.example.org.")]
    reverse = dns.reversename.from_address(created.spec.cluster_ip).to_text()
    # web was created after mail: the server may have seen mail's Service and not yet web's.
    ptr = await wait_for(lambda: ask_ok(address, reverse, "PTR"), what="the PTR")
    assert [item.to_text() for item in ptr.answer[0]] == ["web.default.svc.cluster.local."]


async def test_an_answer_too_large_for_udp_is_truncated_and_whole_over_tcp(cluster):
    api, address = cluster
    await api.create(new_service("many", cluster_ip="None", ports=(("http", 80, 80),)))
    slice_ = services_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice",
                                        address_type="IPv4")
    slice_.metadata.name, slice_.metadata.namespace = "many-manual", "default"
    slice_.metadata.labels["kubernetes.io/service-name"] = "many"
    ips = [f"10.244.3.{i}" for i in range(1, 61)]
    for ip in ips:
        slice_.endpoints.add(addresses=[ip])  # no ready condition: ready
    slice_.ports.add(name="http", protocol="TCP", port=80)
    await api.create(slice_)
    name = "many.default.svc.cluster.local"
    whole = await wait_for(lambda: resolves_to_over_tcp(address, name, len(ips)), what="60 addresses over TCP")
    assert addresses(whole) == sorted(ips)
    udp = await ask(address, name, use_edns=False)
    assert udp.flags & dns.flags.TC and len(addresses(udp)) < len(ips)


async def resolves_to_over_tcp(address, name: str, count: int):
    response = await ask(address, name, tcp=True)
    return response if len(addresses(response)) == count else None


async def test_without_upstream_resolvers_other_names_are_refused(cluster):
    _api, address = cluster
    response = await ask(address, "example.org")
    assert response.rcode() == dns.rcode.REFUSED and not response.flags & dns.flags.RA


async def test_a_message_that_does_not_parse_gets_formerr_with_its_id(cluster):
    _api, address = cluster

    def exchange() -> bytes:  # in a thread: the server answers on this test's event loop
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff", address)
            return sock.recv(512)

    reply = dns.message.from_wire(await asyncio.to_thread(exchange))
    assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR


async def test_names_outside_the_domain_go_to_the_resolvers_of_resolv_conf(tmp_path, resolv_conf):
    require(os.geteuid() == 0, "an upstream resolver in resolv.conf listens on port 53, which needs root")
    # The upstream: the same server for another domain, on a loopback address of its own, port 53.
    upstream_ip = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.{random.randint(1, 250)}"
    resolv_conf.write_text(f"nameserver {upstream_ip}\n")
    service, api, address = await start_control(tmp_path, str(resolv_conf))
    informers = Informers(api)
    zone = ClusterZone(domain="upstream.test", services=informers.get("Service"),
                       slices=informers.get("EndpointSlice"))
    informers.start()
    upstream = DNSServer(zone, Forwarder([]))
    try:
        await informers.wait_synced()
        await upstream.start(upstream_ip, 53)
        created = await api.create(new_service("web"))
        answer = await wait_for(lambda: ask_ok(address, "web.default.svc.upstream.test"),
                                what="the forwarded answer")
        assert addresses(answer) == [created.spec.cluster_ip]
        assert answer.flags & dns.flags.RA
        over_tcp = await ask(address, "web.default.svc.upstream.test", tcp=True)
        assert addresses(over_tcp) == [created.spec.cluster_ip]
        # What the upstream does not know comes back as it said it.
        assert (await ask(address, "nothing.default.svc.upstream.test")).rcode() == dns.rcode.NXDOMAIN
    finally:
        await upstream.close()
        await informers.stop()
        await api.close()
        await service.stop()


async def test_sampan_control_serves_dns_on_the_flags_address_and_domain(tmp_path):
    from tests.support.control import ControlServer, free_port

    port = free_port()
    server = ControlServer(tmp_path / "control", extra_args=(
        "--cluster-dns-listen", f"127.0.0.1:{port}", "--cluster-domain", "corp.internal",
        "--leader-elect", "false")).start()
    try:
        async def answered():
            try:
                return await ask_ok(("127.0.0.1", port), "kube-dns.kube-system.svc.corp.internal")
            except (dns.exception.Timeout, OSError):  # not listening yet
                return None

        response = await wait_for(answered, what="the control service's DNS to answer")
        assert addresses(response) == ["10.96.0.10"]
    finally:
        server.kill()
