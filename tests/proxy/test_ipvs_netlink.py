"""IPVS's netlink messages as proxy/ipvs_netlink.py and proxy/ipvs_kernel.py pack them.

This machine's kernel has no IPVS, so the messages are checked against
pyroute2's own encoding of the same service and real server (pyroute2's
message classes, the reference the packing replaces for speed): each
attribute must carry the same bytes. Sending, acknowledgements and
listings are exercised on a real kernel in tests/proxy/test_ipvs.py.
"""

from __future__ import annotations

from pyroute2 import IPVSDest, IPVSService
from pyroute2.netlink.generic import ipvs as pyroute2_ipvs

from proxy import ipvs_netlink as nl
from proxy.ipvs_kernel import (
    PERSISTENT,
    RealServer,
    VirtualKey,
    VirtualServer,
    dest_attrs,
    service_attrs,
    service_key_attrs,
)

GENL_HEADERS = 16 + 4  # nlmsghdr + genlmsghdr
TUNNEL_ATTRIBUTES = {13, 14, 15}  # pyroute2 always sends these; zero means no tunnel, as when absent


def pyroute2_attrs(command: int, *attrs: tuple[str, object]) -> dict[int, dict[int, bytes]]:
    """pyroute2's encoding of a message, as {top-level attribute: {nested attribute: payload}}."""
    msg = pyroute2_ipvs.ipvsmsg()
    msg["cmd"], msg["version"] = command, 1
    msg["attrs"] = list(attrs)
    msg["header"]["type"] = 30
    msg.encode()
    top = nl.parse_attrs(bytes(msg.data), GENL_HEADERS)
    return {kind: nl.parse_attrs(payload) for kind, payload in top.items()}


def ours(payload: bytes) -> dict[int, dict[int, bytes]]:
    return {kind: nl.parse_attrs(inner) for kind, inner in nl.parse_attrs(payload).items()}


KEY = VirtualKey("TCP", "10.96.0.10", 80)


def test_a_full_service_carries_the_same_attributes_as_pyroute2s():
    server = VirtualServer(KEY, "wrr", 600)
    reference = IPVSService(addr=KEY.address, port=KEY.port, protocol=6, sched_name="wrr", timeout=600,
                            netmask="255.255.255.255", flags={"flags": PERSISTENT, "mask": PERSISTENT})
    expected = pyroute2_attrs(nl.CMD_NEW_SERVICE, ("IPVS_CMD_ATTR_SERVICE", reference.dump_nla()))
    assert ours(service_attrs(server)) == expected


def test_a_service_without_persistence_clears_the_persistent_flag_only():
    attrs = ours(service_attrs(VirtualServer(KEY, "rr", 0)))[nl.CMD_ATTR_SERVICE]
    assert attrs[nl.SVC_FLAGS] == (0).to_bytes(4, "little") + PERSISTENT.to_bytes(4, "little")  # flags, mask
    assert attrs[nl.SVC_SCHED_NAME] == b"rr\0"


def test_a_real_server_carries_the_same_attributes_as_pyroute2s():
    real = RealServer("10.244.0.5", 8080, weight=3)
    service = IPVSService(addr=KEY.address, port=KEY.port, protocol=6)
    dest = IPVSDest(addr=real.address, port=real.port, weight=3, fwd_method=0)
    reference = pyroute2_attrs(nl.CMD_NEW_DEST, ("IPVS_CMD_ATTR_SERVICE", service.dump_key()),
                               ("IPVS_CMD_ATTR_DEST", dest.dump_nla()))
    packed = ours(dest_attrs(KEY, real))
    assert packed[nl.CMD_ATTR_SERVICE] == reference[nl.CMD_ATTR_SERVICE]
    extra = {kind: value for kind, value in reference[nl.CMD_ATTR_DEST].items() if kind not in packed[nl.CMD_ATTR_DEST]}
    assert set(extra) <= TUNNEL_ATTRIBUTES and not any(any(value) for value in extra.values())
    assert packed[nl.CMD_ATTR_DEST] == {kind: value for kind, value in reference[nl.CMD_ATTR_DEST].items()
                                        if kind not in extra}


def test_attributes_are_padded_to_four_bytes_and_parse_back():
    packed = nl.attr(nl.SVC_SCHED_NAME, b"wrr\0x") + nl.attr(nl.SVC_PORT, nl.port(8080))
    assert len(packed) == 12 + 8
    parsed = nl.parse_attrs(packed)
    assert parsed == {nl.SVC_SCHED_NAME: b"wrr\0x", nl.SVC_PORT: b"\x1f\x90"}
    assert nl.read_port(parsed[nl.SVC_PORT]) == 8080


def test_a_nested_attribute_is_flagged_nested_and_parses_to_its_parts():
    packed = nl.nested(nl.CMD_ATTR_SERVICE, *service_key_attrs(KEY))
    assert int.from_bytes(packed[2:4], "little") & nl.NLA_F_NESTED
    inner = nl.parse_attrs(nl.parse_attrs(packed)[nl.CMD_ATTR_SERVICE])
    assert nl.read_address(inner[nl.SVC_ADDR]) == KEY.address
    assert nl.read_port(inner[nl.SVC_PORT]) == KEY.port
    assert nl.read_u16(inner[nl.SVC_PROTOCOL]) == 6


def test_a_refusal_names_what_was_refused():
    err = nl.NetlinkRefused([("adding real server 10.0.0.1:80 to TCP 10.96.0.1:80", 3)] * 7)
    assert str(err).startswith("adding real server 10.0.0.1:80 to TCP 10.96.0.1:80: No such process; ")
    assert str(err).endswith("(and 2 more)")
