"""Which pods are bound to which node, and what each of them uses.

The node authorizer (node_authorizer.py) asks two questions on every request
a node makes: "is pod NS/NAME bound to node N?" and "does a pod bound to N
use secret (configmap, PVC, service account) NS/NAME?". ``NodeGraph``
answers both from memory: an index kept by a watch of Pods through the
in-process ResourceService (the same watch cache every client's watch reads),
so a check is a dict look-up.

The index can lag a write by a moment: an agent that learns of a new pod
from its own watch may ask for the pod's secret before the index has the
pod. So a "no" from the index is checked again against the store (the pods
of that namespace bound to that node) before it stands; a "yes" is never
re-checked. Handlers only record; the run loop re-lists after an expired
watch, as a reflector does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from control.api import errors, kinds
from protos.api.v1 import core_pb2

if TYPE_CHECKING:
    from control.server.resources import ResourceService

log = logging.getLogger(__name__)

SECRETS, CONFIG_MAPS, CLAIMS, SERVICE_ACCOUNTS = "secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"
_RETRY_SECONDS = 1.0


def pod_references(pod: core_pb2.Pod) -> frozenset[tuple[str, str]]:
    """(resource, name) of every object in the pod's namespace that its node must read to run it:
    secrets and configmaps in volumes, projected volumes, env and envFrom; image pull secrets;
    persistent volume claims; its service account."""
    spec = pod.spec
    found: set[tuple[str, str]] = {(SERVICE_ACCOUNTS, spec.service_account_name or "default")}
    found.update((SECRETS, ref.name) for ref in spec.image_pull_secrets if ref.name)
    for container in (*spec.init_containers, *spec.containers):
        for source in container.env_from:
            if source.HasField("config_map_ref"):
                found.add((CONFIG_MAPS, source.config_map_ref.name))
            if source.HasField("secret_ref"):
                found.add((SECRETS, source.secret_ref.name))
        for var in container.env:
            if var.value_from.HasField("config_map_key_ref"):
                found.add((CONFIG_MAPS, var.value_from.config_map_key_ref.name))
            if var.value_from.HasField("secret_key_ref"):
                found.add((SECRETS, var.value_from.secret_key_ref.name))
    for volume in spec.volumes:
        if volume.HasField("secret"):
            found.add((SECRETS, volume.secret.secret_name))
        if volume.HasField("config_map"):
            found.add((CONFIG_MAPS, volume.config_map.name))
        if volume.HasField("persistent_volume_claim"):
            found.add((CLAIMS, volume.persistent_volume_claim.claim_name))
        for projection in volume.projected.sources:
            if projection.HasField("secret"):
                found.add((SECRETS, projection.secret.name))
            if projection.HasField("config_map"):
                found.add((CONFIG_MAPS, projection.config_map.name))
    return frozenset((resource, name) for resource, name in found if name)


@dataclass(frozen=True, slots=True)
class PodOnNode:
    node: str
    uid: str
    references: frozenset[tuple[str, str]]


# pod_node's answer for a pod that does not exist (any more).
GONE = "<gone>"


class NodeGraph:
    """The pods bound to nodes and what they reference; ``run`` keeps it current."""

    def __init__(self, resources: ResourceService | None = None) -> None:
        self._resources = resources
        self._pods: dict[tuple[str, str], PodOnNode] = {}
        # (node, resource, namespace, name) -> how many pods bound to node use the object.
        self._uses: Counter[tuple[str, str, str, str]] = Counter()
        self.synced = asyncio.Event()

    # ------------------------------------------------------------ the index

    def set_pod(self, pod: core_pb2.Pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        self.remove_pod(*key)
        node = pod.spec.node_name
        if not node:
            return
        bound = PodOnNode(node, pod.metadata.uid, pod_references(pod))
        self._pods[key] = bound
        for resource, name in bound.references:
            self._uses[(node, resource, key[0], name)] += 1

    def remove_pod(self, namespace: str, name: str) -> None:
        bound = self._pods.pop((namespace, name), None)
        if bound is None:
            return
        for resource, ref in bound.references:
            use = (bound.node, resource, namespace, ref)
            self._uses[use] -= 1
            if self._uses[use] <= 0:
                del self._uses[use]

    def replace(self, pods: list[core_pb2.Pod]) -> None:
        self._pods.clear()
        self._uses.clear()
        for pod in pods:
            self.set_pod(pod)

    # ------------------------------------------------------------ questions

    async def pod_node(self, namespace: str, name: str) -> str | None:
        """The node the pod is bound to (None: unbound; GONE: there is no such pod)."""
        bound = self._pods.get((namespace, name))
        if bound is not None:
            return bound.node
        if self._resources is None:
            return None
        try:
            pod = await self._resources.get(kinds.by_kind("Pod"), namespace=namespace, name=name)
        except errors.NotFoundError:
            return GONE
        return pod.spec.node_name or None

    async def node_uses(self, node: str, resource: str, namespace: str, name: str) -> bool:
        """Whether a pod bound to node references resource NAME in namespace."""
        if self._uses.get((node, resource, namespace, name)):
            return True
        if self._resources is None:
            return False
        pods, _ = await self._resources.list(kinds.by_kind("Pod"), namespace=namespace,
                                             field_selector=f"spec.nodeName={node}")
        return any((resource, name) in pod_references(pod) for pod in pods)

    # ------------------------------------------------------------- the watch

    async def run(self) -> None:
        """Keep the index current from the ResourceService's watch of Pods, until cancelled."""
        assert self._resources is not None
        pod_kind = kinds.by_kind("Pod")
        while True:
            try:
                pods, revision = await self._resources.list(pod_kind)
                self.replace(pods)
                self.synced.set()
                async for event_type, pod in self._resources.watch(pod_kind, resource_version=str(revision)):
                    if event_type == "DELETED":
                        self.remove_pod(pod.metadata.namespace, pod.metadata.name)
                    else:
                        self.set_pod(pod)
            except asyncio.CancelledError:
                raise
            except errors.ExpiredError:
                continue
            except Exception:
                log.exception("node graph: the watch of pods failed; listing again")
                await asyncio.sleep(_RETRY_SECONDS)
