"""Choosing the proxy mode (proxy/modes.py): auto's order and reasons, and refusing a mode that cannot run."""

from __future__ import annotations

import pytest

from proxy.modes import HostFacts, ModeUnavailable, choose_mode

NO_IPVS_ERROR = "the kernel has no IPVS (no /proc/net/ip_vs)"
IPVS_HOST = HostFacts(root=True, ipvs_error="", ipvs_module=True, nft_error="")
NO_IPVS = HostFacts(root=True, ipvs_error=NO_IPVS_ERROR, ipvs_module=True, nft_error="")
NOT_ROOT = HostFacts(root=False, ipvs_error="not root", ipvs_module=True, nft_error="not root")


def test_auto_takes_ipvs_when_the_kernel_has_it_and_the_mode_is_installed():
    assert choose_mode("auto", IPVS_HOST).name == "ipvs"


def test_auto_takes_nftables_without_ipvs_and_says_why():
    choice = choose_mode("auto", NO_IPVS)
    assert choice.name == "nftables"
    assert "no IPVS" in choice.reason and "nft works" in choice.reason


def test_auto_takes_nftables_when_the_ipvs_mode_is_not_installed():
    choice = choose_mode("auto", HostFacts(root=True, ipvs_error="", ipvs_module=False, nft_error=""))
    assert choice.name == "nftables"
    assert "ipvs mode is not installed" in choice.reason


def test_auto_falls_back_to_userspace_without_root_or_a_working_nft():
    assert choose_mode("auto", NOT_ROOT).name == "userspace"
    broken = HostFacts(root=True, ipvs_error=NO_IPVS_ERROR, ipvs_module=False,
                       nft_error="nft: command not found")
    choice = choose_mode("auto", broken)
    assert choice.name == "userspace"
    assert "nft: command not found" in choice.reason


def test_a_requested_mode_that_cannot_run_is_refused_with_the_reason():
    with pytest.raises(ModeUnavailable, match="--mode ipvs: the kernel has no IPVS"):
        choose_mode("ipvs", NO_IPVS)
    with pytest.raises(ModeUnavailable, match="--mode nftables: not root"):
        choose_mode("nftables", NOT_ROOT)
    with pytest.raises(ModeUnavailable, match="unknown mode 'iptables'"):
        choose_mode("iptables", NO_IPVS)


def test_userspace_can_always_be_requested():
    assert choose_mode("userspace", NOT_ROOT).name == "userspace"
