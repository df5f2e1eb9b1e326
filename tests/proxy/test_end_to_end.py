"""Services end to end: ``sampan proxy`` on a real node, in nftables and in userspace mode.

The node is a network namespace (tests/proxy/conftest.py ``cluster``): a
private containerd started inside it runs the pods on the node's own CNI
bridge, so they get real addresses there; the agent runs inside it too; the
control service, in the host, reaches the agent and is reached over a veth
pair. ``sampan proxy`` runs inside the node as a process, as it would on a
machine, and writes its nftables rules into the node's namespace only.
"The host" below is a socket opened in the node's namespace (what a
process on the node would do); "outside" is the test's own namespace,
reaching the node's address over the veth, as another machine would.

Each test has its own namespace of objects: a Deployment ``web`` of busybox
httpd pods (each serves its own name; an exec readiness probe on
/tmp/ready), a NodePort Service ``web`` on their named port, a ClientIP
Service ``sticky`` on the same pods, a Service ``nobody`` whose selector
matches nothing, and a ``client`` pod.

nftables (root): the pods answer through the ClusterIP from the host and
from the client pod (the answers are counted: both pods answer); through
the NodePort from the host and from outside; ``sticky`` keeps a client on one
pod; ``nobody`` refuses at once; scaling the Deployment to 3 and back to 2
changes the kernel's backends (the delay from the EndpointSlice's change to
the kernel's rules is measured and printed); a pod failing its readiness
probe gets no more traffic; the metrics count syncs and programming
latency; deleting the Service leaves no rule of it in ``nft list ruleset``;
chains, sets and rules left in ``ip sampan`` by an earlier run are gone
after start, and a table that is not Sampan's is untouched.

userspace (the proxy runs as user nobody, ``--mode auto``, which must then
choose userspace): the same checks as far as a process without root can
serve them: NodePorts on the node's address and 127.0.0.1, from the host,
from the client pod and from outside; the ClusterIPs are reported as not
reachable in this mode; scaling, readiness and deletion as above (the delay
measured from the slice's change to the first answer from the new pod).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, TypeVar

import pytest

from control.api import errors
from control.api.manifest import load_documents, to_message
from control.client import Client
from tests.proxy.conftest import Cluster
from tests.proxy.netns import NodeNamespace, http_get
from tests.proxy.nft_table import read_table, ruleset_text
from tests.support.control import free_port

T = TypeVar("T")
ANSWERS = 20

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox:1.36
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          exec: {{command: ["cat", "/tmp/ready"]}}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: sticky, namespace: {ns}}}
spec:
  selector: {{app: web}}
  sessionAffinity: ClientIP
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: nobody, namespace: {ns}}}
spec:
  type: NodePort
  selector: {{app: nobody}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {ns}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: busybox:1.36
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
"""

# What an earlier run could have left in Sampan's table, and a table of another program.
LEFTOVERS = """\
table ip sampan {
  set affinity-60s-gone/old/tcp/http__10.244.250.9/80 { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
  chain endpoint-gone/old/tcp/http__10.244.250.9/80 { meta l4proto tcp dnat to 10.244.250.9:80; }
  chain services { ip daddr 10.111.111.111 tcp dport 80 goto endpoint-gone/old/tcp/http__10.244.250.9/80; }
}
add element ip sampan service-ips { 10.111.111.112 . tcp . 80 : goto endpoint-gone/old/tcp/http__10.244.250.9/80 }
table inet bystander {
  set watched { type ipv4_addr; elements = { 192.0.2.10 } }
  chain output { type filter hook output priority 0; policy accept; ip daddr @watched counter; }
}
"""


# ------------------------------------------------------------ helpers


async def until(probe: Callable[[], Awaitable[T]], *, timeout: float = 60.0, what: str) -> T:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}")


@dataclass
class ProxyProcess:
    process: subprocess.Popen
    log: Path
    metrics_url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as answer:
            text = answer.read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] == name)


def start_proxy(cluster: Cluster, *, mode: str, user: str = "") -> ProxyProcess:
    port = free_port()
    log = cluster.workdir / f"proxy-{mode}-{time.monotonic_ns()}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(cluster.sampan_in_node(
            "proxy", "--insecure-plaintext", "--server", cluster.server, "--node-name", cluster.node_name,
            "--mode", mode,
            "--metrics-listen", f"{cluster.node.node_ip}:{port}", "--min-sync-period", "0.05", user=user),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return ProxyProcess(process, log, f"http://{cluster.node.node_ip}:{port}/metrics")


async def apply_manifests(api: Client, namespace: str) -> None:
    for document in load_documents(MANIFESTS.format(ns=namespace)):
        await api.create(to_message(document))


def is_ready(pod) -> bool:
    return (pod.status.phase == "Running" and bool(pod.status.pod_ip) and not pod.metadata.deletion_timestamp
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions))


async def web_pods(api: Client, namespace: str) -> dict[str, str]:
    """name -> IP of the Deployment's ready pods."""
    pods, _ = await api.list("Pod", namespace=namespace, label_selector="app=web")
    return {pod.metadata.name: pod.status.pod_ip for pod in pods if is_ready(pod)}


async def ready_web_pods(api: Client, namespace: str, count: int) -> dict[str, str]:
    async def probe():
        pods = await web_pods(api, namespace)
        return pods if len(pods) == count else None
    return await until(probe, timeout=120, what=f"{count} ready web pods")


async def service_ports(api: Client) -> int:
    """The TCP and UDP ports of every Service with a cluster IP (this test's and any other)."""
    services, _ = await api.list("Service")
    return sum(1 for s in services if s.spec.cluster_ip not in ("", "None")
               for p in s.spec.ports if (p.protocol or "TCP") in ("TCP", "UDP"))


async def scale(api: Client, namespace: str, replicas: int) -> None:
    await api.patch("Deployment", "web", {"spec": {"replicas": replicas}}, namespace=namespace)


def from_host(node: NodeNamespace, ip: str, port: int) -> str:
    return http_get(node.socket(), ip, port)


def from_outside(ip: str, port: int) -> str:
    return http_get(socket.socket(), ip, port)


async def answers(get: Callable[[], str], count: int = ANSWERS) -> Counter:
    return Counter([await asyncio.to_thread(get) for _ in range(count)])


async def answers_from_pod(api: Client, namespace: str, url: str, count: int = ANSWERS, *,
                           pod: str = "client") -> Counter:
    script = f"for i in $(seq {count}); do timeout 3 wget -q -O - {url} || echo FAILED; done"
    output = b""
    async for piece in api.exec(pod, ["sh", "-c", script], namespace=namespace):
        output += piece.stdout
    return Counter(output.decode().split())


async def programming_delay(api: Client, namespace: str, *, ready: int, change: Callable[[], Awaitable[None]],
                            applied: Callable[[set[str]], Awaitable[bool]]) -> float:
    """Make ``change`` while watching the Service's slices: the seconds from the slices first holding
    ``ready`` ready addresses to ``applied(those addresses)`` being true (polled from then on, so the
    figure includes up to one poll, about 10-20 ms)."""
    selector = "kubernetes.io/service-name=web"
    slices, version = await api.list("EndpointSlice", namespace=namespace, label_selector=selector)
    current = {s.metadata.name: _ready_addresses(s) for s in slices}
    seen: asyncio.Future = asyncio.get_running_loop().create_future()

    async def watch() -> None:
        async for event in api.watch("EndpointSlice", namespace=namespace, label_selector=selector,
                                     resource_version=version):
            if event.type == "DELETED":
                current.pop(event.object.metadata.name, None)
            else:
                current[event.object.metadata.name] = _ready_addresses(event.object)
            union = set().union(*current.values())
            if len(union) == ready and not seen.done():
                seen.set_result((time.monotonic(), union))

    watching = asyncio.create_task(watch())
    try:
        await change()
        seen_at, addresses = await asyncio.wait_for(seen, 120)
        while not await applied(addresses):
            if time.monotonic() - seen_at > 60:
                pytest.fail(f"the slices held {sorted(addresses)} 60s ago; the proxy never applied them")
            await asyncio.sleep(0.005)
        return time.monotonic() - seen_at
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


def _ready_addresses(slice_) -> set[str]:
    return {address for e in slice_.endpoints if e.conditions.ready for address in e.addresses}


async def fail_readiness(api: Client, namespace: str, pod: str) -> None:
    async for _ in api.exec(pod, ["rm", "/tmp/ready"], namespace=namespace):
        pass


async def tear_down(api: Client, namespace: str) -> None:
    try:
        await api.delete("Namespace", namespace)
    except errors.NotFoundError:
        pass


@pytest.fixture
async def api(cluster: Cluster):
    async with Client.connect(cluster.server) as client:
        yield client


# ------------------------------------------------------------ nftables


async def test_nftables_mode_serves_services_on_a_real_node(cluster: Cluster, api: Client):
    node, ns = cluster.node, "nft-e2e"
    node.run("nft", "delete", "table", "ip", "sampan", check=False)
    node.nft("-f", "-", stdin=LEFTOVERS)
    bystander = node.nft("list", "table", "inet", "bystander")
    await apply_manifests(api, ns)
    proxy = start_proxy(cluster, mode="nftables")
    try:
        pods = await ready_web_pods(api, ns, 2)
        web = await api.get("Service", "web", namespace=ns)
        sticky = await api.get("Service", "sticky", namespace=ns)
        nobody = await api.get("Service", "nobody", namespace=ns)
        node_port = web.spec.ports[0].node_port

        async def kernel_backends() -> list[str]:
            table = read_table(node)
            chain = table.service_chain(web.spec.cluster_ip, "tcp", 80) if table else None
            return sorted(ip for ip, _ in table.backends(chain)) if chain else []

        async def kernel_has(ips) -> bool:
            return await kernel_backends() == sorted(ips)

        await until(lambda: kernel_has(pods.values()), what="both pods in the kernel's rules")
        assert "mode: nftables (requested)" in proxy.output()

        # What an earlier run left is gone; another program's table is as it was.
        text = ruleset_text(node)
        assert "gone/old" not in text and "10.111.111" not in text
        assert node.nft("list", "table", "inet", "bystander") == bystander

        # Both pods answer through the ClusterIP, from the host and from another pod.
        host = await answers(lambda: from_host(node, web.spec.cluster_ip, 80))
        print(f"\nnftables: ClusterIP from the host: {dict(host)}")
        assert set(host) == set(pods) and sum(host.values()) == ANSWERS
        in_pod = await answers_from_pod(api, ns, f"http://{web.spec.cluster_ip}:80/")
        print(f"nftables: ClusterIP from the client pod: {dict(in_pod)}")
        assert set(in_pod) == set(pods) and sum(in_pod.values()) == ANSWERS

        # A backend reaching its own Service gets every answer, its own included (hairpin, masqueraded).
        first = sorted(pods)[0]
        hairpin = await answers_from_pod(api, ns, f"http://{web.spec.cluster_ip}:80/", pod=first)
        print(f"nftables: ClusterIP from backend {first} itself: {dict(hairpin)}")
        assert set(hairpin) == set(pods) and sum(hairpin.values()) == ANSWERS

        # The NodePort answers on the node's address, from the host and from outside the node.
        host_np = await answers(lambda: from_host(node, node.node_ip, node_port))
        outside_np = await answers(lambda: from_outside(node.node_ip, node_port))
        print(f"nftables: NodePort from the host: {dict(host_np)}; from outside: {dict(outside_np)}")
        assert set(host_np) == set(pods) and set(outside_np) == set(pods)

        # ClientIP affinity keeps one client on one pod.
        assert len(await answers(lambda: from_host(node, sticky.spec.cluster_ip, 80))) == 1

        # No ready endpoints: refused at once (ClusterIP and NodePort).
        with pytest.raises(ConnectionRefusedError):
            from_host(node, nobody.spec.cluster_ip, 80)
        with pytest.raises(ConnectionRefusedError):
            from_outside(node.node_ip, nobody.spec.ports[0].node_port)

        # Scaling up and down changes the kernel's backends; the delay is measured.
        delay = await programming_delay(api, ns, ready=3, change=lambda: scale(api, ns, 3), applied=kernel_has)
        grown = await ready_web_pods(api, ns, 3)
        print(f"nftables: scale 2 -> 3: EndpointSlice change to kernel rules {delay:.3f}s")
        assert delay < 10
        assert set(await answers(lambda: from_host(node, web.spec.cluster_ip, 80), 30)) == set(grown)
        requested = time.monotonic()
        delay = await programming_delay(api, ns, ready=2, change=lambda: scale(api, ns, 2), applied=kernel_has)
        print(f"nftables: scale 3 -> 2: EndpointSlice change to kernel rules {delay:.3f}s "
              f"({time.monotonic() - requested:.3f}s from the scale request)")
        assert delay < 10
        shrunk = await ready_web_pods(api, ns, 2)

        # A pod failing its readiness probe gets no more traffic.
        failing, healthy = sorted(shrunk)
        await fail_readiness(api, ns, failing)
        await until(lambda: kernel_has([shrunk[healthy]]), what=f"{failing} out of the kernel's rules")
        assert await answers(lambda: from_host(node, web.spec.cluster_ip, 80)) == Counter({healthy: ANSWERS})

        assert proxy.metric("sampan_proxy_sync_proxy_rules_duration_seconds_count") >= 3
        assert proxy.metric("sampan_proxy_network_programming_duration_seconds_count") >= 3
        assert proxy.metric("sampan_proxy_services") == await service_ports(api)
        assert proxy.metric("sampan_proxy_sync_proxy_rules_errors_total") == 0

        # Deleting the Service leaves no rule of it.
        await api.delete("Service", "web", namespace=ns)

        async def web_gone() -> bool:
            text = ruleset_text(node)
            return f"{ns}/web/" not in text and web.spec.cluster_ip not in text and f" {node_port} " not in text
        await until(web_gone, timeout=10, what="every rule of the deleted Service to go")
        assert read_table(node).service_chain(sticky.spec.cluster_ip, "tcp", 80)  # the others stay
        assert node.nft("list", "table", "inet", "bystander") == bystander
    finally:
        proxy.stop()
        print(proxy.output()[-3000:])
        node.run("nft", "delete", "table", "ip", "sampan", check=False)
        node.run("nft", "delete", "table", "inet", "bystander", check=False)
        await tear_down(api, ns)


# ------------------------------------------------------------ userspace


async def test_userspace_mode_serves_node_ports_without_root(cluster: Cluster, api: Client):
    node, ns = cluster.node, "userspace-e2e"
    node.run("nft", "delete", "table", "ip", "sampan", check=False)  # no kernel rule may answer for it
    await apply_manifests(api, ns)
    proxy = start_proxy(cluster, mode="auto", user="65534")  # nobody
    try:
        pods = await ready_web_pods(api, ns, 2)
        web = await api.get("Service", "web", namespace=ns)
        nobody = await api.get("Service", "nobody", namespace=ns)
        node_port = web.spec.ports[0].node_port

        async def serving_both() -> bool:
            try:
                return set(await answers(lambda: from_host(node, node.node_ip, node_port), 2)) == set(pods)
            except OSError:
                return False
        await until(serving_both, what="both pods to answer on the NodePort")
        output = proxy.output()
        assert "mode: userspace" in output and "not root" in output
        assert f"{web.spec.cluster_ip}:80/tcp" in output and "not on this host" in output  # ClusterIP reported
        assert read_table(node) is None

        host = await answers(lambda: from_host(node, node.node_ip, node_port))
        loopback = await answers(lambda: from_host(node, "127.0.0.1", node_port))
        outside = await answers(lambda: from_outside(node.node_ip, node_port))
        in_pod = await answers_from_pod(api, ns, f"http://{node.node_ip}:{node_port}/")
        print(f"\nuserspace: NodePort from the host: {dict(host)}; on 127.0.0.1: {dict(loopback)}; "
              f"from outside: {dict(outside)}; from the client pod: {dict(in_pod)}")
        for counted in (host, loopback, outside, in_pod):
            assert counted == Counter({name: ANSWERS // 2 for name in pods})  # round robin

        with pytest.raises(ConnectionResetError):
            from_host(node, node.node_ip, nobody.spec.ports[0].node_port)

        async def a_new_pod_answers(addresses: set[str]) -> bool:
            return bool(set(await answers(lambda: from_host(node, node.node_ip, node_port), 3)) - set(pods))
        delay = await programming_delay(api, ns, ready=3, change=lambda: scale(api, ns, 3),
                                        applied=a_new_pod_answers)
        print(f"userspace: scale 2 -> 3: EndpointSlice change to the new pod answering {delay:.3f}s")
        assert delay < 10
        grown = await ready_web_pods(api, ns, 3)

        # A pod failing its readiness probe gets no more traffic, once the proxy has seen it.
        failing = sorted(grown)[0]
        await fail_readiness(api, ns, failing)

        async def failing_left_out() -> bool:
            return failing not in await answers(lambda: from_host(node, node.node_ip, node_port), 3)
        await until(failing_left_out, what=f"{failing} to get no more connections")
        got = await answers(lambda: from_host(node, node.node_ip, node_port), 30)
        assert failing not in got and set(got) == set(grown) - {failing}

        await api.delete("Service", "web", namespace=ns)

        async def closed() -> bool:
            try:
                await asyncio.to_thread(from_host, node, node.node_ip, node_port)
            except ConnectionRefusedError:
                return True
            except ConnectionResetError:
                return False  # its endpoints went first: a port without backends resets until it closes
            return False
        await until(closed, timeout=10, what="the deleted Service's NodePort to close")
    finally:
        proxy.stop()
        print(proxy.output()[-3000:])
        await tear_down(api, ns)
