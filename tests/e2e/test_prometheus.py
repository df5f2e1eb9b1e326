"""A real Prometheus monitors a running cluster through Sampan's service discovery.

``sampan up`` on the process runtime runs the control service, an agent and
a proxy (userspace mode) on this machine; a Deployment of two ``sleep``
pods and a pod that exits 0 give it pods in two phases. Then Debian's
``prometheus``, started by the test on a free port with its own storage
directory, loads the sample configuration (ansible/files/prometheus/) with
only the discovery URL and the intervals changed, and the sample alerting
rules. Checked: ``/api/v1/targets`` shows exactly the control, agent and
proxy targets, each up and labelled with its role and node; the rules
loaded; and a PromQL query over ``sampan_pod_status_phase`` finds the same
pods in the same phases as ``sampan get pods -A``, and the count of Running
pods the issue asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from agent.runtime.process import ProcessRuntime
from tests.e2e.test_up import SampanUp, processes_mentioning, ready_node, start_up
from tests.support.components import require_binary
from tests.support.control import free_port
from tests.support.runtime_pods import remove_everything

SAMPLES = Path(__file__).resolve().parents[2] / "ansible" / "files" / "prometheus"
WORKLOAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleepers, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: sleepers}}
  template:
    metadata: {labels: {app: sleepers}}
    spec:
      containers:
        - {name: sleep, image: busybox:1.36, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: default}
spec:
  restartPolicy: Never
  containers:
    - {name: once, image: busybox:1.36, command: [sh, -c, "exit 0"]}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[SampanUp, int]]:
    """``sampan up --runtime process`` with its control service's metrics on a known port."""
    control_metrics = free_port()
    data_dir = tmp_path / "data"
    up = start_up(data_dir, "--runtime", "process", "--control-metrics-listen", f"127.0.0.1:{control_metrics}")
    try:
        yield up, control_metrics
    finally:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()
        runtime_dir = data_dir / "agent" / "process-runtime"
        for pid, argv in processes_mentioning(str(data_dir)).items():
            if str(runtime_dir) not in argv:  # the runtime's shims stay until their containers are removed
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # Pods outlive their agent by design: stop the ones this test started.
        asyncio.run(remove_everything(ProcessRuntime(str(runtime_dir))))


@contextlib.contextmanager
def running_prometheus(binary: str, workdir: Path, *, sd_url: str) -> Iterator[str]:
    """Prometheus on the sample config, discovering through sd_url, scraping every second; its base URL."""
    config = yaml.safe_load((SAMPLES / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(SAMPLES / rule_file) for rule_file in config["rule_files"]]
    [job] = config["scrape_configs"]
    job["http_sd_configs"] = [{"url": sd_url, "refresh_interval": "1s"}]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address={address}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://{address}"
        wait_for(lambda: api_get(base, "/-/ready", raw=True), what="Prometheus ready",
                 log=lambda: log_path.read_text(errors="replace"), process=process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api_get(base: str, path: str, *, raw: bool = False, **query: str) -> Any:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=5) as answer:
        body = answer.read().decode()
    return body if raw else json.loads(body)["data"]


def wait_for(probe, *, what: str, log, process: subprocess.Popen | None = None, timeout: float = 60.0):
    """probe()'s first true value; fail with the log if it never comes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except OSError as err:  # not listening yet
            last = err
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} while waiting for {what}:\n{log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s; last: {last!r}\n{log()}")
        time.sleep(0.2)


def pods_by_api(up: SampanUp) -> dict[tuple[str, str], str]:
    listed = up.sampan("get", "pods", "-A", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {(item["metadata"]["namespace"], item["metadata"]["name"]): item["status"].get("phase", "")
            for item in json.loads(listed.stdout)["items"]}


def pods_by_prometheus(base: str) -> dict[tuple[str, str], str]:
    result = api_get(base, "/api/v1/query", query="sampan_pod_status_phase == 1")["result"]
    return {(series["metric"]["namespace"], series["metric"]["pod"]): series["metric"]["phase"] for series in result}


async def test_prometheus_discovers_every_component_and_sees_the_pods_the_api_lists(cluster, tmp_path):
    binary = require_binary("prometheus", package="prometheus")
    up, control_metrics = cluster
    node = (await ready_node(up, timeout=60)).metadata.name
    applied = up.sampan("apply", "-f", "-", stdin=WORKLOAD)
    assert applied.returncode == 0, applied.stderr
    settled = wait_for(lambda: (lambda pods: pods if sorted(pods.values()) == ["Running", "Running", "Succeeded"]
                                else None)(pods_by_api(up)),
                       what="two Running pods and one Succeeded", log=up.logs)

    with running_prometheus(binary, tmp_path / "prometheus", sd_url=f"http://127.0.0.1:{control_metrics}/sd") as base:
        def all_up() -> list[dict] | None:
            targets = api_get(base, "/api/v1/targets", state="active")["activeTargets"]
            return targets if len(targets) == 3 and all(t["health"] == "up" for t in targets) else None

        targets = wait_for(all_up, what="control, agent and proxy targets up",
                           log=lambda: json.dumps(api_get(base, "/api/v1/targets"), indent=1) + up.logs())
        assert sorted((t["labels"]["role"], t["labels"]["node"]) for t in targets) == [
            ("agent", node), ("control", socket.gethostname()), ("proxy", node)]
        assert {t["labels"]["job"] for t in targets} == {"sampan"}

        rules = api_get(base, "/api/v1/rules")["groups"]
        assert {rule["name"] for group in rules for rule in group["rules"]} >= {
            "SampanNodeNotReady", "SampanPodCrashLooping", "SampanDeploymentReplicasMismatch"}

        seen = wait_for(lambda: (lambda pods: pods if pods == settled else None)(pods_by_prometheus(base)),
                        what=f"Prometheus to see the pods {settled}",
                        log=lambda: f"Prometheus sees {pods_by_prometheus(base)}")
        assert seen == pods_by_api(up)
        [running] = api_get(base, "/api/v1/query", query='count(sampan_pod_status_phase{phase="Running"} == 1)')["result"]
        assert int(running["value"][1]) == sum(phase == "Running" for phase in seen.values()) == 2
        [ready] = api_get(base, "/api/v1/query",
                          query=f'sampan_node_status_condition{{node="{node}",condition="Ready",status="true"}}')["result"]
        assert ready["value"][1] == "1"
