"""``sampan rollout``, ``sampan scale`` and ``sampan set image`` against a running control service.

Covers kubectl's output and errors for: rollout status (done, following a
rollout, --watch=false, --timeout, a progress deadline exceeded), history
with CHANGE-CAUSE and --revision, undo (to the previous revision, to a
given one, already current, impossible ones, paused), pause, resume and
restart; scale with its --current-replicas precondition; set image by
container name, ``*``, on a pod, with a container the object lacks. The
status messages are also checked one by one against Deployment statuses.

The CLI runs as a process (the ``sampan`` fixture) against the in-process
service, whose controllers do the rollouts. No agent runs the pods: the
stand-in kubelet of tests/controllers/stand_in_kubelet.py (a fake) marks
bound pods Running and Ready.
"""

from __future__ import annotations

import pytest

from control.api.deployments import REVISION_ANNOTATION
from control.cli.errors import CommandError
from control.cli.rollouts.deployment import deployment_status
from protos.api.v1 import apps_pb2
from tests.controllers.stand_in_kubelet import StandInKubelet, add_ready_node, eventually
from tests.controllers.test_deployment import deployment, get_deployment, replicasets, rolled_out
from tests.controllers.test_replicaset import replicaset

CHANGE_CAUSE = "kubernetes.io/change-cause"


async def rolled_out_at(api, revision: int):
    d = await rolled_out(api)
    return d and d.metadata.annotations.get(REVISION_ANNOTATION) == str(revision) and d


async def annotate_cause(api, cause: str) -> None:
    await api.patch("Deployment", "web", {"metadata": {"annotations": {CHANGE_CAUSE: cause}}}, namespace="default")


@pytest.fixture
async def kubelet(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api) as kubelet:
        yield kubelet


async def two_revisions(api, sampan) -> None:
    """web at revision 1 (busybox:1.36, cause "create"), then busybox:1.37 (cause "upgrade") as revision 2."""
    d = deployment(replicas=2)
    d.metadata.annotations[CHANGE_CAUSE] = "create"
    await api.create(d)
    await eventually(lambda: rolled_out_at(api, 1))
    assert await sampan("set", "image", "deployment/web", "main=busybox:1.37") == (
        0, "deployment.apps/web image updated\n", "")
    # As Kubernetes' docs do it: the cause is recorded after the change, and
    # the controller copies it to the ReplicaSet of the new revision.
    await annotate_cause(api, "upgrade")
    await eventually(lambda: rolled_out_at(api, 2))


async def test_history_lists_each_revision_with_its_change_cause(api, sampan, kubelet):
    await two_revisions(api, sampan)

    code, out, err = await sampan("rollout", "history", "deployment/web")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["deployment.apps/web", "REVISION  CHANGE-CAUSE", "1         create",
                                "2         upgrade", ""]

    code, out, _ = await sampan("rollout", "history", "deployment", "web", "--revision", "1")
    assert code == 0
    assert out.startswith("deployment.apps/web with revision #1\nPod Template:\n")
    assert "  Labels:" in out and "pod-template-hash=" in out
    assert [line.split() for line in out.splitlines() if "Image:" in line] == [["Image:", "busybox:1.36"]]

    assert await sampan("rollout", "history", "deployment/web", "--revision", "7") == (
        1, "", "error: unable to find the specified revision 7\n")


async def test_undo_restores_the_previous_template_as_a_new_revision(api, sampan, kubelet):
    await two_revisions(api, sampan)

    assert await sampan("rollout", "undo", "deployment/web") == (0, "deployment.apps/web rolled back\n", "")

    d = await eventually(lambda: rolled_out_at(api, 3))
    assert d.spec.template.spec.containers[0].image == "busybox:1.36"
    assert "pod-template-hash" not in d.spec.template.metadata.labels
    assert d.metadata.annotations[CHANGE_CAUSE] == "create"
    # Revision 1's ReplicaSet is reused: it is revision 3 now.
    assert [(rs.metadata.annotations[REVISION_ANNOTATION], rs.spec.replicas) for rs in await replicasets(api)] == [
        ("2", 0), ("3", 2)]
    code, out, _ = await sampan("rollout", "history", "deploy/web")
    assert out.splitlines()[1:4] == ["REVISION  CHANGE-CAUSE", "2         upgrade", "3         create"]

    assert await sampan("rollout", "undo", "deployment/web", "--to-revision", "3") == (
        0, "deployment.apps/web skipped rollback (current template already matches revision 3)\n", "")
    assert await sampan("rollout", "undo", "deployment/web", "--to-revision", "1") == (
        1, "", "error: unable to find specified revision 1 in history\n")
    assert await sampan("rollout", "undo", "deployment/web", "--to-revision", "2") == (
        0, "deployment.apps/web rolled back\n", "")
    d = await eventually(lambda: rolled_out_at(api, 4))
    assert d.spec.template.spec.containers[0].image == "busybox:1.37"


async def test_undo_without_history_or_while_paused_is_refused(api, sampan, kubelet):
    await api.create(deployment(replicas=1))
    await eventually(lambda: rolled_out_at(api, 1))
    assert await sampan("rollout", "undo", "deployment/web") == (
        1, "", 'error: no rollout history found for deployment "web"\n')
    assert await sampan("set", "image", "deployment/web", "main=busybox:1.37") == (
        0, "deployment.apps/web image updated\n", "")
    await eventually(lambda: rolled_out_at(api, 2))
    assert (await sampan("rollout", "pause", "deployment/web"))[1] == "deployment.apps/web paused\n"

    assert await sampan("rollout", "undo", "deployment/web") == (
        1, "", "error: you cannot rollback a paused deployment; resume it first with "
               "'sampan rollout resume deployment/web' and try again\n")


async def test_pause_resume_and_restart(api, sampan, kubelet):
    await api.create(deployment(replicas=1))
    await eventually(lambda: rolled_out_at(api, 1))

    assert await sampan("rollout", "pause", "deployment/web") == (0, "deployment.apps/web paused\n", "")
    assert (await get_deployment(api)).spec.paused
    assert await sampan("rollout", "pause", "deployment/web") == (
        1, "", 'error: deployments.apps "web" is already paused\n')
    assert await sampan("rollout", "restart", "deployment/web") == (
        1, "", 'error: deployments.apps "web" can\'t restart paused deployment (run rollout resume first)\n')
    assert await sampan("rollout", "resume", "deployment/web") == (0, "deployment.apps/web resumed\n", "")
    assert await sampan("rollout", "resume", "deployment/web") == (
        1, "", 'error: deployments.apps "web" is not paused\n')

    assert await sampan("rollout", "restart", "deployment/web") == (0, "deployment.apps/web restarted\n", "")
    d = await eventually(lambda: rolled_out_at(api, 2))
    assert d.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"].endswith("Z")


async def test_status_follows_a_rollout_until_it_is_done(api, sampan, kubelet):
    await api.create(deployment(replicas=2))
    await eventually(lambda: rolled_out_at(api, 1))
    assert await sampan("rollout", "status", "deployment/web") == (
        0, 'deployment "web" successfully rolled out\n', "")

    await api.patch("Deployment", "web", {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}},
                    namespace="default")
    code, out, err = await sampan("rollout", "status", "deployment/web", "--timeout", "60s")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'
    assert all(line.startswith('Waiting for deployment "web" rollout to finish: ')
               or line == "Waiting for deployment spec update to be observed..." for line in out.splitlines()[:-1])


async def test_status_without_progress_times_out_or_reports_the_deadline(api, sampan):
    await api.create(deployment(replicas=2))  # no node: the pods never start
    async def created():
        return (await get_deployment(api)).status.replicas == 2
    await eventually(created)

    assert await sampan("rollout", "status", "deployment/web", "--watch=false") == (
        0, 'Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are available...\n', "")
    assert await sampan("rollout", "status", "deployment/web", "--timeout", "1s") == (
        1, 'Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are available...\n',
        "error: timed out waiting for the condition\n")

    await api.patch("Deployment", "web", {"spec": {"progressDeadlineSeconds": 1}}, namespace="default")
    code, out, err = await sampan("rollout", "status", "deployment/web", "--timeout", "60s")
    assert (code, err) == (1, 'error: deployment "web" exceeded its progress deadline\n')


async def test_rollout_of_a_kind_without_rollouts_is_an_error(api, sampan):
    code, _, err = await sampan("rollout", "history", "pod/web")
    assert code == 1 and err.startswith("error: rollout history is not supported for pods (supported: deployments")
    code, _, err = await sampan("rollout", "status", "deployment")
    assert (code, err) == (1, "error: rollout status needs the object's name, e.g. deployment/NAME\n")


async def test_scale_sets_replicas_with_an_optional_precondition(api, sampan):
    await api.create(deployment(replicas=1))
    assert await sampan("scale", "deployment/web", "--replicas", "3") == (0, "deployment.apps/web scaled\n", "")
    assert (await get_deployment(api)).spec.replicas == 3
    assert await sampan("scale", "deployment", "web", "--replicas", "5", "--current-replicas", "2") == (
        1, "", "error: Expected replicas to be 2, was 3\n")
    assert await sampan("scale", "deploy/web", "--replicas", "0", "--current-replicas", "3") == (
        0, "deployment.apps/web scaled\n", "")
    assert (await get_deployment(api)).spec.replicas == 0

    await api.create(replicaset("solo", replicas=1))
    assert await sampan("scale", "replicaset/solo", "--replicas", "2") == (0, "replicaset.apps/solo scaled\n", "")
    assert (await api.get("ReplicaSet", "solo", namespace="default")).spec.replicas == 2

    assert await sampan("scale", "pod/web", "--replicas", "2") == (
        1, "", "error: pods cannot be scaled (scale works on deployments, replicasets, statefulsets)\n")
    assert await sampan("scale", "deployment/web") == (
        1, "", "error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0\n")


async def test_set_image_by_name_or_for_every_container(api, sampan):
    d = deployment(replicas=0)
    d.spec.template.spec.containers.add(name="sidecar", image="busybox:1.36", command=["sleep", "3600"])
    await api.create(d)

    assert await sampan("set", "image", "deployment/web", "sidecar=busybox:1.37") == (
        0, "deployment.apps/web image updated\n", "")
    images = [c.image for c in (await get_deployment(api)).spec.template.spec.containers]
    assert images == ["busybox:1.36", "busybox:1.37"]
    assert await sampan("set", "image", "deployment/web", "*=registry.local/box:2") == (
        0, "deployment.apps/web image updated\n", "")
    images = [c.image for c in (await get_deployment(api)).spec.template.spec.containers]
    assert images == ["registry.local/box:2"] * 2
    # Nothing to change prints nothing.
    assert await sampan("set", "image", "deployment/web", "main=registry.local/box:2") == (0, "", "")
    assert await sampan("set", "image", "deployment/web", "nope=busybox:1") == (
        1, "", 'error: unable to find container named "nope"\n')
    assert await sampan("set", "image", "deployment/web", "main=a:1", "*=b:2") == (
        1, "", "error: all containers are already specified by *, but saw more than one "
               "container_name=container_image pairs\n")


async def test_set_image_on_a_pod(api, sampan):
    from control.api.manifest import to_message
    await api.create(to_message({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo"},
                                 "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}))
    assert await sampan("set", "image", "pod/solo", "main=busybox:1.37") == (0, "pod/solo image updated\n", "")
    assert (await api.get("Pod", "solo", namespace="default")).spec.containers[0].image == "busybox:1.37"


def _deployment(*, generation: int = 2, observed: int = 2, replicas: int = 3, updated: int = 3, current: int = 3,
                available: int = 3, reason: str = "") -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name = "web"
    d.metadata.generation = generation
    d.spec.replicas = replicas
    d.status.observed_generation = observed
    d.status.replicas = current
    d.status.updated_replicas = updated
    d.status.available_replicas = available
    if reason:
        d.status.conditions.add(type="Progressing", status="False", reason=reason)
    return d


@pytest.mark.parametrize(("fields", "message", "done"), [
    ({"observed": 1}, "Waiting for deployment spec update to be observed...", False),
    ({"updated": 1, "current": 4}, 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have '
                                   "been updated...", False),
    ({"current": 5}, 'Waiting for deployment "web" rollout to finish: 2 old replicas are pending termination...',
     False),
    ({"available": 1}, 'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...',
     False),
    ({}, 'deployment "web" successfully rolled out', True),
])
def test_status_messages_are_kubectls(fields, message, done):
    state = deployment_status(_deployment(**fields), 0)
    assert (state.message, state.done) == (message, done)


def test_status_past_the_progress_deadline_or_of_another_revision_is_an_error():
    with pytest.raises(CommandError, match='^error: deployment "web" exceeded its progress deadline$'):
        deployment_status(_deployment(available=0, reason="ProgressDeadlineExceeded"), 0)
    d = _deployment()
    d.metadata.annotations[REVISION_ANNOTATION] = "4"
    assert deployment_status(d, 4).done
    with pytest.raises(CommandError, match=r"desired revision \(3\) is different from the running revision \(4\)"):
        deployment_status(d, 3)
