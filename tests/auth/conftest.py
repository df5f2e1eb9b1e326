"""The fixture the security tests share: a control service serving mutual TLS."""

from __future__ import annotations

import pytest

from tests.support.secure_control import secure_service


@pytest.fixture
async def secure(tmp_path):
    async with secure_service(tmp_path) as svc:
        yield svc
