"""ConfigMaps and Secrets in running pods: env from them (the pod waits with
CreateContainerConfigError until a missing one appears), and configMap/secret
volumes whose files follow their source.

The process runtime does not apply mounts, so volume content is checked on
the host, in the volume directory the agent prepares; the CRI end-to-end
tests check it inside containers.
"""

from __future__ import annotations

import os
from pathlib import Path

from control.api import manifest
from tests.agent.pods.support import container, container_status, eventually, pod_manifest, pod_until, waiting_reason


def config_map(name: str, data: dict[str, str], namespace: str = "default"):
    return manifest.to_message({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": name, "namespace": namespace}, "data": data})


def secret(name: str, data: dict[str, str], namespace: str = "default"):
    return manifest.to_message({"apiVersion": "v1", "kind": "Secret",
                                "metadata": {"name": name, "namespace": namespace}, "stringData": data})


async def test_a_missing_config_map_holds_the_container_until_it_is_created(api, agent, tmp_path):
    out = tmp_path / "env"
    env = [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}}]
    await api.create(pod_manifest("configured", container("app", f"echo $COLOR > {out}; exec sleep 300", env=env)))
    pod = await pod_until(api, "configured", lambda p: waiting_reason(p, "app") == "CreateContainerConfigError")
    assert container_status(pod, "app").state.waiting.message == 'configmap "settings" not found'
    assert pod.status.phase == "Pending"
    await api.create(config_map("settings", {"color": "blue"}))
    await pod_until(api, "configured", lambda p: p.status.phase == "Running")
    await eventually(lambda: _read(out), lambda text: text == "blue\n")


async def test_env_comes_from_secrets_config_maps_and_the_downward_api(api, agent, tmp_path):
    out = tmp_path / "env"
    await api.create(config_map("app-config", {"MODE": "fast", "LEVEL": "3"}))
    await api.create(secret("app-secret", {"token": "s3cret"}))
    env = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "token"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "WHERE", "value": "$(POD) on $(NODE_NAME)"},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    script = f'echo "$TOKEN|$POD|$WHERE|$CFG_MODE|$CFG_LEVEL|$1" > {out}; exec sleep 300'
    app = container("app", env=env, envFrom=[{"configMapRef": {"name": "app-config"}, "prefix": "CFG_"}])
    app["command"] = ["sh", "-c", script, "sh", "$(CFG_MODE)"]
    await api.create(pod_manifest("env", app))
    await pod_until(api, "env", lambda p: p.status.phase == "Running")
    # $(NODE_NAME) is defined after WHERE, so it stays as written (Kubernetes' rule).
    text = await eventually(lambda: _read(out), bool)
    assert text == "s3cret|env|env on $(NODE_NAME)|fast|3|fast\n"


async def test_a_config_map_volume_follows_changes_of_the_config_map(api, agent):
    await api.create(config_map("site", {"index.html": "v1"}))
    volumes = [{"name": "content", "configMap": {"name": "site"}}]
    app = container("app", volumeMounts=[{"name": "content", "mountPath": "/usr/share/nginx/html"}])
    await api.create(pod_manifest("site", app, volumes=volumes))
    pod = await pod_until(api, "site", lambda p: p.status.phase == "Running")
    volume = _pod_dir(agent, pod) / "volumes" / "configmap" / "content"
    assert (volume / "index.html").read_text() == "v1"
    assert os.readlink(volume / "index.html") == "..data/index.html"
    current = await api.get("ConfigMap", "site", namespace="default")
    current.data["index.html"] = "v2"
    current.data["extra.txt"] = "more"
    await api.update(current)
    await eventually(lambda: _read(volume / "index.html"), lambda text: text == "v2", what="the updated file")
    assert (volume / "extra.txt").read_text() == "more"
    assert container_status(await api.get("Pod", "site", namespace="default"), "app").restart_count == 0


async def test_secret_volume_items_are_written_with_their_modes(api, agent):
    await api.create(secret("tls", {"tls.crt": "CERT", "tls.key": "KEY"}))
    volumes = [{"name": "certs", "secret": {"secretName": "tls", "defaultMode": 0o400,
                                            "items": [{"key": "tls.key", "path": "private/key.pem"}]}}]
    app = container("app", volumeMounts=[{"name": "certs", "mountPath": "/etc/tls"}])
    await api.create(pod_manifest("tls", app, volumes=volumes))
    pod = await pod_until(api, "tls", lambda p: p.status.phase == "Running")
    volume = _pod_dir(agent, pod) / "volumes" / "secret" / "certs"
    key = volume / "private" / "key.pem"
    assert key.read_text() == "KEY"
    assert os.stat(key).st_mode & 0o777 == 0o400
    assert not (volume / "tls.crt").exists()


async def test_a_missing_config_map_volume_keeps_the_pod_creating(api, agent):
    volumes = [{"name": "cfg", "configMap": {"name": "absent"}}]
    await api.create(pod_manifest("unmounted", container("app"), volumes=volumes))

    async def failed_mounts():
        events, _ = await api.list("Event", namespace="default")
        return [e.message for e in events if e.reason == "FailedMount"]

    messages = await eventually(failed_mounts, bool, what="a FailedMount event")
    assert messages[0] == 'MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found'
    pod = await api.get("Pod", "unmounted", namespace="default")
    assert pod.status.phase == "Pending" and waiting_reason(pod, "app") == "ContainerCreating"
    await api.create(config_map("absent", {"k": "v"}))
    await pod_until(api, "unmounted", lambda p: p.status.phase == "Running")


def _pod_dir(agent, pod) -> Path:
    meta = pod.metadata
    return agent.data_dir / "pods" / f"{meta.namespace}_{meta.name}_{meta.uid}"


async def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
