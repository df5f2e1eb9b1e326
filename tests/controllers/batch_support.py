"""What the Job, CronJob and TTL controller tests share: a control service on a clock they move, manifests, pod moves.

- ``MovableClock``: the controllers' wall clock (``ControlConfig.controller_clock``);
  a test sets or advances it to reach a schedule, a deadline or an expiry.
- ``start_batch_service(tmp_path, clock, **controller_options)``: an in-process
  control service (scheduler and every controller) whose controllers read
  that clock, with ``clock_recheck_max`` shortened so a moved clock is seen
  within a fraction of a second, and no back-off between failed pods unless
  a test asks for one.
- ``job_manifest``/``cronjob_manifest``: Jobs and CronJobs as users write them.
- ``finish``: no agent runs pods in these tests, so the test stands in for
  the kubelet and writes a pod's final phase (or a container restart) through
  ``update_status``, as an agent would. Pods stay unbound (there are no
  nodes), so deleting one removes it at once unless a finalizer holds it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Callable

from control.api import errors
from control.api.manifest import to_message
from control.client import Client
from control.controllers.job_state import TRACKING_FINALIZER
from control.service import ControlConfig, ControlService
from protos.api.v1 import batch_pb2, core_pb2

NAMESPACE = "default"


class MovableClock:
    """A wall clock (epoch seconds) that stands still until a test moves it.

    It starts at the real time, so it agrees with the creationTimestamp the
    API server writes (a CronJob's schedule counts from its creation).
    """

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


async def start_batch_service(tmp_path, clock: MovableClock, **controller_options: Any) -> ControlService:
    options = {"clock_recheck_max": 0.05, "job_backoff_base": 0.0, **controller_options}
    service = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="", shutdown_grace=0.5,
        controller_clock=clock, controller_options=options))
    await service.start()
    return service


def job_spec(*, command: str = "exit 0", restart_policy: str = "Never", **spec: Any) -> dict[str, Any]:
    return {"template": {"spec": {"restartPolicy": restart_policy, "containers": [
        {"name": "work", "image": "busybox:1.36", "command": ["sh", "-c", command]}]}}, **spec}


def job_manifest(name: str, **spec: Any) -> batch_pb2.Job:
    """A Job of busybox pods running ``sh -c command`` (default ``exit 0``)."""
    return to_message({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": name, "namespace": NAMESPACE}, "spec": job_spec(**spec)})


def cronjob_manifest(name: str, schedule: str, *, job: dict[str, Any] | None = None,
                     **spec: Any) -> batch_pb2.CronJob:
    return to_message({"apiVersion": "batch/v1", "kind": "CronJob",
                       "metadata": {"name": name, "namespace": NAMESPACE},
                       "spec": {"schedule": schedule, "jobTemplate": {"spec": job_spec(**(job or {}))}, **spec}})


async def eventually(check: Callable, *, timeout: float = 15.0, what: str = "the condition"):
    """Poll check() (async) until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
        except (AssertionError, errors.NotFoundError) as err:
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(0.05)


async def get_job(api: Client, name: str) -> batch_pb2.Job:
    return await api.get("Job", name, namespace=NAMESPACE)


async def job_pods(api: Client, job: str) -> list[core_pb2.Pod]:
    """Every pod the Job owns (by its name label), oldest first."""
    pods, _ = await api.list("Pod", namespace=NAMESPACE)
    owned = [p for p in pods if any(r.kind == "Job" and r.name == job for r in p.metadata.owner_references)]
    return sorted(owned, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))


def running(pods: list[core_pb2.Pod]) -> list[core_pb2.Pod]:
    return [p for p in pods if p.status.phase not in ("Succeeded", "Failed")
            and not p.metadata.HasField("deletion_timestamp")]


def condition(job: batch_pb2.Job, type_: str) -> tuple[str, str] | None:
    """(status, reason) of the Job's condition of this type, or None."""
    for found in job.status.conditions:
        if found.type == type_:
            return found.status, found.reason
    return None


async def job_condition(api: Client, name: str, type_: str, *, timeout: float = 15.0) -> batch_pb2.Job:
    """Wait until the Job has condition type_ True; the Job then."""
    async def has_it():
        job = await get_job(api, name)
        return job if condition(job, type_) and condition(job, type_)[0] == "True" else None

    return await eventually(has_it, timeout=timeout, what=f"job {name} condition {type_}")


async def finish(api: Client, pod: core_pb2.Pod, phase: str, *, exit_code: int | None = None) -> None:
    """Write a pod's final phase as its kubelet would (exit code 0 for Succeeded, 1 for Failed)."""
    current = await api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
    current.status.phase = phase
    del current.status.container_statuses[:]
    code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
    current.status.container_statuses.add(name="work", image="busybox:1.36").state.terminated.exit_code = code
    await api.update_status(current)


async def restart_container(api: Client, pod: core_pb2.Pod, restarts: int) -> None:
    """Write the status of a running pod whose container has restarted ``restarts`` times."""
    current = await api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
    current.status.phase = "Running"
    del current.status.container_statuses[:]
    status = current.status.container_statuses.add(name="work", image="busybox:1.36", restart_count=restarts)
    status.state.running.started_at = current.metadata.creation_timestamp
    await api.update_status(current)


def tracked(pod: core_pb2.Pod) -> bool:
    return TRACKING_FINALIZER in pod.metadata.finalizers


def next_minute(after: float) -> float:
    """The first whole minute strictly after a moment (epoch seconds)."""
    return (int(after) // 60 + 1) * 60.0


async def owned_jobs(api: Client, cronjob: str) -> list[batch_pb2.Job]:
    """The Jobs a CronJob controls, by name (which sorts them by scheduled time)."""
    jobs, _ = await api.list("Job", namespace=NAMESPACE)
    return sorted((j for j in jobs if any(r.kind == "CronJob" and r.name == cronjob
                                          for r in j.metadata.owner_references)), key=lambda j: j.metadata.name)


async def events_about(api: Client, name: str, reason: str) -> list[core_pb2.Event]:
    events, _ = await api.list("Event", namespace=NAMESPACE)
    return [e for e in events if e.involved_object.name == name and e.reason == reason]


async def finish_job_pods(api: Client, job: str, phase: str) -> None:
    """Finish every running pod of a Job (waiting for at least one to exist)."""
    async def some_running():
        return running(await job_pods(api, job))

    for pod in await eventually(some_running, what=f"a running pod of job {job}"):
        await finish(api, pod, phase)
