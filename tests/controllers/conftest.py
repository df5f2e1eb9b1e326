"""On a failed controller test, print the objects the controllers were working on.

A controller test fails by timing out on ``eventually``; the assertion alone
does not say which pod was stuck where. This prints every pod (owner, node,
phase, readiness, deletion) and the workloads' status after a failure.
"""

from __future__ import annotations

import asyncio

import pytest

from control.controllers.pods import is_ready, is_terminating

_WORKLOADS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _dump_state_on_failure(request):
    # Asked for here (not at teardown), the client is still open when this fixture ends.
    api = request.getfixturevalue("api") if "api" in request.fixturenames else None
    yield
    if api is not None and request.node.stash.get(_FAILED, False):
        asyncio.get_event_loop().run_until_complete(_dump(api))


async def _dump(api) -> None:
    lines = ["state after the failure:"]
    try:
        pods, _ = await api.list("Pod", namespace="default")
        for pod in sorted(pods, key=lambda p: p.metadata.name):
            owner = next((f"{r.kind}/{r.name}" for r in pod.metadata.owner_references if r.controller), "-")
            lines.append(
                f"  pod {pod.metadata.name} uid={pod.metadata.uid[:8]} rv={pod.metadata.resource_version} "
                f"owner={owner} node={pod.spec.node_name or '-'} phase={pod.status.phase or '-'} "
                f"ready={is_ready(pod)} terminating={is_terminating(pod)} "
                f"image={','.join(c.image for c in pod.spec.containers)}")
        for kind in _WORKLOADS:
            items, _ = await api.list(kind, namespace="default")
            for obj in items:
                lines.append(f"  {kind.lower()} {obj.metadata.name} rv={obj.metadata.resource_version} "
                             f"generation={obj.metadata.generation} status={_one_line(obj.status)}")
    except Exception as exc:  # the dump must not hide the failure
        lines.append(f"  (could not read the state: {exc!r})")
    print("\n".join(lines))


def _one_line(message) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(message, as_one_line=True)
