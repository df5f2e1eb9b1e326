"""The controller manager: every controller of the control plane, run together.

kube-controller-manager in one function. ``CONTROLLERS`` names each
controller and the function that starts it; ``run_controllers`` gives them
one ``ControllerContext`` (the API client, the shared informers, the clock
and the tunables), starts the informers they asked for, waits until those
have synced, then runs every controller until cancelled.

A controller is a function ``async def run(ctx)``: it takes the informers it
needs from ``ctx.informers`` before its first ``await`` (so they start with
the others), registers handlers that queue keys, and runs workers over its
WorkQueue (control/controllers/queue.py) that reconcile one key at a time,
level-triggered: each pass reads the cached state and moves the world one
step towards the desired state.

Only the leader runs this (control/leaderelection.py); every replica serves
the API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from control.client import Client
from control.controllers.informers import Informers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerOptions:
    """The controllers' tunables (defaults are Kubernetes')."""

    # Node lifecycle: no heartbeat for this long makes a node's Ready Unknown.
    node_monitor_grace_period: float = 50.0
    # How often node health is checked (Kubernetes: 5 s).
    node_monitor_period: float = 5.0
    # Evictions per second while most nodes are healthy, and while many are not.
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    # Above this fraction of unhealthy nodes (in a cluster of more than
    # large_cluster_size_threshold nodes) evictions slow down; when every
    # node is unhealthy they stop.
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50
    # Pod garbage collection: how often it looks, how long a pod's node must be
    # missing before the pod is force-deleted, and how many terminated pods are kept.
    pod_gc_period: float = 20.0
    pod_gc_orphan_quarantine: float = 40.0
    terminated_pod_gc_threshold: int = 12500
    # Horizontal pod autoscaler: how often it looks, and how far back scale-down decisions reach.
    hpa_sync_period: float = 15.0
    hpa_downscale_stabilization: float = 300.0
    # Jobs: the delay before replacing a failed pod, doubling per failure up to the maximum.
    job_backoff_base: float = 10.0
    job_backoff_max: float = 360.0
    # Longest a Job, CronJob or TTL controller waits for a time on ctx.clock
    # (a schedule, a deadline, an expiry) before looking again: a guard
    # against clock jumps, and how tests that move the clock get a quick look.
    clock_recheck_max: float = 300.0
    # Events are deleted this long after they last happened (Kubernetes: 1 h).
    event_ttl: float = 3600.0
    # Workers per controller.
    workers: int = 2
    # Endpoints per EndpointSlice (Kubernetes' --max-endpoints-per-slice).
    max_endpoints_per_slice: int = 100


@dataclass
class ControllerContext:
    api: Client
    informers: Informers
    options: ControllerOptions = field(default_factory=ControllerOptions)
    # Wall-clock seconds; tests replace it to drive CronJobs and deadlines.
    clock: Callable[[], float] = time.time


Controller = Callable[[ControllerContext], Awaitable[None]]


def _controllers() -> dict[str, Controller]:
    """Every controller, by name (imported here so each module stays independent)."""
    from control.controllers.bootstrap_tokens import run_bootstrap_token_cleaner
    from control.controllers.cronjob import run_cronjob_controller
    from control.controllers.csr_approving import run_csr_approving_controller
    from control.controllers.daemonset import run_daemonset_controller
    from control.controllers.deployment import run_deployment_controller
    from control.controllers.endpoints import run_endpoints_controller
    from control.controllers.events import expire_events
    from control.controllers.garbage_collector import run_garbage_collector
    from control.controllers.horizontal import run_horizontal_controller
    from control.controllers.job import run_job_controller
    from control.controllers.namespace import run_namespace_controller
    from control.controllers.node_lifecycle import run_node_lifecycle_controller
    from control.controllers.pod_gc import run_pod_gc
    from control.controllers.replicaset import run_replicaset_controller
    from control.controllers.serviceaccounts import run_serviceaccounts_controller
    from control.controllers.statefulset import run_statefulset_controller
    from control.controllers.taint_eviction import run_taint_eviction_controller
    from control.controllers.ttl_after_finished import run_ttl_after_finished_controller

    return {
        "namespace": lambda ctx: run_namespace_controller(ctx.api),
        "event-ttl": lambda ctx: expire_events(ctx.api, ttl=ctx.options.event_ttl),
        "replicaset": run_replicaset_controller,
        "deployment": run_deployment_controller,
        "garbage-collector": run_garbage_collector,
        "node-lifecycle": run_node_lifecycle_controller,
        "taint-eviction": run_taint_eviction_controller,
        "pod-gc": run_pod_gc,
        "daemonset": run_daemonset_controller,
        "statefulset": run_statefulset_controller,
        "job": run_job_controller,
        "cronjob": run_cronjob_controller,
        "ttl-after-finished": run_ttl_after_finished_controller,
        "horizontal-pod-autoscaler": run_horizontal_controller,
        "endpoints": run_endpoints_controller,
        "serviceaccount": run_serviceaccounts_controller,
        "csr-approving": run_csr_approving_controller,
        "bootstrap-token-cleaner": run_bootstrap_token_cleaner,
    }


async def run_controllers(ctx: ControllerContext, *, enabled: Callable[[str], bool] = lambda name: True) -> None:
    """Run every enabled controller over shared informers until cancelled."""
    tasks = []
    for name, start in _controllers().items():
        if enabled(name):
            tasks.append(asyncio.ensure_future(_supervised(name, start, ctx)))
    await asyncio.sleep(0)  # let every controller ask for its informers
    ctx.informers.start()
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.informers.stop()


async def _supervised(name: str, start: Controller, ctx: ControllerContext) -> None:
    """Run one controller; if it fails, log it and start it again (one broken controller stops no other)."""
    while True:
        try:
            await start(ctx)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("controller %s failed; restarting it in 1 s", name)
            await asyncio.sleep(1.0)
