"""Cluster IPs and node ports through the API, on every store backend (SQLite and a real etcd).

Covers: a cluster IP allocated from the service CIDR's upper band (its first
address and the static band are left for requests), a requested one
(10.96.0.10, the cluster DNS's) given once and refused the second time with
Kubernetes' message, one outside the range refused; node ports allocated
from 30000-32767, requested ones refused when taken or out of range; one
node port for the TCP and UDP of one port number; headless and ExternalName
Services get no cluster IP; deletion and type changes release what they
free; an update that leaves the allocated values out keeps them; a failed
write gives back what it took; 29 Services created at once through two
control replicas sharing one etcd (on SQLite, through one service) get 29
different addresses of a 30-address range, and the next is refused as
"range is full". Most tests end by checking that the allocation records in
the store are exactly what the Services hold.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from control.api import errors
from control.api.manifest import to_dict, to_message
from control.client import Client
from control.service import ControlService

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
STATIC_BAND = 256  # the first 256 addresses of a /12 are given only on request


def service(name: str, **spec) -> object:
    spec.setdefault("ports", [{"port": 80}])
    return to_message({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"selector": {"app": name}, **spec}})


async def records(svc: ControlService) -> tuple[dict[str, str], dict[int, str]]:
    """The allocation records in the store: value -> holding Service's name."""
    allocations = svc._resources.allocations
    ips = {r.value: r.holder.name for r in await allocations.ips.records()}
    ports = {r.value: r.holder.name for r in await allocations.ports.records()}
    return ips, ports


async def assert_records_match_services(api: Client, svc: ControlService) -> None:
    items, _ = await api.list("Service")
    held_ips = {ip: s.metadata.name for s in items for ip in s.spec.cluster_ips if ip != "None"}
    held_ports = {p.node_port: s.metadata.name for s in items for p in s.spec.ports if p.node_port}
    assert await records(svc) == (held_ips, held_ports)


async def test_a_cluster_ip_comes_from_the_upper_band_of_the_service_cidr(any_api, any_service):
    created = await any_api.create(service("web"))

    ip = ipaddress.ip_address(created.spec.cluster_ip)
    assert ip in SERVICE_CIDR
    assert int(ip) - int(SERVICE_CIDR.network_address) > STATIC_BAND
    assert list(created.spec.cluster_ips) == [created.spec.cluster_ip]
    assert await records(any_service) == ({created.spec.cluster_ip: "web"}, {})


async def test_a_requested_cluster_ip_is_given_once(any_api, any_service):
    dns = await any_api.create(service("dns", clusterIP="10.96.0.10"))
    assert dns.spec.cluster_ip == "10.96.0.10"

    with pytest.raises(errors.InvalidError) as refused:
        await any_api.create(service("dns2", clusterIP="10.96.0.10"))

    assert str(refused.value) == ('Service "dns2" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.10"]: '
                                  "failed to allocate IP 10.96.0.10: provided IP is already allocated")
    await assert_records_match_services(any_api, any_service)


async def test_a_cluster_ip_outside_the_range_is_refused(any_api, any_service):
    with pytest.raises(errors.InvalidError) as refused:
        await any_api.create(service("web", clusterIP="192.168.1.1"))

    assert str(refused.value) == (
        'Service "web" is invalid: spec.clusterIPs: Invalid value: ["192.168.1.1"]: failed to allocate IP '
        "192.168.1.1: the provided IP (192.168.1.1) is not in the valid range. The range of valid IPs is "
        "10.96.0.0/12")
    assert await records(any_service) == ({}, {})


async def test_node_ports_are_allocated_and_a_taken_one_refused(any_api, any_service):
    web = await any_api.create(service("web", type="NodePort",
                                       ports=[{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]))
    node_ports = [port.node_port for port in web.spec.ports]
    assert all(30000 <= port <= 32767 for port in node_ports) and len(set(node_ports)) == 2

    with pytest.raises(errors.InvalidError) as refused:
        await any_api.create(service("other", type="NodePort", ports=[{"port": 80, "nodePort": node_ports[0]}]))

    assert str(refused.value) == (f'Service "other" is invalid: spec.ports[0].nodePort: Invalid value: '
                                  f"{node_ports[0]}: provided port is already allocated")
    await assert_records_match_services(any_api, any_service)


async def test_a_node_port_outside_the_range_is_refused(any_api):
    with pytest.raises(errors.InvalidError) as refused:
        await any_api.create(service("web", type="NodePort", ports=[{"port": 80, "nodePort": 29999}]))
    assert str(refused.value) == (
        'Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 29999: provided port is not in the '
        "valid range. The range of valid ports is 30000-32767")


async def test_the_tcp_and_udp_of_one_port_share_a_node_port(any_api, any_service):
    dns = await any_api.create(service("dns", type="NodePort", ports=[
        {"port": 53, "name": "dns", "protocol": "UDP"}, {"port": 53, "name": "dns-tcp", "protocol": "TCP"}]))

    udp, tcp = dns.spec.ports
    assert udp.node_port == tcp.node_port != 0
    await assert_records_match_services(any_api, any_service)


async def test_headless_and_external_name_services_get_no_cluster_ip(any_api, any_service):
    headless = await any_api.create(service("db", clusterIP="None"))
    external = await any_api.create(service("mail", ports=[], type="ExternalName", externalName="mail.example.com"))

    assert list(headless.spec.cluster_ips) == ["None"]
    assert external.spec.cluster_ip == "" and not external.spec.cluster_ips
    assert await records(any_service) == ({}, {})


async def test_deleting_a_service_releases_its_ip_and_node_port(any_api, any_service):
    await any_api.create(service("web", type="NodePort", clusterIP="10.96.0.20",
                                 ports=[{"port": 80, "nodePort": 30080}]))

    await any_api.delete("Service", "web", namespace="default")
    again = await any_api.create(service("web2", type="NodePort", clusterIP="10.96.0.20",
                                         ports=[{"port": 80, "nodePort": 30080}]))

    assert (again.spec.cluster_ip, again.spec.ports[0].node_port) == ("10.96.0.20", 30080)
    await assert_records_match_services(any_api, any_service)


async def test_a_type_change_releases_what_the_new_type_does_not_use(any_api, any_service):
    web = await any_api.create(service("web", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    ip = web.spec.cluster_ip

    manifest = to_dict(web)
    manifest["spec"]["type"] = "ClusterIP"
    as_cluster_ip = await any_api.update(to_message(manifest))
    assert not as_cluster_ip.spec.ports[0].node_port and as_cluster_ip.spec.cluster_ip == ip
    assert "externalTrafficPolicy" not in to_dict(as_cluster_ip)["spec"]
    assert await records(any_service) == ({ip: "web"}, {})

    manifest = to_dict(as_cluster_ip)
    manifest["spec"].update(type="ExternalName", externalName="web.example.com", ports=[])
    as_external_name = await any_api.update(to_message(manifest))
    assert not as_external_name.spec.cluster_ip and not as_external_name.spec.ip_families
    assert await records(any_service) == ({}, {})

    manifest = to_dict(as_external_name)
    manifest["spec"].update(type="NodePort", ports=[{"port": 80}])
    del manifest["spec"]["externalName"]
    back = await any_api.update(to_message(manifest))
    assert back.spec.cluster_ip and back.spec.ports[0].node_port
    await assert_records_match_services(any_api, any_service)


async def test_an_update_that_leaves_allocated_values_out_keeps_them(any_api, any_service):
    web = await any_api.create(service("web", type="NodePort", ports=[{"port": 80, "name": "http"}]))

    # As `apply` of the original manifest sends it: no clusterIP, no nodePort; a label added.
    manifest = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front"}},
                "spec": {"selector": {"app": "web"}, "type": "NodePort", "ports": [{"port": 80, "name": "http"}]}}
    updated = await any_api.update(to_message(manifest))

    assert updated.spec.cluster_ip == web.spec.cluster_ip
    assert updated.spec.ports[0].node_port == web.spec.ports[0].node_port
    await assert_records_match_services(any_api, any_service)


async def test_a_cluster_ip_may_not_be_changed_through_the_api(any_api):
    web = await any_api.create(service("web"))
    manifest = to_dict(web)
    manifest["spec"]["clusterIP"] = manifest["spec"]["clusterIPs"][0] = "10.96.0.30"

    with pytest.raises(errors.InvalidError) as refused:
        await any_api.update(to_message(manifest))

    assert str(refused.value) == ('Service "web" is invalid: spec.clusterIPs[0]: Invalid value: "10.96.0.30": '
                                  "may not change once set")


async def test_a_failed_write_gives_back_what_it_took(any_api, any_service):
    await any_api.create(service("web"))

    with pytest.raises(errors.AlreadyExistsError):
        await any_api.create(service("web", type="NodePort", clusterIP="10.96.0.40",
                                     ports=[{"port": 80, "nodePort": 30090}]))

    taken = await any_api.create(service("next", type="NodePort", clusterIP="10.96.0.40",
                                         ports=[{"port": 80, "nodePort": 30090}]))
    assert (taken.spec.cluster_ip, taken.spec.ports[0].node_port) == ("10.96.0.40", 30090)
    await assert_records_match_services(any_api, any_service)


async def test_several_refusals_are_reported_together(any_api):
    await any_api.create(service("web", type="NodePort", clusterIP="10.96.0.50",
                                 ports=[{"port": 80, "nodePort": 30100}]))

    with pytest.raises(errors.InvalidError) as refused:
        await any_api.create(service("copy", type="NodePort", clusterIP="10.96.0.50",
                                     ports=[{"port": 80, "nodePort": 30100}]))

    assert str(refused.value) == (
        'Service "copy" is invalid: [spec.clusterIPs: Invalid value: ["10.96.0.50"]: failed to allocate IP '
        "10.96.0.50: provided IP is already allocated, spec.ports[0].nodePort: Invalid value: 30100: "
        "provided port is already allocated]")


# ------------------------------------------------------------ concurrent creates, two replicas


@pytest.fixture(params=["sqlite", "etcd"])
async def replicas(request, tmp_path):
    """Control services with a 30-address range: two sharing one etcd (as replicas behind one address);
    on SQLite, which one process holds, the one service twice."""
    from control.service import ControlConfig
    from tests.support.components import require_binary
    from tests.support.etcd import running_etcd

    async def start(url: str) -> ControlService:
        replica = ControlService(ControlConfig(store_url=url, listen="127.0.0.1:0", metrics_listen="",
                                               shutdown_grace=0.5, service_cidr="10.100.0.0/27"))
        await replica.start()
        return replica

    if request.param == "sqlite":
        only = await start(f"sqlite:///{tmp_path}/state.db")
        yield [only, only]
        await only.stop()
        return
    with running_etcd(binary=require_binary("etcd", package="etcd-server")) as cluster:
        url = "etcd://" + ",".join(cluster.endpoints)
        started = [await start(url), await start(url)]
        yield started
        for replica in started:
            await replica.stop()


async def test_services_created_at_once_never_share_an_ip(replicas):
    async with Client.connect(f"127.0.0.1:{replicas[0].port}") as first, \
            Client.connect(f"127.0.0.1:{replicas[1].port}") as second:
        created = await asyncio.gather(*(
            (first if i % 2 else second).create(service(f"web-{i}")) for i in range(29)))

        ips = [svc.spec.cluster_ip for svc in created]
        assert len(set(ips)) == 29
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.100.0.0/27") for ip in ips)
        with pytest.raises(errors.InternalError, match="failed to allocate a serviceIP: range is full"):
            await first.create(service("one-too-many"))
        await assert_records_match_services(first, replicas[1])
