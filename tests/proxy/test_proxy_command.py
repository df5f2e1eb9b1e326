"""``sampan proxy`` as a command: bad flags and an impossible mode are refused in one line; ``--cleanup``.

``--cleanup`` runs inside a node namespace (tests/proxy/netns.py): it removes
Sampan's table there and leaves another program's table alone.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.proxy.netns import NodeNamespace
from tests.support.components import require_binary

SAMPAN = [sys.executable, "-m", "control.cli.main"]


def sampan(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *SAMPAN, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.parametrize("flags, message", [
    (("--sync-period", "0"), "error: --sync-period: must be more than 0 seconds, got 0"),
    (("--min-sync-period", "-1"), "error: --min-sync-period: must be 0 or more seconds, got -1"),
    (("--cluster-cidr", "pods"), "error: --cluster-cidr: must be an IPv4 CIDR such as 10.244.0.0/16"),
])
def test_bad_flags_are_refused_in_one_line_naming_the_flag(flags, message):
    result = sampan("proxy", "--server", "127.0.0.1:1", *flags)
    assert result.returncode == 1
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result.stderr


def test_nftables_mode_without_root_is_refused_with_the_reason():
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        prefix = (require_binary("setpriv", package="util-linux"), "--reuid=65534", "--regid=65534",
                  "--clear-groups", "--")
    result = sampan("proxy", "--server", "127.0.0.1:1", "--mode", "nftables", prefix=prefix)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --mode nftables: not root", result.stderr


def test_cleanup_removes_sampans_table_and_no_other(node: NodeNamespace):
    node.nft("-f", "-", stdin="table ip sampan {\n  chain services { ip daddr 10.96.0.10 drop; }\n}\n"
                              "table ip firewall {\n  chain input { type filter hook input priority 0; }\n}\n")
    result = sampan("proxy", "--cleanup", prefix=tuple(node.command()))
    assert result.returncode == 0, result.stderr
    tables = node.nft("list", "tables").split("\n")
    assert "table ip firewall" in tables and "table ip sampan" not in tables
