"""Machines reachable over real SSH, made of namespaces on this one: for the Ansible tests.

``SshHostLab`` builds on ``NetnsLab``'s LAN (a bridge in its own network
namespace). The LAN namespace holds the controller's address too (``.254``),
so Ansible and the CLI run there (``lab.controller_command(...)``), and the
root namespace's interfaces and routes are never touched.

Each host is a network namespace on the LAN, and inside it a process that
``unshare --mount --uts`` gave its own mounts and hostname:

- an overlay over /etc, /var/lib and /var/log (upper dirs per host, so what
  one host writes there the others never see), a per-host directory over
  /opt, a tmpfs over /run;
- the cgroup hierarchies mounted again as this machine has them (``ip netns
  exec`` gives the namespace a fresh /sys without them, and runc needs them);
- a default route through the controller's address (as real machines have
  one; the controller forwards nothing);
- one sshd on the host's address, with its own host key, key-only root
  login and ``UsePAM no``, which is that process (``sshd -D``), its pid in a
  pidfile.

Shared with this machine: /usr, /root, /tmp and the process table. So the
end of a lab kills the processes of each host's network namespace (found by
``ip netns pids``, never by name), which takes the mount namespaces with
them, and removes the directories. Needs root, iproute2, util-linux and
openssh-server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.netns_hosts import NetnsLab

SSHD = "/usr/sbin/sshd"
OVERLAID = ("etc", "var/lib", "var/log")
STARTUP_TIMEOUT = 15.0

_SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {root}/ssh_host_ed25519_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {lab}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
Subsystem sftp internal-sftp
"""

# Runs inside the host's new mount and UTS namespaces, then becomes its sshd.
_HOST_INIT = """\
set -e
mount --make-rprivate /
{cgroups}
for dir in {overlaid}; do
  name=$(echo "$dir" | tr / _)
  mkdir -p "{root}/upper/$name" "{root}/work/$name"
  mount -t overlay overlay -o "lowerdir=/$dir,upperdir={root}/upper/$name,workdir={root}/work/$name" "/$dir"
done
mkdir -p "{root}/opt"
mount --bind "{root}/opt" /opt
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/sshd
hostname "{name}"
echo "{name}" > /etc/hostname
exec {sshd} -D -e -f "{root}/sshd_config"
"""


def _cgroup_mounts() -> str:
    """Shell lines mounting /sys/fs/cgroup as this machine has it (cgroup v1 hierarchies, v2, or both)."""
    lines = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            mountpoint = fields[4]
            if mountpoint != "/sys/fs/cgroup" and not mountpoint.startswith("/sys/fs/cgroup/"):
                continue
            fstype, options = fields[fields.index("-") + 1], fields[-1]
            if fstype == "tmpfs":
                lines.append(f"mount -t tmpfs -o mode=755 tmpfs {mountpoint}")
            elif fstype == "cgroup":
                wanted = ",".join(o for o in options.split(",") if o not in ("rw", "ro"))
                lines.append(f"mkdir -p {mountpoint}; mount -t cgroup -o {wanted} cgroup {mountpoint}")
            elif fstype == "cgroup2":
                lines.append(f"mkdir -p {mountpoint}; mount -t cgroup2 cgroup2 {mountpoint}")
    return "\n".join(lines)


@dataclass(frozen=True)
class SshHost:
    name: str
    address: str
    netns: str
    root: Path

    def run(self, *command: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command in this host's network namespace (not its mounts: use ssh for those)."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *command], capture_output=True, text=True,
                              timeout=timeout)


class SshHostLab:
    """Hosts on one LAN, each with its own sshd; ``close`` removes them all."""

    def __init__(self, *, lan_cidr: str = "10.250.0.0/24") -> None:
        self.net = NetnsLab(lan_cidr)
        self.workdir = Path(tempfile.mkdtemp(prefix="sampan-ssh-hosts-"))
        os.chmod(self.workdir, 0o755)
        prefix = lan_cidr.rsplit(".", 1)[0]
        self.controller_address = f"{prefix}.254"
        self._prefix = prefix
        self.net.lan.ip("addr", "add", f"{self.controller_address}/{self.net.lan_prefix}", "dev", "lan")
        self.key = self.workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sampan-lab", "-f", str(self.key)],
                       check=True, timeout=30)
        (self.workdir / "authorized_keys").write_text((self.workdir / "id_ed25519.pub").read_text())
        self.hosts: list[SshHost] = []
        self._holders: list[subprocess.Popen[bytes]] = []

    def host(self, name: str) -> SshHost:
        """A new host named name, with the next address on the LAN, its sshd answering."""
        address = f"{self._prefix}.{len(self.hosts) + 1}"
        self.net.host(name, address=address, pod_gateway=None)
        # A default route, as real machines have (through the controller, which routes nowhere):
        # a Service's cluster IP must be routable for the proxy's rules to take the packet.
        subprocess.run(["ip", "-n", f"{self.net.tag}-{name}", "route", "add", "default", "via", self.controller_address],
                       check=True, timeout=10)
        host = SshHost(name=name, address=address, netns=f"{self.net.tag}-{name}", root=self.workdir / name)
        host.root.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.root / "ssh_host_ed25519_key")],
                       check=True, timeout=30)
        (host.root / "sshd_config").write_text(_SSHD_CONFIG.format(address=address, root=host.root, lab=self.workdir))
        init = _HOST_INIT.format(overlaid=" ".join(OVERLAID), root=host.root, name=name, sshd=SSHD,
                                 cgroups=_cgroup_mounts())
        log = open(host.root / "host.log", "wb")
        with log:
            holder = subprocess.Popen(
                ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts", "--propagation", "private",
                 "sh", "-c", init],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self._holders.append(holder)
        self.hosts.append(host)
        self._wait_for_ssh(host, holder)
        return host

    def _wait_for_ssh(self, host: SshHost, holder: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if holder.poll() is not None:
                raise RuntimeError(f"host {host.name} exited ({holder.returncode}): "
                                   f"{(host.root / 'host.log').read_text(errors='replace')[-2000:]}")
            result = self.ssh(host, "true", timeout=10)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"ssh to {host.name} failed: {result.stderr.strip()}")
            time.sleep(0.2)

    def ssh_options(self) -> list[str]:
        return ["-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]

    def ssh(self, host: SshHost, command: str, *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a shell command on host over SSH (inside its mounts and namespaces)."""
        return self.controller_command(["ssh", *self.ssh_options(), f"root@{host.address}", command], timeout=timeout)

    def controller_command(self, command: list[str], *, timeout: float = 60.0,
                           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command as the controller: in the LAN's network namespace, where the hosts are reachable."""
        return subprocess.run(["ip", "netns", "exec", self.net.lan.name, *command], capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL)

    def pids(self, host: SshHost) -> list[int]:
        """Every process in host's network namespace (its sshd and whatever runs on the host)."""
        result = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True, timeout=10)
        return [int(pid) for pid in result.stdout.split()]

    def close(self) -> None:
        for host in self.hosts:
            for _ in range(50):
                pids = self.pids(host)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
        for holder in self._holders:
            try:
                holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.net.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
