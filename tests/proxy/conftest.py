"""Fixtures for the proxy's tests.

- ``node``: a fresh network namespace standing for a node (tests/proxy/netns.py),
  for tests that program real nftables; deleted afterwards. Needs root,
  ``ip``/``nsenter`` and Debian's ``nftables`` (skips locally without them,
  fails under CI=true).
- ``cluster``: one whole node for the session, for the end-to-end tests: a
  node namespace; a private containerd started inside it (so its CNI bridge,
  its pods and their addresses are the node's, not the host's); a control
  service in the host listening on the veth's host end; and an agent for
  the node (``sampan agent``) running inside it. Tests create their own
  namespace of objects and start their own ``sampan proxy`` inside the node.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.proxy.netns import NodeNamespace, node_namespace
from tests.support.components import require, require_binary
from tests.support.containerd import CNI_BIN_DIR, Containerd, running_containerd
from tests.support.control import ControlServer

NODE_NAME = "proxy-node"


def require_node_namespace() -> None:
    require(os.geteuid() == 0, "proxy kernel tests need root (network namespaces, nftables)")
    require_binary("ip", package="iproute2")
    require_binary("nsenter", package="util-linux")
    require_binary("nft", package="nftables")


@pytest.fixture
def node() -> Iterator[NodeNamespace]:
    require_node_namespace()
    with node_namespace() as namespace:
        yield namespace


# ------------------------------------------------------------ a whole node, for end-to-end tests


class NodeControlServer(ControlServer):
    """The control service listening where the node namespace reaches it (the veth's host end)."""

    def __init__(self, workdir: Path, *, host: str) -> None:
        super().__init__(workdir, extra_args=("--leader-elect=false",))
        self.host = host

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Cluster:
    node: NodeNamespace
    control: NodeControlServer
    containerd: Containerd
    agent: subprocess.Popen
    workdir: Path

    @property
    def server(self) -> str:
        return self.control.address

    @property
    def node_name(self) -> str:
        return NODE_NAME

    def sampan_in_node(self, *args: str, user: str = "") -> list[str]:
        """argv for ``sampan ARGS`` run inside the node (as ``user`` when given, through setpriv)."""
        drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"] if user else []
        return self.node.command(*drop, sys.executable, "-m", "control.cli.main", *args)


def _containerd_in(node: NodeNamespace, workdir: Path) -> str:
    """A containerd binary that starts in the node's network namespace (the only difference from the host's)."""
    wrapper = workdir / "containerd-in-node"
    wrapper.write_text(f"#!/bin/sh\nexec nsenter --net={node.path} -- {require_binary('containerd', package='containerd')} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    require_node_namespace()
    ctr = require_binary("ctr", package="containerd")
    runc = require_binary("runc", package="runc")
    require_binary("busybox", package="busybox-static")
    require_binary("setpriv", package="util-linux")
    require(Path(CNI_BIN_DIR, "bridge").exists(),
            f"no CNI plugins in {CNI_BIN_DIR}: install the Debian package 'containernetworking-plugins'")
    workdir = tmp_path_factory.mktemp("proxy-cluster")
    with node_namespace() as node:
        with running_containerd(binary=_containerd_in(node, workdir), ctr_binary=ctr, runc_binary=runc) as daemon:
            control = NodeControlServer(workdir / "control", host=node.host_ip).start()
            log = open(workdir / "agent.log", "ab")
            agent = subprocess.Popen(node.command(
                sys.executable, "-m", "control.cli.main", "agent", "--insecure-plaintext", "--server", control.address,
                "--node-name", NODE_NAME, "--data-dir", str(workdir / "agent"), "--runtime", "containerd",
                "--containerd-socket", daemon.socket, "--node-ip", node.node_ip, "--metrics-listen", "",
                "--listen", f"{node.node_ip}:0", "--restart-backoff", "0.5",
                "--restart-backoff-max", "2"), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                asyncio.run(_wait_node_ready(control.address, agent))
                yield Cluster(node=node, control=control, containerd=daemon, agent=agent, workdir=workdir)
            finally:
                agent.terminate()
                try:
                    agent.wait(15)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
                control.stop()


async def _wait_node_ready(server: str, agent: subprocess.Popen) -> None:
    from control.api import errors
    from control.client import Client

    deadline = time.monotonic() + 60
    async with Client.connect(server) as api:
        while time.monotonic() < deadline:
            assert agent.poll() is None, f"the agent exited with {agent.returncode}"
            try:
                node = await api.get("Node", NODE_NAME)
                if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions):
                    return
            except errors.NotFoundError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"node {NODE_NAME} not Ready within 60s")
