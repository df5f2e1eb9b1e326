"""``sampan drain NODE``: cordon a node, evict its pods, and wait until they are gone.

As kubectl drain does: every named (or ``-l`` selected) node is cordoned
first; then, node by node, its pods are sorted out before anything is
deleted:

- mirror pods are skipped, and so are pods deleted longer ago than
  ``--skip-wait-for-delete-timeout`` (when given);
- DaemonSet-managed pods are refused ("cannot delete DaemonSet-managed Pods
  (use --ignore-daemonsets to ignore)") or, with the flag, left in place
  with a warning: their controller would put them back at once;
- pods with emptyDir volumes are refused without ``--delete-emptydir-data``
  (their data goes with them);
- pods no controller manages are refused without ``--force`` (nothing would
  recreate them).

A refusal leaves the node cordoned but undrained: kubectl's ``unable to
drain node ... continuing command...``, the list of pending nodes, and exit
code 1. Otherwise each pod is evicted ("evicting pod NS/NAME"; Sampan has no
Eviction API and no disruption budgets, so evicting is a graceful delete with
``--grace-period``) and the command waits until every one is gone ("pod/NAME
evicted"), up to ``--timeout``, then prints ``node/NAME drained``. Finished
pods are deleted whatever manages them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

from google.protobuf.message import Message

from control.api import errors
from control.api.timestamps import parse_time
from control.cli.commands.cordon import select_nodes, set_schedulable
from control.cli.connection import connect
from control.cli.durations import parse_duration
from control.cli.errors import report
from control.client import Client

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DAEMONSET_FATAL = "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_STORAGE_FATAL = "cannot delete Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "cannot delete Pods that declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"
POLL_SECONDS = 0.2


@dataclass
class DrainPlan:
    """What draining one node means: the pods to evict, and what was refused or warned about, by message."""

    evict: list[Message] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def refuse(self, message: str, pod: Message) -> None:
        self.errors.setdefault(message, []).append(pod_ref(pod))

    def warn(self, message: str, pod: Message) -> None:
        self.warnings.setdefault(message, []).append(pod_ref(pod))

    def error_lines(self) -> list[str]:
        return [f"{message}: {', '.join(pods)}" for message, pods in self.errors.items()]

    def warning_line(self) -> str:
        return "; ".join(f"{message}: {', '.join(pods)}" for message, pods in self.warnings.items())


def pod_ref(pod: Message) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def controller_of(pod: Message) -> Message | None:
    return next((ref for ref in pod.metadata.owner_references if ref.controller), None)


def finished(pod: Message) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def aggregate(messages: list[str]) -> str:
    """How Go's errors aggregate reads: one message alone, several in brackets."""
    return messages[0] if len(messages) == 1 else f"[{', '.join(messages)}]"


def go_duration(seconds: float) -> str:
    """A duration as Go prints one (2s, 1m30s, 1h0m0s)."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{secs:g}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h{int(minutes)}m{secs:g}s"


async def plan_drain(api: Client, node: str, args: argparse.Namespace, *, now: float) -> DrainPlan:
    """Sort the node's pods into evicted, skipped, warned and refused, as kubectl's filters do."""
    plan = DrainPlan()
    pods, _ = await api.list("Pod", field_selector=f"spec.nodeName={node}", label_selector=args.pod_selector)
    for pod in sorted(pods, key=pod_ref):
        meta = pod.metadata
        if (args.skip_wait_for_delete_timeout > 0 and meta.HasField("deletion_timestamp")
                and now - parse_time(meta.deletion_timestamp) > args.skip_wait_for_delete_timeout):
            continue
        if MIRROR_ANNOTATION in meta.annotations:
            continue
        if finished(pod):
            plan.evict.append(pod)
            continue
        controller = controller_of(pod)
        if controller is not None and controller.kind == "DaemonSet":
            try:
                await api.get("DaemonSet", controller.name, namespace=meta.namespace)
            except errors.NotFoundError as err:
                if not args.force:
                    plan.refuse(f"cannot delete {err.message}", pod)
                    continue
                plan.warn(err.message, pod)
            else:
                if not args.ignore_daemonsets:
                    plan.refuse(DAEMONSET_FATAL, pod)
                else:
                    plan.warn(DAEMONSET_WARNING, pod)
                continue
        if any(volume.HasField("empty_dir") for volume in pod.spec.volumes):
            if not args.delete_emptydir_data:
                plan.refuse(LOCAL_STORAGE_FATAL, pod)
                continue
            plan.warn(LOCAL_STORAGE_WARNING, pod)
        if controller is None:
            if not args.force:
                plan.refuse(UNMANAGED_FATAL, pod)
                continue
            plan.warn(UNMANAGED_WARNING, pod)
        plan.evict.append(pod)
    return plan


async def evict(api: Client, pods: list[Message], args: argparse.Namespace, *, deadline: float | None) -> list[str]:
    """Delete the pods and wait until they are gone; the errors (a timeout, a failed delete)."""
    grace = None if args.grace_period < 0 else args.grace_period
    waiting: list[Message] = []
    failures: list[str] = []
    for pod in pods:
        print(f"evicting pod {pod_ref(pod)}", flush=True)
        try:
            await api.delete("Pod", pod.metadata.name, namespace=pod.metadata.namespace, grace_period_seconds=grace)
        except errors.NotFoundError:
            pass
        except errors.APIError as err:
            failures.append(f'error when evicting pod "{pod.metadata.name}": {err.message}')
            continue
        waiting.append(pod)
    while waiting:
        still = []
        for pod in waiting:
            if await _gone(api, pod, skip_after=args.skip_wait_for_delete_timeout):
                print(f"pod/{pod.metadata.name} evicted", flush=True)
            else:
                still.append(pod)
        waiting = still
        if waiting and deadline is not None and time.monotonic() >= deadline:
            timeout = go_duration(parse_duration(args.timeout))
            failures += [f'error when waiting for pod "{pod.metadata.name}" terminating: '
                         f"global timeout reached: {timeout}" for pod in waiting]
            break
        if waiting:
            await asyncio.sleep(POLL_SECONDS)
    return failures


async def _gone(api: Client, pod: Message, *, skip_after: int) -> bool:
    try:
        current = await api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
    except errors.NotFoundError:
        return True
    if current.metadata.uid != pod.metadata.uid:
        return True
    deleted = current.metadata.deletion_timestamp
    if skip_after > 0 and deleted and time.time() - parse_time(deleted) > skip_after:
        print(f'pod "{pod.metadata.name}" has DeletionTimestamp older than {skip_after} seconds, skipping', flush=True)
        return True
    return False


async def run(args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout)
    deadline = time.monotonic() + timeout if timeout else None
    pending: list[str] = []
    fatal: list[str] = []
    async with connect(args) as api:
        nodes, failures = await select_nodes(api, args)
        for node in nodes:
            print(await set_schedulable(api, node, schedulable=False), flush=True)
        for node in nodes:
            name = node.metadata.name
            plan = await plan_drain(api, name, args, now=time.time())
            problems = plan.error_lines()
            if not problems:
                if plan.warnings:
                    report(f"Warning: {plan.warning_line()}")
                problems = await evict(api, plan.evict, args, deadline=deadline)
            if problems:
                report(f'error: unable to drain node "{name}" due to error: {aggregate(problems)}, '
                       "continuing command...")
                pending.append(name)
                fatal += problems
                continue
            print(f"node/{name} drained", flush=True)
    if pending:
        report("There are pending nodes to be drained:\n" + "".join(f" {name}\n" for name in pending).rstrip("\n"))
    for line in failures + [f"error: {problem}" for problem in fatal]:
        report(line)
    return 1 if failures or fatal else 0
