"""Real Kubernetes workload manifests through the API (tests/api/manifests/):
each Deployment, ReplicaSet, DaemonSet, StatefulSet, Job, CronJob and
HorizontalPodAutoscaler loads, is created over gRPC on a running control
service, and reads back with every field it was written with unchanged
(the API adds only its defaults, a Job its generated selector)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control.api import kinds
from control.api.manifest import kind_of, load_documents, to_dict, to_message
from control.client import Client

MANIFESTS = Path(__file__).parent.parent / "api" / "manifests"
WORKLOAD_KINDS = {"Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob", "HorizontalPodAutoscaler"}


def workload_documents() -> list[Any]:
    return [
        pytest.param(document, id=path.name)
        for path in sorted(MANIFESTS.iterdir())
        for document in load_documents(path.read_text())
        if document.get("kind") in WORKLOAD_KINDS
    ]


def missing(written: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``stored`` lacks or differs from what ``written`` says (lists item by item)."""
    if isinstance(written, dict) and isinstance(stored, dict):
        return [problem for key, value in written.items()
                for problem in (missing(value, stored[key], f"{path}.{key}") if key in stored else [f"{path}.{key}"])]
    if isinstance(written, list) and isinstance(stored, list) and len(written) == len(stored):
        return [problem for i, (a, b) in enumerate(zip(written, stored)) for problem in missing(a, b, f"{path}[{i}]")]
    return [] if written == stored else [f"{path}: {written!r} != {stored!r}"]


def test_every_workload_kind_has_a_real_manifest() -> None:
    assert {document.values[0]["kind"] for document in workload_documents()} == WORKLOAD_KINDS


@pytest.mark.parametrize("document", workload_documents())
async def test_a_real_workload_manifest_is_created_and_reads_back(api: Client, document: dict[str, Any]) -> None:
    kind = kind_of(document)
    created = await api.create(to_message(document))
    assert created.metadata.uid and created.metadata.generation == 1
    stored = await api.get(kind, created.metadata.name, namespace=created.metadata.namespace)
    assert missing(document, to_dict(stored)) == []
    assert stored.spec == created.spec


async def test_a_created_job_reads_back_with_its_generated_selector(api: Client) -> None:
    job = next(d.values[0] for d in workload_documents() if d.values[0]["kind"] == "Job")
    created = await api.create(to_message(job))
    stored = await api.get(kinds.by_kind("Job"), created.metadata.name, namespace="default")
    assert dict(stored.spec.selector.match_labels) == {"batch.kubernetes.io/controller-uid": created.metadata.uid}
    assert stored.spec.template.metadata.labels["job-name"] == created.metadata.name
