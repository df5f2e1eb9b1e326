"""``sampan get -w`` and ``delete``'s wait, run as real processes: the watch
prints the table, then one row per ADDED, MODIFIED and DELETED event, and
ends cleanly (exit 0, no traceback) on Ctrl-C; a delete of a pod its node must
stop waits until the pod is gone."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from control.client import Client
from tests.cli import sampan

LINE_TIMEOUT = 10.0


class CommandProcess:
    """``sampan ...`` in a subprocess, its stdout read line by line with a timeout."""

    def __init__(self, server, *argv: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "control.cli.main", *argv, "--server", server.address],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next_line(self, timeout: float = LINE_TIMEOUT) -> str:
        line = self._lines.get(timeout=timeout)
        assert line is not None, f"exited {self.process.wait()}: {self.process.stderr.read()}"
        return line

    def interrupt(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=LINE_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        return code, self.process.stderr.read()


def configmap_manifest(tmp_path, keys: int) -> str:
    path = tmp_path / "cm.yaml"
    data = ", ".join(f"k{i}: v" for i in range(keys))
    path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: watched}}\ndata: {{{data}}}\n")
    return str(path)


def test_watch_streams_a_row_per_event_until_interrupted(capsys, control_server, tmp_path):
    sampan(capsys, control_server, "create", "configmap", "first", "--from-literal=a=1")
    watch = CommandProcess(control_server, "get", "configmaps", "-w")
    try:
        assert watch.next_line().split() == ["NAME", "DATA", "AGE"]
        assert watch.next_line().split()[:2] == ["first", "1"]
        sampan(capsys, control_server, "apply", "-f", configmap_manifest(tmp_path, keys=1))
        assert watch.next_line().split()[:2] == ["watched", "1"]      # ADDED
        sampan(capsys, control_server, "apply", "-f", configmap_manifest(tmp_path, keys=3))
        assert watch.next_line().split()[:2] == ["watched", "3"]      # MODIFIED
        sampan(capsys, control_server, "delete", "configmap", "watched")
        assert watch.next_line().split()[:2] == ["watched", "3"]      # DELETED
    finally:
        code, stderr = watch.interrupt()
    assert code == 0
    assert "Traceback" not in stderr and stderr == ""


def test_watch_yaml_prints_each_object_as_a_document(capsys, control_server):
    watch = CommandProcess(control_server, "get", "configmap", "-w", "-o", "yaml")
    try:
        time.sleep(0.5)  # let the watch start from the empty list
        sampan(capsys, control_server, "create", "configmap", "doc", "--from-literal=a=1")
        lines = [watch.next_line() for _ in range(3)]
        assert lines[:2] == ["apiVersion: v1", "kind: ConfigMap"]
        while (line := watch.next_line()) != "---":
            lines.append(line)
        assert "  name: doc" in lines
    finally:
        assert watch.interrupt()[0] == 0


def force_delete(server, name: str) -> None:
    async def delete() -> None:
        async with Client.connect(server.address) as api:
            await api.delete("Pod", name, namespace="default", grace_period_seconds=0, force=True)

    asyncio.run(delete())


def test_delete_waits_until_a_bound_pod_is_gone(capsys, control_server, tmp_path):
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"
        "spec:\n  nodeName: node-1\n  containers: [{name: web, image: nginx}]\n")
    sampan(capsys, control_server, "apply", "-f", str(tmp_path / "pod.yaml"))
    delete = CommandProcess(control_server, "delete", "pod", "web")
    assert delete.next_line() == 'pod "web" deleted'
    time.sleep(0.3)
    assert delete.process.poll() is None, "returned before the pod was gone"
    force_delete(control_server, "web")
    assert delete.process.wait(timeout=LINE_TIMEOUT) == 0


def test_delete_without_waiting_leaves_the_pod_terminating(capsys, control_server, tmp_path):
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"
        "spec:\n  nodeName: node-1\n  containers: [{name: web, image: nginx}]\n")
    sampan(capsys, control_server, "apply", "-f", str(tmp_path / "pod.yaml"))
    assert sampan(capsys, control_server, "delete", "pod", "web", "--wait=false").out == 'pod "web" deleted\n'
    assert sampan(capsys, control_server, "get", "pod", "web").lines[1].split()[2] == "Terminating"
