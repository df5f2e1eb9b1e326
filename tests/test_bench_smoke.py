"""The benchmarks still run: ``python -m tests.bench --quick`` exits 0 and prints
its tables. No figure is checked; timings are never assertions (see
docs/benchmarks.md for the benchmarks themselves)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.report import BREAKDOWN_HEADER, FANOUT_HEADER, THROUGHPUT_HEADER

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.etcd
def test_quick_benchmarks_run_and_print_their_tables():
    # Its own process group, so a timeout also ends the etcd, control service
    # and watcher processes it started.
    bench = subprocess.Popen(
        [sys.executable, "-m", "tests.bench", "--quick"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = bench.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(bench.pid, signal.SIGKILL)
        stdout, stderr = bench.communicate()
        pytest.fail(f"python -m tests.bench --quick took over 120 s; stderr:\n{stderr[-4000:]}")
    assert bench.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr[-4000:]}"
    for header in (THROUGHPUT_HEADER, BREAKDOWN_HEADER, FANOUT_HEADER):
        assert header in stdout
