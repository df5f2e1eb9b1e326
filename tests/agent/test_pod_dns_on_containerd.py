"""Pods' DNS on real containerd: an ``sampan agent`` process, pods created
through the API, their /etc/resolv.conf read back through the CRI.

Covers: a ClusterFirst pod's resolv.conf names the cluster DNS (the agent's
--cluster-dns), the namespace's search path before the host's, ndots:5; a
Default pod's is the host's (the agent's --resolv-conf); and, from inside a
pod, busybox's nslookup resolves a Service by its short name through the
search path against the real cluster DNS server (bound on the pod bridge's
gateway here, since no proxy forwards the DNS cluster IP in this test).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from agent.runtime.cri import CRIRuntime
from control.api import errors
from control.client import Client
from control.controllers.informers import Informers
from control.dns.server import DNSServer
from control.dns.upstream import Forwarder
from control.dns.zone import ClusterZone
from protos.api.v1 import core_pb2, services_pb2

NODE = "node-dns"
HOST_RESOLV_CONF = "nameserver 192.0.2.53\nsearch host.example\noptions timeout:2\n"


async def wait_for(predicate, *, timeout: float = 60.0, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; last seen: {last!r}")


@pytest.fixture
async def agent(service, api, containerd, tmp_path):
    resolv_conf = tmp_path / "host-resolv.conf"
    resolv_conf.write_text(HOST_RESOLV_CONF)
    log = open(tmp_path / "agent.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "control.cli.main", "agent", "--insecure-plaintext", "--server", f"127.0.0.1:{service.port}",
         "--node-name", NODE, "--data-dir", str(tmp_path / "agent"), "--runtime", "containerd",
         "--containerd-socket", containerd.socket, "--metrics-listen", "", "--listen", "127.0.0.1:0",
         "--cluster-dns", "10.96.0.10", "--cluster-domain", "cluster.local", "--resolv-conf", str(resolv_conf),
         "--pod-routes", "false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        async def node_ready():
            try:
                node = await api.get("Node", NODE)
            except errors.NotFoundError:
                return None
            return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        await wait_for(node_ready, what="the node to be Ready")
        yield process
    finally:
        for pod in (await api.list("Pod", namespace="default"))[0]:
            await api.delete("Pod", pod.metadata.name, namespace="default", grace_period_seconds=0, force=True)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        from tests.support.containerd import remove_all_sandboxes
        remove_all_sandboxes(containerd.socket)


def sleeper(name: str, **spec) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name, pod.metadata.namespace = name, "default"
    pod.spec.node_name = NODE
    pod.spec.termination_grace_period_seconds = 1
    for key, value in spec.items():
        setattr(pod.spec, key, value)
    container = pod.spec.containers.add(name="main", image="busybox:1.36", image_pull_policy="IfNotPresent")
    container.command.extend(["sleep", "3600"])
    return pod


async def running_container(api: Client, name: str) -> str | None:
    pod = await api.get("Pod", name, namespace="default")
    statuses = pod.status.container_statuses
    if pod.status.phase == "Running" and statuses and statuses[0].container_id:
        return statuses[0].container_id.split("://")[1]
    return None


async def in_container(containerd, container_id: str, *command: str) -> tuple[int, str]:
    runtime = CRIRuntime(containerd.socket)
    try:
        result = await runtime.exec_sync(container_id, command, timeout=10)
    finally:
        await runtime.close()
    return result.exit_code, result.stdout.decode() + result.stderr.decode()


async def test_cluster_first_and_default_pods_get_their_resolv_conf(api, containerd, agent):
    await api.create(sleeper("cluster-first"))
    await api.create(sleeper("default-policy", dns_policy="Default"))
    cluster_first = await wait_for(lambda: running_container(api, "cluster-first"), what="cluster-first running")
    default = await wait_for(lambda: running_container(api, "default-policy"), what="default-policy running")

    _, text = await in_container(containerd, cluster_first, "cat", "/etc/resolv.conf")
    lines = [line for line in text.splitlines() if line.strip()]
    assert "nameserver 10.96.0.10" in lines and not any("192.0.2.53" in line for line in lines)
    assert "search default.svc.cluster.local svc.cluster.local cluster.local host.example" in lines
    assert "options ndots:5" in lines

    _, text = await in_container(containerd, default, "cat", "/etc/resolv.conf")
    lines = [line for line in text.splitlines() if line.strip()]
    assert "nameserver 192.0.2.53" in lines and "search host.example" in lines and "options timeout:2" in lines


async def test_a_pod_resolves_a_service_by_its_short_name_through_the_cluster_dns(api, containerd, agent):
    gateway = containerd.slot.gateway
    search = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    pod = sleeper("resolver", dns_policy="None")
    pod.spec.dns_config.nameservers.append(gateway)
    pod.spec.dns_config.searches.extend(search)
    pod.spec.dns_config.options.add(name="ndots", value="5")
    await api.create(pod)
    container = await wait_for(lambda: running_container(api, "resolver"), what="the resolver pod running")
    # The pod bridge exists now: serve the cluster DNS on its gateway, where the pod can reach it.
    informers = Informers(api)
    zone = ClusterZone(domain="cluster.local", services=informers.get("Service"),
                       slices=informers.get("EndpointSlice"))
    informers.start()
    server = DNSServer(zone, Forwarder([]))
    try:
        await informers.wait_synced()
        await server.start(gateway, 53)
        web = services_pb2.Service(api_version="v1", kind="Service")
        web.metadata.name, web.metadata.namespace = "web", "default"
        web.spec.ports.add(name="http", port=80, protocol="TCP").target_port.int_value = 8080
        created = await api.create(web)

        async def resolved():
            code, output = await in_container(containerd, container, "nslookup", "web.default.svc.cluster.local")
            return output if code == 0 and created.spec.cluster_ip in output else None

        await wait_for(resolved, timeout=20, what="nslookup in the pod to answer the cluster IP")
        # The short name goes through the pod's search path (ndots:5): the first domain has it. (busybox
        # asks every search domain and exits non-zero when any of them has not, so its output is what counts.)
        _, output = await in_container(containerd, container, "nslookup", "web")
        assert f"Name:\tweb.default.svc.cluster.local\nAddress: {created.spec.cluster_ip}" in output, output
        code, output = await in_container(containerd, container, "nslookup", "nothing.default.svc.cluster.local")
        assert code != 0 and created.spec.cluster_ip not in output
    finally:
        await server.close()
        await informers.stop()
