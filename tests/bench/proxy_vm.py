"""The IPVS part of the proxy benchmark, run as root inside the test VM (tests/support/qemu_vm.py).

``python -m tests.bench.proxy_vm REPORT ENDPOINTS CHANGES SIZE...`` times,
for each size, the IPVS mode's syncs through ``time_syncs``
(tests/bench/proxy_cluster.py) on the VM's real kernel (IPVS over netlink,
the ClusterIPs on sampan-ipvs0, the table ``ip sampan-ipvs``), removes
everything before the next size, and times the VM's baseline: ``nft -f`` of
a trivial ruleset, as the host's baseline is timed. It writes its figures
as JSON to REPORT. It imports no pytest (seconds under emulation).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict

from proxy.ipvs import IPVSMode
from proxy.modes import ModeOptions
from tests.bench.proxy_cluster import NODE_NAME, time_syncs

TRIVIAL_RULESET = "add table ip sampan-bench\ndelete table ip sampan-bench\n"


def nft_baseline(nft: tuple[str, ...], runs: int) -> list[float]:
    """Seconds for each of ``runs`` ``nft -f -`` runs of a trivial ruleset."""
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*nft, "-f", "-"], input=TRIVIAL_RULESET, text=True, check=True, capture_output=True)
        found.append(time.perf_counter() - started)
    return found


async def time_ipvs(services: int, *, endpoints: int, changes: int) -> dict:
    mode = IPVSMode(ModeOptions(node_name=NODE_NAME))

    async def sync(state, full: bool) -> None:
        await mode.sync(state, full=full)

    try:
        times = await time_syncs(sync, services=services, endpoints=endpoints, changes=changes)
    finally:
        await mode.cleanup()
        await mode.close()
    return asdict(times)


def main(argv: list[str]) -> int:
    report, endpoints, changes, *sizes = argv
    figures = {"baseline": nft_baseline(("nft",), int(changes)), "sizes": {}}
    for size in map(int, sizes):
        print(f"ipvs: {size} services", file=sys.stderr, flush=True)
        figures["sizes"][str(size)] = asyncio.run(time_ipvs(size, endpoints=int(endpoints), changes=int(changes)))
    with open(report, "w") as out:
        json.dump(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
