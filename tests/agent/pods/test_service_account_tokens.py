"""Service account tokens in pods: the agent writes token, ca.crt and namespace
into a read-only volume mounted at /var/run/secrets/kubernetes.io/serviceaccount
(unless automountServiceAccountToken is false), fills projected
serviceAccountToken sources, and replaces a token past 80% of its life.

The process runtime does not apply mounts, so files are checked in the volume
directory on the host, and the mount in the container's runtime spec."""

from __future__ import annotations

from pathlib import Path

from agent.pods.service_account import TOKEN_MOUNT_PATH, ServiceAccountTokens
from agent.pods.volumes import VolumeManager
from control.auth.tokens import API_AUDIENCE
from tests.agent.pods.support import container, eventually, pod_manifest, pod_until


def _volume_dir(agent, pod, plugin: str, volume: str) -> Path:
    meta = pod.metadata
    return agent.data_dir / "pods" / f"{meta.namespace}_{meta.name}_{meta.uid}" / "volumes" / plugin / volume


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def test_a_running_pod_has_its_token_namespace_and_ca_in_the_volume(api, agent, service):
    pod = await api.create(pod_manifest("web", container("app")))
    await pod_until(api, "web", lambda p: p.status.phase == "Running")
    directory = _volume_dir(agent, pod, "serviceaccount", "kube-api-access")
    token = await eventually(lambda: _read(directory / "token"), bool, what="the token file")
    assert (directory / "namespace").read_text() == "default"
    assert (directory / "ca.crt").exists()  # empty over plain text: there is no cluster CA
    claims = service.token_signer.verify(token, audiences=[API_AUDIENCE])
    assert (claims.namespace, claims.service_account) == ("default", "default")
    assert claims.pod is not None and claims.pod.uid == pod.metadata.uid
    assert claims.expires_at - claims.issued_at == 3600


async def test_every_container_mounts_the_token_read_only(api, agent):
    pod = await api.create(pod_manifest("web", container("app")))
    await pod_until(api, "web", lambda p: p.status.phase == "Running")
    volumes = agent.manager.volumes
    paths = await volumes.setup(pod, host_ip="127.0.0.1", pod_ip="")
    mounts = volumes.mounts_for(pod, pod.spec.containers[0], paths, {})
    assert [(m.container_path, m.readonly) for m in mounts] == [(TOKEN_MOUNT_PATH, True)]


async def test_automount_false_mounts_no_token(api, agent):
    pod = await api.create(pod_manifest("quiet", container("app"), automountServiceAccountToken=False))
    await pod_until(api, "quiet", lambda p: p.status.phase == "Running")
    assert not _volume_dir(agent, pod, "serviceaccount", "kube-api-access").exists()


async def test_a_projected_token_has_its_audience_and_lifetime(api, agent, service):
    projected = {"name": "vault", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 7200, "path": "vault-token"}}]}}
    pod = await api.create(pod_manifest("web", container("app"), volumes=[projected]))
    await pod_until(api, "web", lambda p: p.status.phase == "Running")
    token = await eventually(lambda: _read(_volume_dir(agent, pod, "projected", "vault") / "vault-token"), bool,
                             what="the projected token")
    claims = service.token_signer.verify(token, audiences=["vault"])
    assert claims.audiences == ("vault",) and claims.expires_at - claims.issued_at == 7200


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_token_is_replaced_past_80_percent_of_its_life_and_rewritten(api, tmp_path):
    pod = await api.create(pod_manifest("web", container("app")))
    clock = Clock()
    tokens = ServiceAccountTokens(api, clock=clock)

    class NoConfigs:
        async def config_map(self, namespace, name):
            return None

        async def secret(self, namespace, name):
            return None

    volumes = VolumeManager(str(tmp_path / "agent"), NoConfigs(), tokens)
    first_paths = await volumes.setup(pod, host_ip="127.0.0.1", pod_ip="")
    token_file = Path(first_paths["kube-api-access"]) / "token"
    first = token_file.read_text()
    clock.now += 0.79 * 3600
    await volumes.setup(pod, host_ip="127.0.0.1", pod_ip="")
    assert token_file.read_text() == first
    clock.now += 0.02 * 3600
    await volumes.setup(pod, host_ip="127.0.0.1", pod_ip="")
    assert token_file.read_text() != first
