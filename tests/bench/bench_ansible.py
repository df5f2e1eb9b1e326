"""Deploy time of the Ansible playbooks on three hosts, against a baseline.

``python -m tests.bench.bench_ansible``: three SSH hosts on this machine
(tests/support/ssh_hosts.py: one etcd + control host, two agents), then, in
one run and back to back:

1. baseline: a trivial playbook, one ``ping`` per host (what Ansible itself
   costs over these SSH connections);
2. ``site.yml`` on fresh hosts (first run: install from the wheelhouse, etcd
   certificates, every service started, both agents joined);
3. ``site.yml`` again (a converged cluster: every check, no change);
4. ``reset.yml``.

Each is reported in seconds of wall time, as a ratio to the baseline, and with
the CPU the whole machine was busy meanwhile (in cores). The wheelhouse is
built beforehand (``wheelhouse.yml``, not timed as part of a run).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.ansible.test_deploy import ANSIBLE_DIR, Controller, _recap
from tests.bench.measure import machine_busy_seconds
from tests.support.ssh_hosts import SshHostLab

PING_PLAYBOOK = """\
- name: Baseline, one ping per host
  hosts: sampan_cluster
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def _timed(controller: Controller, playbook: str, label: str) -> tuple[float, float, dict]:
    busy = machine_busy_seconds()
    started = time.monotonic()
    output = controller.playbook(playbook, label=label)
    wall = time.monotonic() - started
    return wall, (machine_busy_seconds() - busy) / wall, _recap(output)


def main() -> int:
    lab = SshHostLab()
    rows = []
    try:
        for name in ("control1", "node1", "node2"):
            lab.host(name)
        with tempfile.TemporaryDirectory(prefix="sampan-bench-ansible-") as scratch:
            directory = Path(scratch)
            controller = Controller(lab, directory)
            controller.wheelhouse()
            ping = directory / "ping.yml"
            ping.write_text(PING_PLAYBOOK)
            baseline, cores, _ = _timed(controller, str(ping), "ping")
            rows.append(("baseline: one ping per host", baseline, cores, "-"))
            for label, playbook in (("site.yml, first run", "site.yml"), ("site.yml, second run", "site.yml"),
                                    ("reset.yml", "reset.yml")):
                wall, cores, recap = _timed(controller, str(ANSIBLE_DIR / playbook), label)
                changed = sum(counts["changed"] for counts in recap.values())
                rows.append((label, wall, cores, str(changed)))
    finally:
        lab.close()
    print("## Ansible: deploying three hosts (one etcd + control, two agents)\n")
    print("| run | wall s | run/baseline | machine CPU (cores) | tasks changed |")
    print("| --- | --- | --- | --- | --- |")
    for label, wall, cores, changed in rows:
        print(f"| {label} | {wall:.1f} | {wall / baseline:.1f} | {cores:.2f} | {changed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
