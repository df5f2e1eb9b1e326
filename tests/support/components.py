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


def require_binary(name: str, *, package: str) -> str:
    """Return the path of executable ``name`` or skip (fail under CI=true)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: install the Debian package {package!r} (scripts/test.sh does)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path
