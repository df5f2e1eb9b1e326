"""Hosts and pods made of network namespaces, for tests of the pod network across nodes.

``NetnsLab`` builds, and removes on ``close``, a small network on this
machine without touching the root namespace's interfaces or routes:

- a LAN: a namespace holding one bridge (``lan``), which every host joins
  through a veth pair;
- hosts (``lab.host(...)``): a namespace with ``eth0`` on the LAN, IP
  forwarding on, and a pod bridge ``cbr0`` holding the host's pod gateway
  address, as a node's CNI bridge would;
- pods (``lab.pod(...)``): a namespace with ``eth0`` on its host's pod
  bridge and a default route through the pod gateway.

Namespace names carry the test's pid and a random tag, so concurrent test
sessions never collide; everything lives in those namespaces and goes with
them. Needs root and iproute2 (``ip``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import subprocess
from dataclasses import dataclass


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Namespace:
    name: str

    def ip(self, *args: str) -> str:
        """Run ``ip`` in this namespace; its output (RuntimeError with its message on failure)."""
        return _ip("-n", self.name, *args)

    async def run(self, *command: str, timeout: float = 10.0) -> tuple[int, str]:
        """Run a command in this namespace without blocking the event loop; (exit code, output)."""
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.name, *command,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
        return process.returncode, output.decode(errors="replace")


@dataclass(frozen=True)
class Host(Namespace):
    address: str  # on the LAN
    pod_gateway: str | None  # on cbr0, with its prefix: 10.244.1.1/24 (None: no cbr0)


class NetnsLab:
    def __init__(self, lan_cidr: str = "10.250.0.0/24") -> None:
        self.tag = f"sp{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.lan_prefix = ipaddress.ip_network(lan_cidr).prefixlen
        self._namespaces: list[str] = []
        self.lan = self._namespace("lan")
        self.lan.ip("link", "add", "lan", "type", "bridge")
        self.lan.ip("link", "set", "lan", "up")
        self._hosts = 0

    def _namespace(self, role: str) -> Namespace:
        name = f"{self.tag}-{role}"
        _ip("netns", "add", name)
        self._namespaces.append(name)
        namespace = Namespace(name)
        namespace.ip("link", "set", "lo", "up")
        return namespace

    def host(self, role: str, *, address: str, pod_gateway: str | None) -> Host:
        """A host on the LAN at address, with a pod bridge holding pod_gateway (CIDR notation);
        without one when pod_gateway is None (the host's own CNI makes its bridge)."""
        self._namespace(role)
        host = Host(f"{self.tag}-{role}", address=address, pod_gateway=pod_gateway)
        self._hosts += 1
        lan_end = f"h{self._hosts}"
        self.lan.ip("link", "add", lan_end, "type", "veth", "peer", "name", "eth0", "netns", host.name)
        self.lan.ip("link", "set", lan_end, "master", "lan", "up")
        host.ip("addr", "add", f"{address}/{self.lan_prefix}", "dev", "eth0")
        host.ip("link", "set", "eth0", "up")
        if pod_gateway is not None:
            host.ip("link", "add", "cbr0", "type", "bridge")
            host.ip("addr", "add", pod_gateway, "dev", "cbr0")
            host.ip("link", "set", "cbr0", "up")
        subprocess.run(["ip", "netns", "exec", host.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
                       check=True, timeout=10)
        return host

    def pod(self, host: Host, role: str, *, address: str) -> Namespace:
        """A pod on host's bridge at address (CIDR notation), routed through the host's pod gateway."""
        pod = self._namespace(role)
        index = len(self._namespaces)
        host_end = f"p{index}"
        host.ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", pod.name)
        host.ip("link", "set", host_end, "master", "cbr0", "up")
        pod.ip("addr", "add", address, "dev", "eth0")
        pod.ip("link", "set", "eth0", "up")
        pod.ip("route", "add", "default", "via", host.pod_gateway.split("/")[0])
        return pod

    def close(self) -> None:
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        self._namespaces.clear()
