"""``sampan rollout status|history|undo|restart`` for DaemonSets and StatefulSets.

The status lines are kubectl's, checked first as pure functions over the
objects' status, then through the CLI process against a control service
whose controllers roll the objects out. History and undo go through the
ControllerRevisions. No agent runs the pods: the stand-in kubelet of
tests/controllers/stand_in_kubelet.py (a fake) marks them ready.
"""

from __future__ import annotations

import pytest

from control.api.manifest import to_message
from control.cli.errors import CommandError
from control.cli.rollouts.daemonset import daemonset_status
from control.cli.rollouts.statefulset import statefulset_status
from tests.controllers.stand_in_kubelet import StandInKubelet, add_ready_node, eventually, set_image, workload


def daemonset(generation=2, strategy="RollingUpdate", **status):
    ds = to_message({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                     "spec": {"updateStrategy": {"type": strategy}}, "status": status})
    ds.metadata.generation = generation
    return ds


def statefulset(generation=2, replicas=3, rolling_update=None, **status):
    strategy = {"type": "RollingUpdate", **({"rollingUpdate": rolling_update} if rolling_update is not None else {})}
    sts = to_message({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
                      "spec": {"replicas": replicas, "updateStrategy": strategy}, "status": status})
    sts.metadata.generation = generation
    return sts


def test_daemonset_status_lines_are_kubectls():
    assert daemonset_status(daemonset(observedGeneration=1), 0).message == \
        "Waiting for daemon set spec update to be observed..."
    line = daemonset_status(daemonset(observedGeneration=2, desiredNumberScheduled=2, updatedNumberScheduled=1), 0)
    assert (line.message, line.done) == (
        'Waiting for daemon set "agent" rollout to finish: 1 out of 2 new pods have been updated...', False)
    line = daemonset_status(daemonset(observedGeneration=2, desiredNumberScheduled=2, updatedNumberScheduled=2,
                                      numberAvailable=1), 0)
    assert line.message == 'Waiting for daemon set "agent" rollout to finish: 1 of 2 updated pods are available...'
    line = daemonset_status(daemonset(observedGeneration=2, desiredNumberScheduled=2, updatedNumberScheduled=2,
                                      numberAvailable=2), 0)
    assert (line.message, line.done) == ('daemon set "agent" successfully rolled out', True)
    with pytest.raises(CommandError, match="only available for RollingUpdate strategy type"):
        daemonset_status(daemonset(strategy="OnDelete"), 0)


def test_statefulset_status_lines_are_kubectls():
    assert statefulset_status(statefulset(observedGeneration=1), 0).message == \
        "Waiting for statefulset spec update to be observed..."
    assert statefulset_status(statefulset(observedGeneration=2, readyReplicas=1), 0).message == \
        "Waiting for 2 pods to be ready..."
    line = statefulset_status(statefulset(observedGeneration=2, readyReplicas=3, updatedReplicas=1,
                                          rolling_update={"partition": 1}), 0)
    assert (line.message, line.done) == (
        "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...", False)
    line = statefulset_status(statefulset(observedGeneration=2, readyReplicas=3, updatedReplicas=2,
                                          rolling_update={"partition": 1}), 0)
    assert (line.message, line.done) == ("partitioned roll out complete: 2 new pods have been updated...", True)
    line = statefulset_status(statefulset(observedGeneration=2, readyReplicas=3, updatedReplicas=1,
                                          currentRevision="web-a", updateRevision="web-b"), 0)
    assert (line.message, line.done) == (
        "waiting for statefulset rolling update to complete 1 pods at revision web-b...", False)
    line = statefulset_status(statefulset(observedGeneration=2, readyReplicas=3, currentReplicas=3,
                                          currentRevision="web-b", updateRevision="web-b"), 0)
    assert (line.message, line.done) == ("statefulset rolling update complete 3 pods at revision web-b...", True)


async def test_status_follows_a_daemonset_rollout_until_it_is_done(api, sampan):
    await add_ready_node(api, "n1")
    await add_ready_node(api, "n2")
    async with StandInKubelet(api):
        await api.create(workload("DaemonSet", "agent"))
        code, out, err = await sampan("rollout", "status", "daemonset/agent", "--timeout", "60s")

    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == 'daemon set "agent" successfully rolled out'


async def test_status_of_a_statefulset_reports_its_partitioned_rollout(api, sampan):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=2))
        code, out, err = await sampan("rollout", "status", "statefulset/web", "--timeout", "60s")

    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "partitioned roll out complete: 2 new pods have been updated..."


async def test_history_lists_the_revisions_and_undo_restores_the_previous_template(api, sampan):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        ds = workload("DaemonSet", "agent")
        ds.metadata.annotations["kubernetes.io/change-cause"] = "first"
        await api.create(ds)
        await eventually(lambda: _revision_count(api, 1))
        await api.patch("DaemonSet", "agent", {"metadata": {"annotations": {"kubernetes.io/change-cause": "second"}},
                                               "spec": {"template": {"spec": {"containers": [
                                                   {"name": "main", "image": "busybox:2"}]}}}}, namespace="default")
        await eventually(lambda: _revision_count(api, 2))

        code, out, err = await sampan("rollout", "history", "daemonset/agent")
        assert (code, err) == (0, "")
        assert [line.split() for line in out.splitlines() if line.strip()] == [
            ["daemonset.apps/agent"], ["REVISION", "CHANGE-CAUSE"], ["1", "first"], ["2", "second"]]

        code, out, err = await sampan("rollout", "undo", "daemonset/agent")
        assert (code, out.strip(), err) == (0, "daemonset.apps/agent rolled back", "")

        async def first_renumbered():
            revisions, _ = await api.list("ControllerRevision", namespace="default")
            numbers = {r.data.spec.template.spec.containers[0].image: r.revision for r in revisions}
            return numbers == {"busybox:1": 3, "busybox:2": 2}
        await eventually(first_renumbered)
        restored = await api.get("DaemonSet", "agent", namespace="default")
        assert restored.spec.template.spec.containers[0].image == "busybox:1"

        code, out, err = await sampan("rollout", "undo", "daemonset/agent", "--to-revision", "3")
        assert (code, out.strip()) == (0, "daemonset.apps/agent skipped rollback (current template already "
                                          "matches revision 3)")
        code, out, err = await sampan("rollout", "undo", "daemonset/agent", "--to-revision", "9")
        assert code == 1 and "unable to find specified revision 9 in history" in err


async def test_undo_of_a_statefulset_rolls_its_pods_back(api, sampan):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=2))
        await eventually(lambda: _revision_count(api, 1))
        await set_image(api, "StatefulSet", "web", "busybox:2")
        await eventually(lambda: _pod_images_are(api, {"busybox:2"}))

        code, out, err = await sampan("rollout", "undo", "statefulset/web", "--to-revision", "1")

        assert (code, out.strip(), err) == (0, "statefulset.apps/web rolled back", "")
        await eventually(lambda: _pod_images_are(api, {"busybox:1"}))


async def _revision_count(api, count: int) -> bool:
    revisions, _ = await api.list("ControllerRevision", namespace="default")
    return len(revisions) == count


async def _pod_images_are(api, images: set[str]) -> bool:
    pods, _ = await api.list("Pod", namespace="default")
    return len(pods) == 2 and {p.spec.containers[0].image for p in pods} == images and all(
        not p.metadata.HasField("deletion_timestamp") for p in pods)


async def test_restart_rolls_every_pod_of_a_statefulset_out_again(api, sampan):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=2))
        await eventually(lambda: _pod_images_are(api, {"busybox:1"}))
        await eventually(lambda: _ready_pods(api, 2))
        before = {p.metadata.uid for p in (await api.list("Pod", namespace="default"))[0]}

        code, out, err = await sampan("rollout", "restart", "statefulset/web")

        assert (code, out.strip(), err) == (0, "statefulset.apps/web restarted", "")

        async def all_replaced():
            pods, _ = await api.list("Pod", namespace="default")
            return len(pods) == 2 and not before & {p.metadata.uid for p in pods} and await _ready_pods(api, 2)
        await eventually(all_replaced)


async def _ready_pods(api, count: int) -> bool:
    pods, _ = await api.list("Pod", namespace="default")
    return len(pods) == count and all(any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
                                      and not p.metadata.HasField("deletion_timestamp") for p in pods)
