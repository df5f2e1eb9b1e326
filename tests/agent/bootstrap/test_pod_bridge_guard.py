"""``sampan up`` refuses a pod bridge whose interfaces belong to another instance's pods.

The bridge and the allocations are plain directories here (as sysfs and
host-local lay them out); the guard reads nothing else.
"""

from __future__ import annotations

from pathlib import Path

from agent.bootstrap.containerd import ContainerdLayout, PodNetwork, foreign_pod_interfaces

NETWORK = PodNetwork(subnet="10.244.0.0/24", bridge="sampan0")


def _bridge(sys_class_net: Path, *ports: str) -> None:
    brif = sys_class_net / "sampan0" / "brif"
    brif.mkdir(parents=True)
    for port in ports:
        (brif / port).mkdir()


def _allocated(layout: ContainerdLayout, *addresses: str) -> None:
    allocations = layout.ipam_dir / "sampan0"
    allocations.mkdir(parents=True)
    (allocations / "lock").write_text("")
    (allocations / "last_reserved_ip.0").write_text("10.244.0.3")
    for address in addresses:
        (allocations / address).write_text("container-id\neth0")


def test_interfaces_on_the_bridge_of_a_fresh_instance_are_foreign(tmp_path):
    layout = ContainerdLayout(tmp_path / "new")
    _bridge(tmp_path / "net", "veth1a2b", "veth3c4d")
    assert foreign_pod_interfaces(layout, NETWORK, sys_class_net=tmp_path / "net") == ["veth1a2b", "veth3c4d"]


def test_bookkeeping_files_alone_are_not_allocations(tmp_path):
    layout = ContainerdLayout(tmp_path / "new")
    _bridge(tmp_path / "net", "veth1a2b")
    _allocated(layout)
    assert foreign_pod_interfaces(layout, NETWORK, sys_class_net=tmp_path / "net") == ["veth1a2b"]


def test_an_instance_with_its_own_allocations_adopts_its_pods(tmp_path):
    layout = ContainerdLayout(tmp_path / "same")
    _bridge(tmp_path / "net", "veth1a2b")
    _allocated(layout, "10.244.0.2")
    assert foreign_pod_interfaces(layout, NETWORK, sys_class_net=tmp_path / "net") == []


def test_no_bridge_or_an_empty_one_is_fine(tmp_path):
    layout = ContainerdLayout(tmp_path / "new")
    assert foreign_pod_interfaces(layout, NETWORK, sys_class_net=tmp_path / "net") == []
    _bridge(tmp_path / "net")
    assert foreign_pod_interfaces(layout, NETWORK, sys_class_net=tmp_path / "net") == []
