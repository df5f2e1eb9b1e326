"""Jobs end to end, with every part real: the Job controller's pods are bound
by the scheduler to a node whose agent runs them.

The parts: an in-process control service (API, scheduler, the Job, CronJob
and garbage collection controllers; the Job back-off shortened to 0.2 s
doubling) and the whole node agent on the process runtime, so each pod's
``sh -c "exit N"`` runs on this host and the agent writes the pod's final
phase. Checked: a Job of ``exit 0`` pods with completions 3 and parallelism
2 completes, each pod Succeeded with exit code 0 and released from the
tracking finalizer; a Job of ``exit 1`` pods with backoffLimit 2 stops at
three failed pods with BackoffLimitExceeded; a CronJob triggered by hand
(``sampan create job --from=cronjob/...``) runs its Job to completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import pytest

from agent.runtime.process import ProcessRuntime
from agent.service import Agent, AgentConfig
from control.client import Client
from control.controllers.job_state import TRACKING_FINALIZER
from tests.controllers.batch_support import (
    NAMESPACE, condition, cronjob_manifest, eventually, job_condition, job_manifest, job_pods,
    start_batch_service,
)
from tests.support.runtime_pods import remove_everything

NODE = "node-jobs"


@pytest.fixture
async def cluster(tmp_path: Path):
    """A control service on the real clock, and an agent on the process runtime for NODE."""
    service = await start_batch_service(tmp_path, time.time, job_backoff_base=0.2, job_backoff_max=1.0)
    address = f"127.0.0.1:{service.port}"
    data_dir = tmp_path / "agent"
    agent = Agent(AgentConfig(server=address, node_name=NODE, data_dir=str(data_dir), runtime="process",
                              node_ip="127.0.0.1", metrics_listen="", listen="127.0.0.1:0",
                              backoff_initial=0.5, backoff_max=2.0))
    try:
        await agent.start()
        async with Client.connect(address) as api:
            yield api, address
    finally:
        with contextlib.suppress(Exception):
            await agent.stop()
        # Pods outlive their agent by design: stop every process the test started.
        await remove_everything(ProcessRuntime(str(data_dir / "process-runtime")))
        await service.stop()


def exit_code(pod) -> int:
    [status] = pod.status.container_statuses
    return status.state.terminated.exit_code


async def test_a_job_of_pods_exiting_0_completes(cluster):
    api, _ = cluster
    await api.create(job_manifest("ok", command="exit 0", completions=3, parallelism=2))
    job = await job_condition(api, "ok", "Complete", timeout=60)
    assert (job.status.succeeded, job.status.failed, job.status.active) == (3, 0, 0)
    pods = await job_pods(api, "ok")
    assert len(pods) == 3
    for pod in pods:
        assert pod.spec.node_name == NODE  # bound by the scheduler
        assert pod.status.phase == "Succeeded" and exit_code(pod) == 0
        assert TRACKING_FINALIZER not in pod.metadata.finalizers


async def test_a_job_of_pods_exiting_1_stops_at_its_backoff_limit(cluster):
    api, _ = cluster
    await api.create(job_manifest("bad", command="exit 1", backoffLimit=2))
    job = await job_condition(api, "bad", "Failed", timeout=60)
    assert condition(job, "Failed") == ("True", "BackoffLimitExceeded")
    assert (job.status.failed, job.status.succeeded, job.status.active) == (3, 0, 0)
    pods = await job_pods(api, "bad")
    assert len(pods) == 3
    assert all(p.status.phase == "Failed" and exit_code(p) == 1 for p in pods)


async def test_a_cronjob_triggered_by_hand_runs_its_job(cluster):
    api, address = cluster
    await api.create(cronjob_manifest("nightly", "0 3 * * *", job={"command": "exit 0"}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.cli.main", "--server", address, "create", "job", "by-hand",
        "--from=cronjob/nightly", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == "job.batch/by-hand created"
    job = await job_condition(api, "by-hand", "Complete", timeout=60)
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    [owner] = job.metadata.owner_references
    assert (owner.kind, owner.name) == ("CronJob", "nightly")
    assert (await api.get("CronJob", "nightly", namespace=NAMESPACE)).spec.schedule == "0 3 * * *"

    async def no_scheduled_run():
        jobs, _ = await api.list("Job", namespace=NAMESPACE)
        return [j.metadata.name for j in jobs] == ["by-hand"]

    assert await eventually(no_scheduled_run, what="only the manual job")
