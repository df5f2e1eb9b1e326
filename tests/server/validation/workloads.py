"""Builders shared by the workload tests: minimal valid manifests of each
workload kind as dicts, to be changed one field at a time (``changed``)."""

from __future__ import annotations

import copy
from typing import Any

from control.server.strategy import generate_job_selector

UID = "6f0c2c1e-3b7d-4f53-9a43-0a8f6e2f1d11"


def a_template(*, labels: dict[str, str] | None = None, restart: str | None = None, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [{"name": "web", "image": "nginx:1.25"}], **spec}
    if restart is not None:
        pod_spec["restartPolicy"] = restart
    return {"metadata": {"labels": {"app": "web"} if labels is None else labels}, "spec": pod_spec}


def a_workload(kind: str, **spec: Any) -> dict[str, Any]:
    """A valid ReplicaSet, Deployment, DaemonSet or StatefulSet selecting app=web."""
    return {
        "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": a_template(), **spec},
    }


def a_job(**spec: Any) -> dict[str, Any]:
    """A valid Job as a client writes it: no selector, the API generates one."""
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"},
        "spec": {"template": a_template(labels={}, restart="Never"), **spec},
    }


def a_created_job(**spec: Any) -> dict[str, Any]:
    """A Job as the API creates it: with its uid, and the selector generated from it."""
    from control.api import kinds, manifest

    job = a_job(**spec)
    job["metadata"]["uid"] = UID
    message = manifest.from_dict(kinds.by_kind("Job"), job)
    generate_job_selector(message)
    return manifest.to_dict(message)


def a_cron_job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "default"},
        "spec": {"schedule": "*/5 * * * *",
                 "jobTemplate": {"spec": {"template": a_template(labels={}, restart="OnFailure")}}, **spec},
    }


def an_autoscaler(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "maxReplicas": 5, **spec},
    }


def changed(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of obj with the dotted path set to value (None deletes it)."""
    result = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target = result
    for part in parents:
        target = target.setdefault(part, {})
    if value is None:
        target.pop(last, None)
    else:
        target[last] = value
    return result
