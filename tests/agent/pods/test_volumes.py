"""Volumes on the host: emptyDir (disk or memory), hostPath and its types,
configMap/secret/downwardAPI/projected files, and volumeMounts with subPath
turned into runtime Mounts."""

from __future__ import annotations

import os

import pytest

from agent.pods.volumes import SHM_ROOT, VolumeError, VolumeManager
from agent.runtime.base import Mount
from control.api import manifest
from protos.api.v1 import core_pb2
from tests.agent.pods.support import Configs


def pod_with(volumes: list[dict], mounts: list[dict] | None = None, uid: str = "u-vol") -> core_pb2.Pod:
    return manifest.to_message({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "uid": uid, "labels": {"app": "web"}},
        "spec": {"volumes": volumes, "containers": [{"name": "app", "image": "x", "volumeMounts": mounts or [],
                                                     "resources": {"limits": {"memory": "64Mi"}}}]}})


@pytest.fixture
def volumes(tmp_path):
    configs = Configs(config_maps={"site": {"index.html": "hello", "extra": "e"}},
                      secrets={"tls": {"tls.key": "KEY"}})
    return VolumeManager(str(tmp_path / "agent"), configs)


async def setup(volumes: VolumeManager, pod: core_pb2.Pod) -> dict[str, str]:
    return await volumes.setup(pod, host_ip="10.0.0.5", pod_ip="")


async def test_an_empty_dir_lives_in_the_pod_directory(volumes):
    pod = pod_with([{"name": "scratch", "emptyDir": {}}])
    paths = await setup(volumes, pod)
    assert paths["scratch"] == os.path.join(volumes.pod_dir(pod), "volumes", "empty-dir", "scratch")
    assert os.path.isdir(paths["scratch"])
    assert volumes.pod_dir(pod).endswith("/pods/shop_web_u-vol")


async def test_a_memory_empty_dir_lives_on_dev_shm_and_goes_with_the_pod(volumes):
    pod = pod_with([{"name": "fast", "emptyDir": {"medium": "Memory"}}], uid="u-shm-test")
    paths = await setup(volumes, pod)
    assert paths["fast"] == os.path.join(SHM_ROOT, "u-shm-test", "fast") and os.path.isdir(paths["fast"])
    volumes.cleanup("u-shm-test")
    assert not os.path.exists(os.path.join(SHM_ROOT, "u-shm-test"))


async def test_host_path_directory_or_create_creates_it(volumes, tmp_path):
    target = tmp_path / "data" / "deep"
    paths = await setup(volumes, pod_with([{"name": "data", "hostPath": {"path": str(target),
                                                                          "type": "DirectoryOrCreate"}}]))
    assert paths["data"] == str(target) and target.is_dir()


async def test_host_path_file_or_create_creates_an_empty_file(volumes, tmp_path):
    target = tmp_path / "state" / "lock"
    await setup(volumes, pod_with([{"name": "lock", "hostPath": {"path": str(target), "type": "FileOrCreate"}}]))
    assert target.is_file()


@pytest.mark.parametrize(("kind", "message"), [("Directory", "does not exist"), ("File", "does not exist")])
async def test_host_path_types_are_checked(volumes, tmp_path, kind, message):
    pod = pod_with([{"name": "x", "hostPath": {"path": str(tmp_path / "absent"), "type": kind}}])
    with pytest.raises(VolumeError, match=message):
        await setup(volumes, pod)


async def test_host_path_of_the_wrong_type_is_refused(volumes, tmp_path):
    pod = pod_with([{"name": "x", "hostPath": {"path": str(tmp_path), "type": "File"}}])
    with pytest.raises(VolumeError, match=f'volume "x" : hostPath type check failed: {tmp_path} is not a file'):
        await setup(volumes, pod)


async def test_a_config_map_volume_has_a_file_per_key(volumes):
    paths = await setup(volumes, pod_with([{"name": "content", "configMap": {"name": "site"}}]))
    assert sorted(e for e in os.listdir(paths["content"]) if not e.startswith("..")) == ["extra", "index.html"]
    assert open(os.path.join(paths["content"], "index.html")).read() == "hello"


async def test_items_choose_keys_paths_and_modes(volumes):
    pod = pod_with([{"name": "content", "configMap": {
        "name": "site", "items": [{"key": "index.html", "path": "www/index.html", "mode": 0o600}]}}])
    paths = await setup(volumes, pod)
    path = os.path.join(paths["content"], "www", "index.html")
    assert open(path).read() == "hello" and os.stat(path).st_mode & 0o777 == 0o600
    assert not os.path.lexists(os.path.join(paths["content"], "extra"))


async def test_a_missing_config_map_fails_the_mount_unless_optional(volumes):
    with pytest.raises(VolumeError, match='MountVolume.SetUp failed for volume "c" : configmap "nope" not found'):
        await setup(volumes, pod_with([{"name": "c", "configMap": {"name": "nope"}}]))
    paths = await setup(volumes, pod_with([{"name": "c", "configMap": {"name": "nope", "optional": True}}]))
    assert os.path.isdir(paths["c"])


async def test_a_missing_item_key_fails_the_mount(volumes):
    pod = pod_with([{"name": "c", "configMap": {"name": "site", "items": [{"key": "absent", "path": "a"}]}}])
    with pytest.raises(VolumeError, match="non-existent config key: absent"):
        await setup(volumes, pod)


async def test_a_secret_volume_holds_the_decoded_values(volumes):
    paths = await setup(volumes, pod_with([{"name": "certs", "secret": {"secretName": "tls", "defaultMode": 0o400}}]))
    key = os.path.join(paths["certs"], "tls.key")
    assert open(key).read() == "KEY" and os.stat(key).st_mode & 0o777 == 0o400


async def test_a_downward_api_volume_writes_pod_fields_and_resources(volumes):
    pod = pod_with([{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                             "divisor": "1Mi"}}]}}])
    paths = await setup(volumes, pod)
    read = lambda name: open(os.path.join(paths["info"], name)).read()  # noqa: E731
    assert (read("labels"), read("name"), read("mem")) == ('app="web"', "web", "64")


async def test_a_projected_volume_combines_its_sources(volumes):
    pod = pod_with([{"name": "all", "projected": {"sources": [
        {"configMap": {"name": "site", "items": [{"key": "index.html", "path": "index.html"}]}},
        {"secret": {"name": "tls"}},
        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}])
    paths = await setup(volumes, pod)
    assert sorted(e for e in os.listdir(paths["all"]) if not e.startswith("..")) == ["index.html", "ns", "tls.key"]


async def test_mounts_map_volume_mounts_to_host_paths_read_only_for_config(volumes):
    pod = pod_with([{"name": "scratch", "emptyDir": {}}, {"name": "content", "configMap": {"name": "site"}}],
                   mounts=[{"name": "scratch", "mountPath": "/tmp/s"},
                           {"name": "content", "mountPath": "/www"},
                           {"name": "scratch", "mountPath": "/ro", "readOnly": True}])
    paths = await setup(volumes, pod)
    assert volumes.mounts_for(pod, pod.spec.containers[0], paths, {}) == (
        Mount(paths["scratch"], "/tmp/s", False), Mount(paths["content"], "/www", True),
        Mount(paths["scratch"], "/ro", True))


async def test_sub_path_mounts_a_directory_inside_the_volume_creating_it(volumes):
    pod = pod_with([{"name": "scratch", "emptyDir": {}}],
                   mounts=[{"name": "scratch", "mountPath": "/a", "subPath": "one/two"},
                           {"name": "scratch", "mountPath": "/b", "subPathExpr": "$(POD)"}])
    paths = await setup(volumes, pod)
    mounts = volumes.mounts_for(pod, pod.spec.containers[0], paths, {"POD": "web"})
    assert [m.host_path for m in mounts] == [os.path.join(paths["scratch"], "one/two"),
                                             os.path.join(paths["scratch"], "web")]
    assert all(os.path.isdir(m.host_path) for m in mounts)


async def test_a_sub_path_may_not_leave_its_volume(volumes):
    pod = pod_with([{"name": "scratch", "emptyDir": {}}], mounts=[{"name": "scratch", "mountPath": "/a",
                                                                   "subPath": "../../etc"}])
    paths = await setup(volumes, pod)
    with pytest.raises(VolumeError, match="relative path within the volume"):
        volumes.mounts_for(pod, pod.spec.containers[0], paths, {})


async def test_cleanup_removes_the_pod_directory(volumes):
    pod = pod_with([{"name": "scratch", "emptyDir": {}}])
    await setup(volumes, pod)
    assert volumes.pod_dir_uids() == {"u-vol": volumes.pod_dir(pod)}
    volumes.cleanup("u-vol")
    assert volumes.pod_dir_uids() == {}
