"""Fixtures for the agent's tests.

- ``containerd``: one private containerd for the session
  (tests/support/containerd.py), serving the CRI with the test images
  (busybox as ``busybox:1.36``, the pause image) already imported. Tests share
  it, so each removes the sandboxes it runs. It needs root and Debian's
  ``containerd``, ``runc``, ``containernetworking-plugins`` and
  ``busybox-static``; without them the tests skip (and fail under CI=true).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.components import require, require_binary
from tests.support.containerd import CNI_BIN_DIR, Containerd, running_containerd


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    binary = require_binary("containerd", package="containerd")
    ctr_binary = require_binary("ctr", package="containerd")
    runc_binary = require_binary("runc", package="runc")
    require_binary("busybox", package="busybox-static")
    require(Path(CNI_BIN_DIR, "bridge").exists(), f"no CNI plugins in {CNI_BIN_DIR}: install the Debian "
             "package 'containernetworking-plugins'")
    require(os.geteuid() == 0, "containerd tests need root (network namespaces, mounts, cgroups)")
    with running_containerd(binary=binary, ctr_binary=ctr_binary, runc_binary=runc_binary) as daemon:
        yield daemon
