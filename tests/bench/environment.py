"""What a benchmark runs against: stores, the control service process, profiling.

- SQLite files go in a fresh temporary directory on the ordinary filesystem
  (as ``/var/lib/sampan`` would be); every run, raw or through the API, gets
  its own file.
- etcd is a private single member from ``tests.support.etcd`` (data on
  /dev/shm), one per benchmark; raw baselines write under their own prefix
  beside the API server's ``/registry``.
- The control service is ``tests.support.control.ControlServer``: a
  subprocess, so the benchmark's client never shares its event loop.
- With a profile directory, py-spy samples the control service for its whole
  life and writes collapsed stacks (``--format raw``) when it exits; see
  ``tests.bench.hotspots`` to read them. It samples only the thread holding
  the GIL (``--gil``: the service is one event loop, so that is where its
  time goes) and includes native frames (``--native``: gRPC's Cython and C
  core, syscalls). Profiling slows the service, so figures from a profiled
  run are for finding hotspots, not for quoting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from tests.support.control import ControlServer
from tests.support.etcd import EtcdCluster

ETCD_FALLBACK = "/usr/bin/etcd"
PROFILE_RATE = 250  # samples per second


def find_etcd() -> str | None:
    found = shutil.which("etcd")
    if found is None and os.access(ETCD_FALLBACK, os.X_OK):
        found = ETCD_FALLBACK
    return found


def etcd_pid(cluster: EtcdCluster) -> int:
    (process,) = cluster.processes.values()
    return process.pid


@contextlib.contextmanager
def scratch_dir(label: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"sampan-bench-{label}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sqlite_url(directory: Path, name: str) -> str:
    return f"sqlite:///{directory / name}.db"


@contextlib.contextmanager
def control_service(
    workdir: Path, *, store_url: str, profile_to: Path | None = None
) -> Iterator[ControlServer]:
    """A running control service on store_url, killed at exit; sampled by py-spy
    into ``profile_to`` (collapsed stacks) when given."""
    server = ControlServer(workdir, store_url=store_url).start()
    profiler = None
    try:
        if profile_to is not None:
            profile_to.parent.mkdir(parents=True, exist_ok=True)
            profiler = subprocess.Popen(
                ["py-spy", "record", "--pid", str(server.process.pid), "--format", "raw", "--gil", "--native",
                 "--rate", str(PROFILE_RATE), "--output", str(profile_to)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        yield server
    except BaseException:
        print(f"control service log ({server.log_path}):\n{server.log()[-4000:]}", file=sys.stderr)
        raise
    finally:
        server.stop()
        if profiler is not None:
            try:
                _, err = profiler.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                profiler.kill()
                _, err = profiler.communicate()
            if profiler.returncode not in (0, None) and not profile_to.exists():
                print(f"py-spy failed: {err.decode(errors='replace')[-2000:]}", file=sys.stderr)
