"""Finding the real components the integration tests need.

A test that needs a component (etcd, containerd, nftables, ...) calls
``require_binary``. On a developer's machine a missing component skips the
test with a message naming the Debian package; under ``CI=true`` it fails
instead, so CI can never pass by silently skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, message: str) -> None:
    """Go on if condition holds; else skip the test, or fail it under CI=true."""
    if condition:
        return
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)  # reached only outside CI: in_ci() failed the test above


def require_binary(name: str, *, package: str) -> str:
    """Return the path of executable ``name`` or skip (fail under CI=true)."""
    path = shutil.which(name)
    require(path is not None, f"{name} not found: install the Debian package {package!r} (scripts/test.sh does)")
    return path
