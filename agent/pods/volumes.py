"""Pod directories and volumes: where a pod's files live on the host.

Every pod owns ``<data_dir>/pods/<namespace>_<name>_<uid>/`` holding
``logs/<container>/<attempt>.log`` and ``volumes/<plugin>/<volume>/``.
``setup`` makes each volume of the pod exist on the host and returns its host
path; it is idempotent and runs on every sync, which is how configMap, secret
and downwardAPI volumes follow changes of their sources (``AtomicWriter``
swaps the files in one rename). ``mounts_for`` turns a container's
volumeMounts into runtime Mounts (subPath and subPathExpr included).

- emptyDir: a directory in the pod dir; ``medium: Memory`` puts it on /dev/shm.
- hostPath: the host's path, checked or created according to ``type``.
- configMap, secret, downwardAPI, projected: files written by AtomicWriter,
  mounted read-only as Kubernetes does; a projected serviceAccountToken
  source is a token for the pod's service account (service_account.py).
- the service account's token, CA and namespace, in a volume the agent adds
  (``kube-api-access``) and mounts read-only at
  /var/run/secrets/kubernetes.io/serviceaccount in every container, unless
  automountServiceAccountToken is false or a container mounts something there.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import Mapping

from agent.pods.atomic_writer import AtomicWriter, FileProjection
from agent.pods.downward_api import DownwardAPIError, field_value, resource_value
from agent.pods.env import ConfigSource, expand
from agent.pods.service_account import (
    DEFAULT_EXPIRATION_SECONDS, TOKEN_MOUNT_PATH, TOKEN_VOLUME, ServiceAccountTokens, TokenError,
)
from agent.runtime.base import Mount
from protos.api.v1 import core_pb2

SHM_ROOT = "/dev/shm/sampan"
_READ_ONLY_SOURCES = ("secret", "config_map", "downward_api", "projected")


class VolumeError(Exception):
    """A volume cannot be set up (kubelet's FailedMount)."""


def _payload_from(
    data: Mapping[str, bytes], items, *, default_mode: int, kind: str, optional: bool
) -> dict[str, FileProjection]:
    if not items:
        return {key: FileProjection(value, default_mode) for key, value in data.items()}
    payload = {}
    for item in items:
        if item.key not in data:
            if optional:
                continue
            raise VolumeError(f"{kind} references non-existent config key: {item.key}")
        payload[item.path] = FileProjection(data[item.key], item.mode if item.HasField("mode") else default_mode)
    return payload


def _config_map_data(config_map: core_pb2.ConfigMap) -> dict[str, bytes]:
    data = dict(config_map.binary_data)
    data.update((key, value.encode()) for key, value in config_map.data.items())
    return data


def _check_host_path(path: str, kind: str) -> None:
    if kind == "DirectoryOrCreate":
        os.makedirs(path, mode=0o755, exist_ok=True)
        return
    if kind == "FileOrCreate":
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        if not os.path.exists(path):
            open(path, "a").close()
        return
    if not kind:
        return
    tests = {"Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
             "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}
    names = {"Directory": "a directory", "File": "a file", "Socket": "a socket",
             "CharDevice": "a character device", "BlockDevice": "a block device"}
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VolumeError(f"hostPath type check failed: {path} does not exist") from None
    if kind in tests and not tests[kind](mode):
        raise VolumeError(f"hostPath type check failed: {path} is not {names[kind]}")


class VolumeManager:
    def __init__(self, data_dir: str, configs: ConfigSource, tokens: ServiceAccountTokens | None = None) -> None:
        self.pods_root = os.path.join(data_dir, "pods")
        self._configs = configs
        # None: no service account tokens (the pod gets none mounted).
        self._tokens = tokens

    # ----------------------------------------------------------- directories

    def pod_dir(self, pod: core_pb2.Pod) -> str:
        meta = pod.metadata
        return os.path.join(self.pods_root, f"{meta.namespace}_{meta.name}_{meta.uid}")

    def log_directory(self, pod: core_pb2.Pod) -> str:
        return os.path.join(self.pod_dir(pod), "logs")

    def pod_dir_uids(self) -> dict[str, str]:
        """The pod directories on disk, by pod uid."""
        try:
            entries = os.listdir(self.pods_root)
        except FileNotFoundError:
            return {}
        return {entry.rsplit("_", 1)[-1]: os.path.join(self.pods_root, entry) for entry in entries}

    def cleanup(self, uid: str) -> None:
        """Remove everything the pod had on the host (its dir, its memory-backed volumes)."""
        path = self.pod_dir_uids().get(uid)
        if path:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(os.path.join(SHM_ROOT, uid), ignore_errors=True)

    # --------------------------------------------------------------- volumes

    async def setup(self, pod: core_pb2.Pod, *, host_ip: str, pod_ip: str) -> dict[str, str]:
        """Host paths of every volume, by volume name. Raises VolumeError."""
        paths = {}
        for volume in pod.spec.volumes:
            try:
                paths[volume.name] = await self._setup_one(pod, volume, host_ip=host_ip, pod_ip=pod_ip)
            except VolumeError as err:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{volume.name}" : {err}') from None
            except OSError as err:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{volume.name}" : {err}') from None
        if await self._wants_token_volume(pod):
            try:
                paths[TOKEN_VOLUME] = await self._token_volume(pod)
            except (TokenError, VolumeError, OSError) as err:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{TOKEN_VOLUME}" : {err}') from None
        return paths

    async def _wants_token_volume(self, pod: core_pb2.Pod) -> bool:
        if self._tokens is None or any(v.name == TOKEN_VOLUME for v in pod.spec.volumes):
            return False
        if all(any(m.mount_path.rstrip("/") == TOKEN_MOUNT_PATH for m in c.volume_mounts)
               for c in (*pod.spec.init_containers, *pod.spec.containers)):
            return False
        try:
            return await self._tokens.automount(pod)
        except TokenError as err:
            raise VolumeError(f'MountVolume.SetUp failed for volume "{TOKEN_VOLUME}" : {err}') from None

    async def _token_volume(self, pod: core_pb2.Pod) -> str:
        assert self._tokens is not None
        token = await self._tokens.token(pod)
        payload = {"token": FileProjection(token.encode(), 0o644),
                   "ca.crt": FileProjection(self._tokens.cluster_ca, 0o644),
                   "namespace": FileProjection(pod.metadata.namespace.encode(), 0o644)}
        return self._publish(pod, "serviceaccount", TOKEN_VOLUME, payload)

    def _dir(self, pod: core_pb2.Pod, plugin: str, name: str) -> str:
        return os.path.join(self.pod_dir(pod), "volumes", plugin, name)

    async def _setup_one(self, pod: core_pb2.Pod, volume: core_pb2.Volume, *, host_ip: str, pod_ip: str) -> str:
        namespace = pod.metadata.namespace
        if volume.HasField("host_path"):
            _check_host_path(volume.host_path.path, volume.host_path.type)
            return volume.host_path.path
        if volume.HasField("config_map"):
            source = volume.config_map
            config_map = await self._configs.config_map(namespace, source.name)
            if config_map is None and not source.optional:
                raise VolumeError(f'configmap "{source.name}" not found')
            data = _config_map_data(config_map) if config_map is not None else {}
            payload = _payload_from(data, source.items, default_mode=source.default_mode or 0o644,
                                    kind="configmap", optional=source.optional)
            return self._publish(pod, "configmap", volume.name, payload)
        if volume.HasField("secret"):
            source = volume.secret
            secret = await self._configs.secret(namespace, source.secret_name)
            if secret is None and not source.optional:
                raise VolumeError(f'secret "{source.secret_name}" not found')
            data = dict(secret.data) if secret is not None else {}
            payload = _payload_from(data, source.items, default_mode=source.default_mode or 0o644,
                                    kind="secret", optional=source.optional)
            return self._publish(pod, "secret", volume.name, payload)
        if volume.HasField("downward_api"):
            source = volume.downward_api
            payload = self._downward_payload(pod, source.items, default_mode=source.default_mode or 0o644,
                                             host_ip=host_ip, pod_ip=pod_ip)
            return self._publish(pod, "downward-api", volume.name, payload)
        if volume.HasField("projected"):
            payload = await self._projected_payload(pod, volume.projected, host_ip=host_ip, pod_ip=pod_ip)
            return self._publish(pod, "projected", volume.name, payload)
        if volume.HasField("empty_dir"):
            if volume.empty_dir.medium == "Memory":
                path = os.path.join(SHM_ROOT, pod.metadata.uid, volume.name)
            else:
                path = self._dir(pod, "empty-dir", volume.name)
            os.makedirs(path, mode=0o777, exist_ok=True)
            return path
        raise VolumeError("volume type not supported by this agent (persistentVolumeClaim, nfs)")

    def _publish(self, pod: core_pb2.Pod, plugin: str, name: str, payload: dict[str, FileProjection]) -> str:
        target = self._dir(pod, plugin, name)
        try:
            AtomicWriter(target).write(payload)
        except ValueError as err:
            raise VolumeError(str(err)) from None
        return target

    @staticmethod
    def _downward_payload(pod, items, *, default_mode: int, host_ip: str, pod_ip: str) -> dict[str, FileProjection]:
        payload = {}
        for item in items:
            try:
                if item.HasField("field_ref"):
                    value = field_value(pod, item.field_ref.field_path, host_ip=host_ip, pod_ip=pod_ip)
                else:
                    ref = item.resource_field_ref
                    container = next((c for c in (*pod.spec.containers, *pod.spec.init_containers)
                                      if c.name == ref.container_name), None)
                    if container is None:
                        raise VolumeError(f"container {ref.container_name!r} not found in the pod")
                    value = resource_value(container, ref.resource, ref.divisor)
            except (DownwardAPIError, ValueError) as err:
                raise VolumeError(str(err)) from None
            payload[item.path] = FileProjection(value.encode(), item.mode if item.HasField("mode") else default_mode)
        return payload

    async def _projected_payload(self, pod, source, *, host_ip: str, pod_ip: str) -> dict[str, FileProjection]:
        namespace, mode = pod.metadata.namespace, source.default_mode or 0o644
        payload: dict[str, FileProjection] = {}
        for projection in source.sources:
            if projection.HasField("config_map"):
                ref = projection.config_map
                config_map = await self._configs.config_map(namespace, ref.name)
                if config_map is None and not ref.optional:
                    raise VolumeError(f'configmap "{ref.name}" not found')
                data = _config_map_data(config_map) if config_map is not None else {}
                payload.update(_payload_from(data, ref.items, default_mode=mode, kind="configmap",
                                              optional=ref.optional))
            elif projection.HasField("secret"):
                ref = projection.secret
                secret = await self._configs.secret(namespace, ref.name)
                if secret is None and not ref.optional:
                    raise VolumeError(f'secret "{ref.name}" not found')
                data = dict(secret.data) if secret is not None else {}
                payload.update(_payload_from(data, ref.items, default_mode=mode, kind="secret",
                                              optional=ref.optional))
            elif projection.HasField("downward_api"):
                payload.update(self._downward_payload(pod, projection.downward_api.items, default_mode=mode,
                                                      host_ip=host_ip, pod_ip=pod_ip))
            elif projection.HasField("service_account_token"):
                ref = projection.service_account_token
                if self._tokens is None:
                    raise VolumeError("this agent cannot request service account tokens")
                try:
                    token = await self._tokens.token(
                        pod, audience=ref.audience,
                        expiration_seconds=ref.expiration_seconds or DEFAULT_EXPIRATION_SECONDS)
                except TokenError as err:
                    raise VolumeError(str(err)) from None
                payload[ref.path] = FileProjection(token.encode(), mode)
        return payload

    # ---------------------------------------------------------------- mounts

    def mounts_for(
        self, pod: core_pb2.Pod, container: core_pb2.Container, paths: Mapping[str, str], env: Mapping[str, str]
    ) -> tuple[Mount, ...]:
        """The container's volumeMounts as runtime Mounts. Raises VolumeError."""
        volumes = {v.name: v for v in pod.spec.volumes}
        mounts = []
        for volume_mount in container.volume_mounts:
            if volume_mount.name not in paths:
                raise VolumeError(f'volume "{volume_mount.name}" is not set up')
            host_path = paths[volume_mount.name]
            sub_path = volume_mount.sub_path or expand(volume_mount.sub_path_expr, env.get)
            if sub_path:
                if sub_path.startswith("/") or ".." in sub_path.split("/"):
                    raise VolumeError(f"subPath {sub_path!r} must be a relative path within the volume")
                host_path = os.path.join(host_path, sub_path)
                if not os.path.lexists(host_path):
                    os.makedirs(host_path, mode=0o755, exist_ok=True)
            volume = volumes.get(volume_mount.name)
            read_only = volume_mount.read_only or (
                volume is not None and any(volume.HasField(f) for f in _READ_ONLY_SOURCES))
            mounts.append(Mount(host_path=host_path, container_path=volume_mount.mount_path, readonly=read_only))
        if (TOKEN_VOLUME in paths and TOKEN_VOLUME not in volumes
                and not any(m.container_path.rstrip("/") == TOKEN_MOUNT_PATH for m in mounts)):
            mounts.append(Mount(host_path=paths[TOKEN_VOLUME], container_path=TOKEN_MOUNT_PATH, readonly=True))
        return tuple(mounts)
