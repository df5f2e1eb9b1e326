"""``sampan up``: a whole single-node cluster on this machine, in one command.

Starts, as child processes of this one: the control service on the embedded
SQLite store, then an agent for this machine (containerd when its socket
answers, else the process runtime; the agent logs which and why). Writes the
client config (``~/.sampan/config``, or $SAMPAN_CONFIG) so ``sampan get
nodes`` works at once in another shell. Ctrl-C or SIGTERM stops the children
in reverse order; pods started by the agent keep running in containerd and are
adopted by the next ``sampan up``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from control.client_config import write_config


def _wait_for_port(address: str, *, process: subprocess.Popen, timeout: float) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: the control service exited with code {process.returncode}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"error: the control service did not listen on {address} within {timeout:.0f}s")


def _stop(children: list[subprocess.Popen]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in reversed(children):
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    listen = args.listen
    sampan = [sys.executable, "-m", "control.cli.main"]
    logs = {name: open(data_dir / f"{name}.log", "ab") for name in ("control", "agent")}
    children: list[subprocess.Popen] = []
    stop_requested = False

    def request_stop(signum, frame):  # noqa: ARG001 (signal handler signature)
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        control = subprocess.Popen(
            [*sampan, "control", "--store", f"sqlite:///{data_dir}/state.db", "--listen", listen,
             "--metrics-listen", args.control_metrics_listen],
            stdout=logs["control"], stderr=subprocess.STDOUT, start_new_session=True)
        children.append(control)
        _wait_for_port(listen, process=control, timeout=30)
        config = write_config(listen)
        agent_args = [*sampan, "agent", "--server", listen, "--node-name", args.node_name or socket.gethostname(),
                      "--data-dir", str(data_dir / "agent"), "--runtime", args.runtime,
                      "--containerd-socket", args.containerd_socket, "--pod-cidr", args.pod_cidr,
                      "--metrics-listen", args.agent_metrics_listen]
        agent = subprocess.Popen(agent_args, stdout=logs["agent"], stderr=subprocess.STDOUT, start_new_session=True)
        children.append(agent)
        print(f"Sampan is up: control service at {listen}, this machine's agent running.")
        print(f"Client config written to {config}; logs in {data_dir}/{{control,agent}}.log.")
        print("Try: sampan get nodes    (Ctrl-C here stops the cluster; pods in containerd keep running)")
        sys.stdout.flush()
        while not stop_requested:
            for child, name in ((control, "control service"), (agent, "agent")):
                if child.poll() is not None:
                    print(f"error: the {name} exited with code {child.returncode}; see {data_dir}/"
                          f"{'control' if child is control else 'agent'}.log", file=sys.stderr)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop(children)
        for log in logs.values():
            log.close()
        print("Sampan stopped.")
