"""The sample Prometheus configuration and alerting rules
(ansible/files/prometheus/) pass Prometheus' own checks: ``promtool check
config``, ``promtool check rules``, and the rules' unit tests
(``promtool test rules``: each alert fires on the series it is about, after
its ``for``, and not on the healthy ones)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.components import require_binary

FILES = Path(__file__).resolve().parents[2] / "ansible" / "files" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool", package="prometheus")


@pytest.mark.parametrize("check", [
    ("check", "config", "prometheus.yml"),
    ("check", "rules", "sampan-alerts.yml"),
    ("test", "rules", "sampan-alerts.test.yml"),
], ids=lambda check: " ".join(check[:2]))
def test_promtool_accepts_the_sample_files(promtool, check):
    done = subprocess.run([promtool, *check], cwd=FILES, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
