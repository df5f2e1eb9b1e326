"""The playbooks and roles pass ansible-lint's strictest profile (production),
and every playbook passes ansible-playbook's syntax check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.components import require

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
VENV_BIN = Path(sys.executable).parent
PLAYBOOKS = ("site.yml", "upgrade.yml", "reset.yml", "wheelhouse.yml")


def _tool(name: str) -> str:
    path = VENV_BIN / name
    require(path.exists(), f"{name} not found: install the [dev] extra (pip install -e '.[dev]')")
    return str(path)


def _env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), NO_COLOR="1",
                PATH=f"{VENV_BIN}:{os.environ['PATH']}")


def test_ansible_lint_passes_at_the_production_profile() -> None:
    result = subprocess.run([_tool("ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
                            cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=240, env=_env())
    assert result.returncode == 0, f"{result.stdout[-5000:]}\n{result.stderr[-3000:]}"
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_the_syntax_check_with_the_sample_inventory(playbook: str) -> None:
    result = subprocess.run([_tool("ansible-playbook"), "-i", "inventory/sample/hosts.yml", "--syntax-check", playbook],
                            cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=120, env=_env())
    assert result.returncode == 0, result.stderr
