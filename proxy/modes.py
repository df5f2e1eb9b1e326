"""The proxy's one seam: a ``ProxyMode`` makes a ``ProxyState`` true on this node.

The core (proxy/service.py) watches the API, computes the whole desired
state and hands it to one mode; the modes are siblings behind this contract
and know nothing of the API:

- ``nftables`` (proxy/nftables.py): one nftables table, one atomic
  transaction per sync;
- ``ipvs`` (proxy/ipvs.py): IPVS virtual servers through netlink;
- ``userspace`` (proxy/userspace.py): asyncio forwarders, no root needed.

``MODES`` maps each name to the module that implements it. A mode module
defines ``create_mode(options: ModeOptions) -> ProxyMode`` and may define
``remove_leftovers(options: ModeOptions) -> None``, which removes whatever an
earlier run of that mode left in the kernel (called, best effort, for every
other mode when one is chosen, so switching modes leaves no stale rules).
Modules are imported only when needed, so a mode that cannot run here costs
nothing.

``choose_mode`` is where the mode is decided, once, with the reason logged:
``auto`` takes ipvs when we are root, the ipvs module is present and the
kernel has IPVS (the module's own netlink probe, which loads ip_vs on
demand), else nftables when we are root and ``nft`` works, else userspace.
The table ``ip sampan`` belongs to the nftables mode.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import subprocess
from dataclasses import dataclass
from typing import Protocol

from proxy.state import ProxyState

log = logging.getLogger(__name__)

AUTO = "auto"
IPVS = "ipvs"
NFTABLES = "nftables"
USERSPACE = "userspace"

# name -> the module that implements it (create_mode, optionally remove_leftovers)
MODES: dict[str, str] = {
    IPVS: "proxy.ipvs",
    NFTABLES: "proxy.nftables",
    USERSPACE: "proxy.userspace",
}
CHOICES = (AUTO, *MODES)
IPVS_PROC_FILE = "/proc/net/ip_vs"  # present once the kernel has loaded IPVS
MASQUERADE_MARK = 0x4000  # the packet mark bit asking postrouting to masquerade (kube-proxy's bit 14)


@dataclass(frozen=True)
class ModeOptions:
    """What every mode may need to know, beyond the state it is handed."""

    node_name: str
    # The nft command: a test may run it inside a network namespace (ip netns exec NS nft).
    nft: tuple[str, ...] = ("nft",)
    masquerade_mark: int = MASQUERADE_MARK
    # Traffic to a ClusterIP from outside this range is masqueraded ('' = never, only
    # NodePort and hairpin traffic), as kube-proxy's --cluster-cidr.
    cluster_cidr: str = ""
    ipvs_scheduler: str = ""  # the ipvs mode's scheduler ('' = its default, rr)


class ProxyMode(Protocol):
    """One way of programming services on this node.

    Called by the core only, from one task: never two calls at once.
    """

    name: str

    async def sync(self, state: ProxyState, *, full: bool) -> None:
        """Make the node serve exactly ``state``: add what is missing, change
        what differs, remove what the state no longer holds. Idempotent.

        ``full`` is set on the first sync, after a failed one and on the
        periodic resync: then the mode must not trust its memory of what it
        applied, and must also remove anything of its own it finds that the
        state does not hold (stale rules from an earlier run, or changed
        behind its back). Without ``full`` it may apply only the difference
        from the previous state.

        Raises on failure; the core counts the error and retries with
        ``full`` set. Never touches anything the mode does not own.
        """
        ...

    async def cleanup(self) -> None:
        """Remove everything the mode owns. (``sampan proxy --cleanup``,
        without a running mode, calls each module's ``remove_leftovers``.)"""
        ...

    async def close(self) -> None:
        """Stop without removing kernel rules (traffic keeps flowing while
        the proxy restarts); a userspace mode stops its listeners."""
        ...


@dataclass(frozen=True)
class HostFacts:
    """What decides ``auto``: gathered once by ``gather_facts``."""

    root: bool
    ipvs_error: str  # '' when the kernel has IPVS
    ipvs_module: bool
    nft_error: str  # '' when nft works


def nft_error(nft: tuple[str, ...]) -> str:
    """'' when ``nft`` runs and may read the ruleset here, else why not."""
    try:
        result = subprocess.run([*nft, "list", "tables"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as err:
        return f"cannot run {nft[-1]}: {err}"
    if result.returncode != 0:
        return f"{' '.join(nft)} list tables failed: {(result.stderr or result.stdout).strip()}"
    return ""


def module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def ipvs_error() -> str:
    """'' when the kernel has IPVS, else why not.

    The ipvs mode's own probe (``ipvs_unavailable_reason``, a netlink
    question that also loads the ip_vs module on demand) when it is
    installed; else whether the kernel shows IPVS in /proc.
    """
    if module_present(MODES[IPVS]):
        probe = getattr(importlib.import_module(MODES[IPVS]), "ipvs_unavailable_reason", None)
        if probe is not None:
            return probe()
    return "" if os.path.exists(IPVS_PROC_FILE) else f"the kernel has no IPVS (no {IPVS_PROC_FILE})"


def gather_facts(options: ModeOptions) -> HostFacts:
    root = os.geteuid() == 0
    return HostFacts(root=root, ipvs_error=ipvs_error() if root else "not root",
                     ipvs_module=module_present(MODES[IPVS]), nft_error=nft_error(options.nft) if root else "not root")


@dataclass(frozen=True)
class ModeChoice:
    name: str
    reason: str


class ModeUnavailable(Exception):
    """The requested mode cannot run on this machine."""


def ipvs_unusable(facts: HostFacts) -> str:
    """'' when the ipvs mode can run, else why not."""
    if not facts.root:
        return "not root"
    if not facts.ipvs_module:
        return "the ipvs mode is not installed"
    return facts.ipvs_error


def choose_mode(requested: str, facts: HostFacts) -> ModeChoice:
    """The mode to run, and why. ``auto``: ipvs, else nftables, else userspace."""
    if requested not in CHOICES:
        raise ModeUnavailable(f"--mode: unknown mode {requested!r} (one of {', '.join(CHOICES)})")
    ipvs_missing = ipvs_unusable(facts)
    if requested == IPVS:
        if ipvs_missing:
            raise ModeUnavailable(f"--mode ipvs: {ipvs_missing}")
        return ModeChoice(IPVS, "requested")
    if requested == NFTABLES:
        if facts.nft_error:
            raise ModeUnavailable(f"--mode nftables: {facts.nft_error}")
        return ModeChoice(NFTABLES, "requested")
    if requested == USERSPACE:
        return ModeChoice(USERSPACE, "requested")
    if not facts.root:
        return ModeChoice(USERSPACE, "not root: the ipvs and nftables modes need root")
    if not ipvs_missing:
        return ModeChoice(IPVS, "the kernel has IPVS")
    if not facts.nft_error:
        return ModeChoice(NFTABLES, f"{ipvs_missing}; nft works and we are root")
    return ModeChoice(USERSPACE, f"{ipvs_missing}; nftables unusable: {facts.nft_error}")


def create_mode(name: str, options: ModeOptions) -> ProxyMode:
    """The named mode, from its module's ``create_mode``."""
    module = importlib.import_module(MODES[name])
    return module.create_mode(options)


def remove_leftovers(chosen: str, options: ModeOptions) -> None:
    """Best effort: every other installed mode removes what an earlier run of it left."""
    for name, module_name in MODES.items():
        if name == chosen or not module_present(module_name):
            continue
        try:
            remove = getattr(importlib.import_module(module_name), "remove_leftovers", None)
            if remove is not None:
                remove(options)
        except Exception as err:  # another mode's leftovers must not stop this one
            log.warning("removing what an earlier %s proxy left failed: %s", name, err)
