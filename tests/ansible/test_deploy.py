"""The Ansible deployment, end to end, over real SSH to three hosts.

The hosts are namespaces on this machine (tests/support/ssh_hosts.py): one
etcd + control host and two agents. Without systemd, apt or a route out,
the inventory says so: ``sampan_install_packages: false`` (this machine has
Debian's containerd, runc, CNI plugins, etcd and nftables, which the hosts
share through /usr), ``sampan_service_manager: supervised``, containerd's
native snapshotter (/var/lib is an overlay there). Sampan reaches the hosts
as a wheelhouse built on the controller.

One test walks the whole life of a cluster, since each step needs the one
before: ``site.yml`` deploys it; both agents become Ready nodes; a Deployment
of 4 replicas spreads over both; its ClusterIP answers from each node;
``site.yml`` again, and ``--check --diff``, change nothing; ``reset.yml``
leaves no process, file, route, bridge or rule of Sampan's on the hosts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.support.components import require, require_binary
from tests.support.ssh_hosts import SshHost, SshHostLab

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
VENV_BIN = Path(sys.executable).parent
SAMPAN_PATHS = ("/opt/sampan", "/etc/sampan", "/var/lib/sampan", "/var/log/sampan", "/run/sampan")

pytestmark = pytest.mark.timeout(600)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {matchLabels: {app: web}}
      containers:
      - name: web
        image: busybox:1.36
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www']
        resources: {requests: {cpu: 100m, memory: 16Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[SshHostLab]:
    require(os.geteuid() == 0, "the Ansible deployment test needs root (network and mount namespaces)")
    require(os.path.exists("/usr/sbin/sshd"), "sshd not found: install the Debian package 'openssh-server'")
    require_binary("ssh", package="openssh-client")
    require_binary("unshare", package="util-linux")
    for binary, package in (("etcd", "etcd-server"), ("containerd", "containerd"), ("runc", "runc"),
                            ("nft", "nftables"), ("busybox", "busybox-static"), ("openssl", "openssl")):
        require_binary(binary, package=package)
    require(os.path.exists("/usr/lib/cni/bridge"), "CNI plugins not found: install 'containernetworking-plugins'")
    require((VENV_BIN / "ansible-playbook").exists(),
            "ansible-playbook not found: install the [dev] extra (pip install -e '.[dev]')")
    lab = SshHostLab()
    try:
        for name in ("control1", "node1", "node2"):
            lab.host(name)
        yield lab
    finally:
        lab.close()


def _inventory(lab: SshHostLab, directory: Path) -> Path:
    hosts = {host.name: {"ansible_host": host.address} for host in lab.hosts}
    inventory = {
        "sampan_cluster": {
            "hosts": hosts,
            "children": {
                "etcd": {"hosts": {"control1": None}},
                "control": {"hosts": {"control1": None}},
                "agents": {"hosts": {"node1": None, "node2": None}},
            },
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(lab.key),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                "ansible_python_interpreter": "/usr/bin/python3",
                "sampan_install_packages": False,
                "sampan_service_manager": "supervised",
                "sampan_containerd_snapshotter": "native",
                "sampan_proxy_mode": "nftables",
                "sampan_wheelhouse_dir": str(directory / "build"),
                "sampan_admin_config_local": str(directory / "admin.conf"),
            },
        }
    }
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


class Controller:
    """ansible-playbook and sampan, run from the lab's controller address."""

    def __init__(self, lab: SshHostLab, directory: Path) -> None:
        self.lab = lab
        self.inventory = _inventory(lab, directory)
        self.admin_config = directory / "admin.conf"
        self.wheelhouse_dir = directory / "build"
        control_path = directory / "cp"
        control_path.mkdir()
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
                        ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_path), ANSIBLE_LOCAL_TEMP=str(directory / "tmp"),
                        ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", PATH=f"{VENV_BIN}:{os.environ['PATH']}")
        self.timings: dict[str, float] = {}

    def playbook(self, name: str, *extra: str, label: str = "") -> str:
        started = time.monotonic()
        result = self.lab.controller_command(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(ANSIBLE_DIR / name), *extra],
            timeout=400, env=self.env)
        self.timings[label or " ".join((name, *extra))] = time.monotonic() - started
        assert result.returncode == 0, f"{name} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    def wheelhouse(self) -> None:
        """wheelhouse.yml, run in this machine's own namespace (which reaches the package index)."""
        started = time.monotonic()
        result = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), str(ANSIBLE_DIR / "wheelhouse.yml"),
             "-e", f"sampan_wheelhouse_dir={self.wheelhouse_dir}"],
            capture_output=True, text=True, timeout=300, env=self.env, stdin=subprocess.DEVNULL)
        self.timings["wheelhouse.yml"] = time.monotonic() - started
        assert result.returncode == 0, f"wheelhouse.yml failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"

    def sampan(self, *args: str, timeout: float = 30.0) -> str:
        result = self.lab.controller_command([str(VENV_BIN / "sampan"), "--config", str(self.admin_config), *args],
                                             timeout=timeout, env=self.env)
        assert result.returncode == 0, f"sampan {' '.join(args)}: {result.stderr}"
        return result.stdout


def _recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP's counters per host."""
    recap = {}
    for line in output.split("PLAY RECAP", 1)[1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if match:
            recap[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap


def _eventually(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except AssertionError as err:
            result, last = None, err
        else:
            last = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout:.0f}s ({last})")
        time.sleep(1)


def _ready_nodes(controller: Controller) -> set[str]:
    nodes = json.loads(controller.sampan("get", "nodes", "-o", "json"))["items"]
    return {node["metadata"]["name"] for node in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))}


def _running_web_pods(controller: Controller) -> dict[str, str]:
    pods = json.loads(controller.sampan("get", "pods", "-l", "app=web", "-o", "json"))["items"]
    return {pod["metadata"]["name"]: pod["spec"].get("nodeName", "") for pod in pods
            if pod.get("status", {}).get("phase") == "Running"}


def _fetch(host: SshHost, url: str) -> str:
    result = host.run("timeout", "5", "busybox", "wget", "-q", "-O", "-", url, timeout=10)
    return result.stdout.strip() if result.returncode == 0 else ""


def _leftovers(lab: SshHostLab, host: SshHost) -> list[str]:
    """What of Sampan's is still on host."""
    found = []
    result = lab.ssh(host, "for p in " + " ".join(SAMPAN_PATHS) + "; do [ -e $p ] && echo $p; done; true")
    found += result.stdout.split()
    for pid in lab.pids(host):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm != "sshd":
            found.append(f"process {pid} ({comm})")
    if host.run("ip", "link", "show", "sampan0").returncode == 0:
        found.append("bridge sampan0")
    routes = host.run("ip", "-4", "route", "show", "proto", "83").stdout.strip()
    if routes:
        found.append(f"routes {routes}")
    ruleset = host.run("nft", "list", "tables").stdout
    if "sampan" in ruleset:
        found.append(f"nftables {ruleset.strip()}")
    return found


def test_site_deploys_a_working_cluster_converges_and_reset_cleans_up(lab: SshHostLab, tmp_path: Path) -> None:
    controller = Controller(lab, tmp_path)
    agents = [host for host in lab.hosts if host.name.startswith("node")]

    # The hosts and the controller's namespace have no route out: the wheelhouse is built ahead, from here.
    controller.wheelhouse()
    first = controller.playbook("site.yml", label="site.yml (first)")
    assert all(counts["failed"] == 0 and counts["unreachable"] == 0 for counts in _recap(first).values())
    assert controller.admin_config.exists()

    assert _eventually(lambda: _ready_nodes(controller) >= {"node1", "node2"}, timeout=60, what="both agents Ready")

    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    controller.sampan("apply", "-f", str(manifest))
    pods = _eventually(lambda: (p := _running_web_pods(controller)) and len(p) == 4 and p, timeout=120,
                       what="4 web pods Running")
    assert set(pods.values()) == {"node1", "node2"}, f"the replicas did not spread over both agents: {pods}"

    service = json.loads(controller.sampan("get", "service", "web", "-o", "json"))
    cluster_ip = service["spec"]["clusterIP"]
    for host in agents:
        answers = _eventually(lambda: _fetch(host, f"http://{cluster_ip}/"), timeout=60,
                              what=f"the ClusterIP {cluster_ip} answering on {host.name}")
        assert answers in pods, f"{host.name} got {answers!r} from {cluster_ip}, not a web pod's name"

    second = controller.playbook("site.yml", label="site.yml (second)")
    changed = {host: counts["changed"] for host, counts in _recap(second).items()}
    assert set(changed.values()) == {0}, f"a second run changed something: {changed}\n{second[-4000:]}"

    check = controller.playbook("site.yml", "--check", "--diff")
    changed = {host: counts["changed"] for host, counts in _recap(check).items()}
    assert set(changed.values()) == {0}, f"--check on a converged cluster would change something: {changed}"

    controller.playbook("reset.yml")
    leftovers = {host.name: _leftovers(lab, host) for host in lab.hosts}
    assert leftovers == {host.name: [] for host in lab.hosts}

    timings = ", ".join(f"{name}: {seconds:.1f}s" for name, seconds in controller.timings.items())
    print(f"\nansible timings: {timings}")
