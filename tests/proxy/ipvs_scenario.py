"""The IPVS mode's scenario, run as root inside the test VM (tests/proxy/test_ipvs.py).

``python -m tests.proxy.ipvs_scenario scenario REPORT`` runs it and
writes its report (JSON) to REPORT; it imports no pytest, whose import
alone takes seconds under emulation. It programs real IPVS through
``IPVSMode`` from ProxyStates that ``proxy.state.desired_state`` computes
from Service, EndpointSlice and Node objects, step by step:

1. ``initial``: three Services (``web``: ClusterIP + NodePort, two
   backends; ``sticky``: ClientIP affinity, two backends; ``hostnet``: one
   backend on the node's loopback, like a host-network pod), a full sync,
   with foreign IPVS services already in the kernel and a loopback
   connection of the host's own open;
2. ``endpoint-removed``: one of web's backends is gone (incremental sync);
3. ``service-removed``: ``sticky`` is deleted (incremental sync);
4. ``restart``: the first mode programs everything again and stops; stale
   state is planted by hand (a virtual server on sampan-ipvs0, a NodePort, a
   set element, a real server's weight changed); a new mode, with scheduler
   ``wrr``, must leave exactly step 3 after its first (full) sync;
5. ``cleanup``: the mode's ``cleanup`` removes everything Sampan's;
6. ``leftovers-removed``: a mode programs the services again and stops;
   ``remove_leftovers`` (what ``sampan proxy --cleanup`` and the other modes
   call) removes everything Sampan's;
7. ``many``: 200 Services of 5 backends each at once, then none (their
   1,200 messages go to the kernel in many writes); ``refused``: a batch
   in which the kernel refuses one change.

The VM's network is built like a node's: each backend is a "pod", a
listener in its own network namespace behind a routed veth (no bridge),
answering with its name and the client address it sees; a namespace
``outside`` plays a client on another machine; the node's InternalIP sits
on a dummy interface. Connections come from the node itself, from
``outside``, and from pods, so masquerading shows in the addresses the
backends see. After each step the scenario records ``ipvsadm -Ln``, the
addresses on sampan-ipvs0, the nftables sets, and which backend answered
each connection. The tests in test_ipvs.py each check one behaviour in
that report.

``python -m tests.proxy.ipvs_scenario end-to-end REPORT`` runs
``end_to_end`` instead, for tests/proxy/test_ipvs_end_to_end.py:
``sampan control`` and ``sampan proxy --mode auto`` as processes in the
same network.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import json
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NODE = "vm-node"
NODE_IP = "10.250.0.10"
WEB_IP, WEB_PORT, WEB_NODE_PORT = "10.96.0.10", 80, 30080
STICKY_IP, STICKY_PORT, STICKY_TIMEOUT = "10.96.0.20", 90, 60
BACKENDS = {  # name -> (address, port): one pod each, in its own network namespace
    "web-a": ("10.250.1.1", 8080),
    "web-b": ("10.250.1.2", 8080),
    "sticky-a": ("10.250.1.3", 9090),
    "sticky-b": ("10.250.1.4", 9090),
}
HOSTNET_IP, HOSTNET_PORT = "10.96.0.30", 99
HOST_BACKEND = ("127.0.0.1", 9999)  # a host-network backend: the node's own loopback
POD_GATEWAY = "10.250.1.254"  # the node's side of every pod's veth
OUTSIDE_IP, OUTSIDE_GATEWAY = "10.250.2.2", "10.250.2.1"
FOREIGN = [  # IPVS services another program made: never to be touched
    ["-A", "-t", "10.250.9.9:80", "-s", "wlc"],
    ["-a", "-t", "10.250.9.9:80", "-r", "10.250.1.1:8080", "-m"],
    ["-A", "-t", f"{NODE_IP}:8000", "-s", "rr"],  # on the node's address, outside the NodePort range
]
CLUSTER_CIDR = "10.250.1.0/24"  # the pods' addresses
MANY, MANY_BACKENDS = 200, 5


def _service(name: str, ip: str, port: int, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"name": "main", "port": port, "protocol": "TCP"}], **spec}}


def _slice(service: str, backends: list[str]) -> dict:
    addresses = {**BACKENDS, "host": HOST_BACKEND}
    port = addresses[backends[0]][1] if backends else 1
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [addresses[b][0]], "conditions": {"ready": True}, "nodeName": NODE}
                          for b in backends],
            "ports": [{"name": "main", "port": port, "protocol": "TCP"}]}


def _state(*, web: list[str], sticky: list[str] | None):
    from control.api.manifest import to_message
    from proxy.state import desired_state

    web_service = _service("web", WEB_IP, WEB_PORT, type="NodePort")
    web_service["spec"]["ports"][0]["nodePort"] = WEB_NODE_PORT
    services = [web_service, _service("hostnet", HOSTNET_IP, HOSTNET_PORT)]
    slices = [_slice("web", web), _slice("hostnet", ["host"])]
    if sticky is not None:
        services.append(_service("sticky", STICKY_IP, STICKY_PORT, sessionAffinity="ClientIP",
                                 sessionAffinityConfig={"clientIP": {"timeoutSeconds": STICKY_TIMEOUT}}))
        slices.append(_slice("sticky", sticky))
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}}
    return desired_state(node_name=NODE, node=to_message(node), services=[to_message(s) for s in services],
                         slices=[to_message(s) for s in slices])


class _Answer(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(f"{self.server.backend_name} {self.client_address[0]}\n".encode())


_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def _netns(name: str | None):
    """Run the block in network namespace ``name`` (None: the node's): sockets made there stay there."""
    if name is None:
        yield
        return
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
        yield
    finally:
        _libc.setns(home, _CLONE_NEWNET)
        os.close(target)
        os.close(home)


def _ip_batch(commands: list[str], *, namespace: str | None = None) -> None:
    """Run ``ip`` commands in one process (each exec costs much under emulation)."""
    subprocess.run(["ip", *(["-n", namespace] if namespace else []), "-batch", "-"], input="\n".join(commands) + "\n",
                   text=True, check=True, capture_output=True)


def _build_network() -> None:
    """The node's InternalIP on a dummy interface, a namespace per pod, and one for an outside client.

    Each namespace is joined to the node by a routed veth (``ADDRESS``/32
    inside, the gateway's address on the node's end), so every packet
    between two of them passes the node's IP stack, as between real pods.
    """
    links = {name: (address, POD_GATEWAY) for name, (address, _port) in BACKENDS.items()}
    links["outside"] = (OUTSIDE_IP, OUTSIDE_GATEWAY)
    node = ["link add node0 type dummy", "link set node0 up", f"addr add {NODE_IP}/24 dev node0"]
    for namespace, (inside, gateway) in links.items():
        node_end = f"v-{namespace}"[:15]
        node += [f"netns add {namespace}", f"link add {node_end} type veth peer name eth0 netns {namespace}",
                 f"addr add {gateway}/32 dev {node_end}", f"link set {node_end} up",
                 f"route add {inside}/32 dev {node_end}"]
    _ip_batch(node)
    for namespace, (inside, gateway) in links.items():
        _ip_batch([f"addr add {inside}/32 dev eth0", "link set eth0 up", "link set lo up",
                   f"route add {gateway} dev eth0 scope link", f"route add default via {gateway} dev eth0"],
                  namespace=namespace)
    for name, (address, port) in [*BACKENDS.items(), ("host", HOST_BACKEND)]:
        with _netns(name if name in BACKENDS else None):
            server = socketserver.ThreadingTCPServer((address, port), _Answer)
        server.backend_name = name
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()


def _sh(command: str) -> str:
    return subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout


def _connect(client: str | None, address: str, port: int, count: int) -> dict:
    """Open ``count`` connections from namespace ``client`` (None: the node itself); which backend
    answered how often, and the client addresses the backends saw."""
    answers: collections.Counter[str] = collections.Counter()
    peers: set[str] = set()
    for _ in range(count):
        try:
            with _netns(client):
                conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with conn:
                conn.settimeout(3)
                conn.connect((address, port))
                name, peer = conn.makefile().readline().split()
                answers[name] += 1
                peers.add(peer)
        except (OSError, ValueError) as err:  # ValueError: closed without an answer
            answers[f"error: {type(err).__name__}"] += 1
    return {"answers": dict(answers), "peers": sorted(peers)}


def _snapshot(traffic: dict[str, tuple[str | None, str, int, int]]) -> dict:
    interface = subprocess.run("ip -4 -o addr show dev sampan-ipvs0", shell=True, capture_output=True, text=True)
    table = subprocess.run("nft -j list table ip sampan-ipvs", shell=True, capture_output=True, text=True)
    sets = {}
    if table.returncode == 0:
        for item in json.loads(table.stdout)["nftables"]:
            if "set" in item:
                sets[item["set"]["name"]] = sorted(json.dumps(e, sort_keys=True) for e in item["set"].get("elem", []))
    return {
        "ipvsadm": _sh("ipvsadm -Ln"),
        "interface": (None if interface.returncode
                      else sorted(line.split()[3] for line in interface.stdout.splitlines())),
        "nft_sets": sets if table.returncode == 0 else None,
        "traffic": {label: _connect(*target) for label, target in traffic.items()},
    }


def ipvs_table(ipvsadm_output: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``ipvsadm -Ln`` as {"TCP addr:port": (scheduler and flags, ("real:port Forward Weight", ...))}."""
    table: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in ipvsadm_output.splitlines():
        fields = line.split()
        if fields and fields[0] in ("TCP", "UDP", "SCTP"):
            current = f"{fields[0]} {fields[1]}"
            table[current] = (" ".join(fields[2:]), [])
        elif current and fields[:1] == ["->"]:
            table[current][1].append(" ".join(fields[1:4]))
    return {key: (settings, tuple(sorted(reals))) for key, (settings, reals) in table.items()}


def _still_connected(client: socket.socket, peer: socket.socket) -> bool:
    try:
        client.sendall(b"?")
        peer.settimeout(3)
        return peer.recv(1) == b"?"
    except OSError:
        return False


async def _until(probe, *, timeout: float = 60.0, what: str):
    """Poll ``probe`` until it returns something true; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f} s: {what}\n{_sh('ipvsadm -Ln')}")


async def scenario() -> dict:
    from proxy.ipvs import IPVSMode, ipvs_available, remove_leftovers
    from proxy.modes import ModeOptions

    options = ModeOptions(node_name=NODE, cluster_cidr=CLUSTER_CIDR)
    _build_network()
    for args in FOREIGN:
        subprocess.run(["ipvsadm", *args], check=True)
    web = (None, WEB_IP, WEB_PORT, 20)
    report: dict = {"sync_seconds": {}, "ipvs_available": await asyncio.to_thread(ipvs_available)}

    async def sync(step: str, mode: IPVSMode, state, *, full: bool) -> None:
        started = time.perf_counter()
        await mode.sync(state, full=full)
        report["sync_seconds"][step] = round(time.perf_counter() - started, 4)

    # A loopback connection of the host's own, open before the proxy starts: it must survive.
    loopback_server = socket.create_server(("127.0.0.1", 0))
    loopback_client = socket.create_connection(loopback_server.getsockname())
    loopback_peer, _ = loopback_server.accept()

    mode = IPVSMode(options)
    await sync("initial", mode, _state(web=["web-a", "web-b"], sticky=["sticky-a", "sticky-b"]), full=True)
    report["initial"] = _snapshot({
        "web": web,
        "sticky": (None, STICKY_IP, STICKY_PORT, 8),
        "node-port from outside": ("outside", NODE_IP, WEB_NODE_PORT, 10),
        "web from outside": ("outside", WEB_IP, WEB_PORT, 4),
        "web from a pod": ("sticky-a", WEB_IP, WEB_PORT, 4),
        "hostnet": (None, HOSTNET_IP, HOSTNET_PORT, 3),
    })
    report["initial"]["loopback_alive"] = _still_connected(loopback_client, loopback_peer)

    await sync("endpoint-removed", mode, _state(web=["web-a"], sticky=["sticky-a", "sticky-b"]), full=False)
    report["endpoint-removed"] = _snapshot({"web": web, "web from its own backend": ("web-a", WEB_IP, WEB_PORT, 4)})

    await sync("service-removed", mode, _state(web=["web-a"], sticky=None), full=False)
    report["service-removed"] = _snapshot({"web": web, "sticky": (None, STICKY_IP, STICKY_PORT, 2)})

    await sync("all-again", mode, _state(web=["web-a", "web-b"], sticky=["sticky-a", "sticky-b"]), full=False)
    await mode.close()
    _sh("ip addr add 10.96.0.99/32 dev sampan-ipvs0"
        " && ipvsadm -A -t 10.96.0.99:80 -s rr && ipvsadm -a -t 10.96.0.99:80 -r 10.250.1.1:8080 -m"
        f" && ipvsadm -A -t {NODE_IP}:31999 -s rr"
        f" && ipvsadm -e -t {WEB_IP}:{WEB_PORT} -r {BACKENDS['web-a'][0]}:{BACKENDS['web-a'][1]} -m -w 5"
        " && nft add element ip sampan-ipvs cluster-ips '{ 10.96.0.99 . tcp . 80 }'")
    report["before-restart"] = _snapshot({})
    restarted = IPVSMode(options, scheduler="wrr")
    await sync("restart", restarted, _state(web=["web-a"], sticky=None), full=True)
    report["restart"] = _snapshot({"web": web})

    await restarted.cleanup()
    await restarted.close()
    report["cleanup"] = _snapshot({})

    again = IPVSMode(options)
    await sync("again", again, _state(web=["web-a", "web-b"], sticky=["sticky-a", "sticky-b"]), full=True)
    await again.close()
    report["before-leftovers-removed"] = _snapshot({})
    await asyncio.to_thread(remove_leftovers, options)  # as the proxy calls it: pyroute2 blocks
    report["leftovers-removed"] = _snapshot({})

    # Many services at once: their messages go to the kernel in many writes.
    many = IPVSMode(options)
    await sync("many", many, _many_services(MANY), full=True)
    report["many"] = _sh("ipvsadm -Ln")
    await sync("many-removed", many, _many_services(0), full=False)
    report["many-removed"] = _sh("ipvsadm -Ln")
    await many.cleanup()
    await many.close()
    report["refused"] = await asyncio.to_thread(_refused_change)
    return report


def _many_services(count: int):
    from proxy.state import Backend, ProxyState, ServicePortName, VirtualService

    services = tuple(
        VirtualService(name=ServicePortName("many", f"s{i}", "80", "TCP"), cluster_ip=f"10.97.{i // 250}.{i % 250 + 1}",
                       port=80, protocol="TCP",
                       backends=tuple(Backend(f"10.251.{j}.{i % 250 + 1}", 8080) for j in range(MANY_BACKENDS)))
        for i in range(count))
    return ProxyState(node_name=NODE, services=services)


def _refused_change() -> str:
    """What the kernel says when one change of a batch is refused (a real server of no virtual server)."""
    from proxy.ipvs_kernel import IPVSError, NetlinkKernel, RealServer, VirtualKey, VirtualServer

    kernel = NetlinkKernel()
    try:
        kernel.add_real_server(VirtualKey("TCP", "10.96.0.77", 80), RealServer("10.250.1.1", 8080))
        kernel.add_virtual_server(VirtualServer(VirtualKey("TCP", "10.96.0.78", 80)))
        try:
            kernel.commit()
        except IPVSError as err:
            message = str(err)
        else:
            message = "no error"
        applied = "TCP 10.96.0.78:80" in ipvs_table(_sh("ipvsadm -Ln"))
        kernel.delete_virtual_server(VirtualKey("TCP", "10.96.0.78", 80))
        kernel.commit()
        return f"{message} | the other change applied: {applied}"
    finally:
        kernel.close()


async def end_to_end(share: Path) -> dict:
    """``sampan control`` and ``sampan proxy --mode auto --ipvs-scheduler wrr`` as processes.

    A Service without a selector gets its EndpointSlice from the scenario
    (no agent runs here), through the API, as in Kubernetes; the proxy must
    choose the ipvs mode by itself, program the Service, follow a change
    of its endpoints and remove it when it is deleted. The control plane's
    own Services (cluster DNS) are programmed too; their backends are on
    the host's loopback, where the control plane's own connections run.
    """
    from control.api.manifest import to_message
    from control.client import Client
    from tests.support.control import ControlServer

    _build_network()
    # The store on the VM's own tmpfs: SQLite's shared memory does not work over 9p.
    store = Path(tempfile.mkdtemp(prefix="control-")) / "state.db"
    control = ControlServer(share / "control", store_url=f"sqlite:///{store}").start(timeout=120)
    proxy_log = share / "proxy.log"
    with open(proxy_log, "wb") as log:
        proxy = subprocess.Popen(
            [sys.executable, "-m", "control.cli.main", "proxy", "--insecure-plaintext", "--server", control.address, "--node-name", NODE,
             "--mode", "auto", "--ipvs-scheduler", "wrr", "--metrics-listen", "", "--cluster-cidr", CLUSTER_CIDR,
             "--min-sync-period", "0"], stdout=log, stderr=subprocess.STDOUT)
    result: dict = {}
    try:
        async with Client.connect(control.address) as api:
            node = await api.create(to_message({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}))
            node.status.addresses.add(type="InternalIP", address=NODE_IP)
            await api.update_status(node)
            service = await api.create(to_message({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "e2e", "namespace": "default"},
                "spec": {"type": "NodePort", "ports": [{"name": "main", "port": 80, "targetPort": 8080}]}}))
            cluster_ip, node_port = service.spec.cluster_ip, service.spec.ports[0].node_port
            result.update(cluster_ip=cluster_ip, node_port=node_port)
            endpoints = await api.create(to_message(_slice("e2e", ["web-a", "web-b"])))

            def reals_of(address: str, port: int) -> tuple[str, ...] | None:
                return ipvs_table(_sh("ipvsadm -Ln")).get(f"TCP {address}:{port}", (None, None))[1]

            await _until(lambda: reals_of(cluster_ip, 80) and len(reals_of(cluster_ip, 80)) == 2,
                         what="the Service's two backends")
            await _until(lambda: reals_of(NODE_IP, node_port), what="the Service's NodePort")
            result["programmed"] = _snapshot({"cluster-ip": (None, cluster_ip, 80, 10),
                                              "node-port from outside": ("outside", NODE_IP, node_port, 4)})

            del endpoints.endpoints[1:]
            await api.update(endpoints)
            started = time.monotonic()
            await _until(lambda: reals_of(cluster_ip, 80) == (f"{BACKENDS['web-a'][0]}:8080 Masq 1",),
                         what="one backend left")
            result["endpoint_change_seconds"] = round(time.monotonic() - started, 3)
            result["endpoint-removed"] = _snapshot({"cluster-ip": (None, cluster_ip, 80, 4)})

            await api.delete("Service", "e2e", namespace="default")
            await _until(lambda: reals_of(cluster_ip, 80) is None and reals_of(NODE_IP, node_port) is None,
                         what="the deleted Service's virtual servers gone")
            result["service-deleted"] = _snapshot({})
    finally:
        proxy.terminate()
        proxy.wait(30)
        control.stop()
    result["proxy_log"] = proxy_log.read_text(errors="replace")
    return result


if __name__ == "__main__":
    # Inside the VM: run the scenario and leave its report where the host reads it.
    which, report_path = sys.argv[1], Path(sys.argv[2])
    began = time.perf_counter()
    result = asyncio.run(scenario() if which == "scenario" else end_to_end(report_path.parent))
    result["seconds"] = round(time.perf_counter() - began, 2)
    report_path.write_text(json.dumps(result, indent=1))
