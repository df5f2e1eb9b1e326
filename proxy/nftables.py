"""The nftables proxy mode: Services as rules in the table ``ip sampan``.

Each sync applies ONE ``nft -f -`` transaction (proxy/nft_ruleset.py), which
the kernel applies atomically: either every change of the sync is in place
or none is.

- A full sync (the first one, the periodic resync, and any after a
  failure) lists the names the kernel's table holds now and rewrites the
  table from them: whatever an earlier run left, or someone added to the
  table by hand, is removed. If the kernel refuses that transaction (the
  table was changed in a way it cannot reconcile), the table is deleted and
  defined anew in one transaction.
- Otherwise only the Service ports that changed since the last sync are
  built and sent (proxy/nft_services.py): one Service's change costs that
  Service's lines, however many Services there are; a sync that changes
  nothing runs no ``nft`` at all.

Only the table ``ip sampan`` is read or written: tables of other programs
(firewalls, the CNI's masquerading, containerd's) are never touched.

Bridged pod traffic must pass the IP hooks for a pod to reach a Service
whose backend sits on the same bridge (the backend's reply is bridged, not
routed); the mode warns at start when ``net.bridge.bridge-nf-call-iptables``
is 0, as kube-proxy does, and leaves the setting to the administrator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from pathlib import Path

from proxy.modes import ModeOptions
from proxy.nft_ruleset import (
    TABLE,
    TABLE_REF,
    Ruleset,
    TableObjects,
    full_transaction,
    recreate_transaction,
)
from proxy.nft_services import AppliedServices
from proxy.state import ProxyState

log = logging.getLogger(__name__)

NAME = "nftables"
BRIDGE_NF_SYSCTL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
NFT_TIMEOUT = 60.0


class NftError(Exception):
    """nft refused a command; the message is nft's own."""


class NftablesMode:
    """A ProxyMode (proxy/modes.py) writing the table ``ip sampan``."""

    name = NAME

    def __init__(self, options: ModeOptions) -> None:
        self._options = options
        self._nft = options.nft
        self._applied: AppliedServices | None = None  # what the kernel holds, as far as we know
        self.last_transaction = ""  # the last script sent to nft, for logs and tests

    async def sync(self, state: ProxyState, *, full: bool) -> None:
        applied, self._applied = self._applied, None  # until this sync succeeds, nothing is known
        if full or applied is None or applied.node_name != state.node_name:
            applied = AppliedServices(node_name=state.node_name, cluster_cidr=self._options.cluster_cidr)
            applied.update(state, transaction=False)
            await self._apply_full(applied.ruleset(mark=self._options.masquerade_mark))
        else:
            script = applied.update(state)
            if script:
                await self._run(script)
        self._applied = applied

    async def _apply_full(self, ruleset: Ruleset) -> None:
        existing = await self._existing_objects()
        try:
            await self._run(full_transaction(ruleset, existing))
        except NftError as err:
            log.warning("nftables: could not reconcile table %s (%s); defining it anew", TABLE_REF, err)
            await self._run(recreate_transaction(ruleset))

    async def cleanup(self) -> None:
        await self._run(f"add table {TABLE_REF}\ndelete table {TABLE_REF}\n")
        self._applied = None

    async def close(self) -> None:
        """Nothing to stop: the rules stay and keep serving while no proxy runs."""
        log.info("nftables: table %s stays in place", TABLE_REF)

    async def _existing_objects(self) -> TableObjects:
        """The chain, set and map names the table holds now (none when it does not exist)."""
        names: dict[str, set[str]] = {"chain": set(), "set": set(), "map": set()}
        for what in ("chains", "sets", "maps"):
            try:
                output = await self._nft_command("-j", "-t", "list", what, "ip")
            except NftError as err:
                raise NftError(f"listing {what}: {err}") from None
            for item in json.loads(output or "{}").get("nftables", []):
                for kind, body in item.items():
                    if kind in names and body.get("table") == TABLE:
                        names[kind].add(body["name"])
        return TableObjects(chains=frozenset(names["chain"]), sets=frozenset(names["set"]),
                            maps=frozenset(names["map"]))

    async def _run(self, script: str) -> None:
        self.last_transaction = script
        await self._nft_command("-f", "-", stdin=script)

    async def _nft_command(self, *args: str, stdin: str | None = None) -> str:
        process = await asyncio.create_subprocess_exec(
            *self._nft, *args, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(stdin.encode() if stdin is not None else None), NFT_TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise NftError(f"{' '.join(self._nft)} {' '.join(args)}: no answer in {NFT_TIMEOUT:.0f}s") from None
        if process.returncode != 0:
            raise NftError(_first_lines(stderr.decode(errors="replace")) or f"exit code {process.returncode}")
        return stdout.decode()


def _first_lines(text: str, count: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[:count])


def warn_if_bridged_traffic_bypasses(sysctl: Path = BRIDGE_NF_SYSCTL) -> None:
    try:
        value = sysctl.read_text().strip()
    except OSError:
        return  # no bridge netfilter here (no br_netfilter module): nothing bridged to worry about
    if value == "0":
        log.warning("%s is 0: a pod reaching a Service whose backend is on the same bridge will get no answer; "
                    "set net.bridge.bridge-nf-call-iptables=1", sysctl)


def create_mode(options: ModeOptions) -> NftablesMode:
    warn_if_bridged_traffic_bypasses()
    return NftablesMode(options)


def remove_leftovers(options: ModeOptions) -> None:
    """Delete the table an earlier nftables-mode proxy left (another mode runs now)."""
    listed = subprocess.run([*options.nft, "list", "table", TABLE_REF], capture_output=True, text=True, timeout=30)
    if listed.returncode != 0:
        return  # no such table (or no nft, or not root): nothing of ours to remove
    subprocess.run([*options.nft, "delete", "table", TABLE_REF], capture_output=True, text=True, timeout=30,
                   check=True)
    log.info("removed table %s left by an earlier nftables-mode proxy", TABLE_REF)
