"""The scheduler's cache: Nodes and Pods as the watches report them, plus
the bindings this scheduler has decided but the API has not confirmed yet.

Shaped like kube-scheduler's cache:

- one ``NodeInfo`` per node, updated in place as pods arrive, change and
  leave (a pod's requests are worked out once per pod version, never per
  decision), and the Ready nodes in name order, rebuilt only when a node
  comes, goes or changes readiness; and which nodes hold pods with required
  anti-affinity (usually none), so a decision need not look at every node
  to find out;
- ``assume(bound_pod)`` counts a pod on its node the moment the scheduler
  decides, before the binding write has even been sent, so the next decision
  sees it; ``confirm`` ends the assumption when the write succeeded and
  ``forget`` undoes it when the write failed (the pod is unbound again, as
  the watch last reported it);
- a binding is permanent: an older, unbound view of a pod that the cache
  holds bound (a watch lagging behind the scheduler's own write) never
  undoes it.

Cached messages are never mutated; replacing one replaces the object.
"""

from __future__ import annotations

from control.scheduler.framework import NodeInfo, PodKey
from protos.api.v1 import core_pb2


def pod_key(pod: core_pb2.Pod) -> PodKey:
    return pod.metadata.namespace, pod.metadata.name


def is_ready(node: core_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def counts_on_node(pod: core_pb2.Pod) -> bool:
    # Finished pods hold no resources on their node.
    return bool(pod.spec.node_name) and pod.status.phase not in ("Succeeded", "Failed")


class SchedulerCache:
    def __init__(self) -> None:
        self.nodes: dict[str, core_pb2.Node] = {}
        self.pods: dict[PodKey, core_pb2.Pod] = {}
        # Pods counted on each node name (a pod may name a node not seen yet).
        self._on_node: dict[str, dict[PodKey, core_pb2.Pod]] = {}
        self._infos: dict[str, NodeInfo] = {}
        self._ready: list[NodeInfo] | None = None
        self._ready_names: set[str] = set()
        self._with_anti_affinity: set[str] = set()  # nodes holding pods with required anti-affinity
        # key -> (the assumed bound pod, the newest unbound view to restore if the binding fails)
        self._assumed: dict[PodKey, tuple[core_pb2.Pod, core_pb2.Pod | None]] = {}

    # ------------------------------------------------------------------ nodes

    def set_node(self, node: core_pb2.Node) -> None:
        name = node.metadata.name
        old = self.nodes.get(name)
        self.nodes[name] = node
        info = self._infos.get(name)
        if info is None:
            info = self._infos[name] = NodeInfo(node, self._on_node.get(name, {}).values())
            self._track(info)
        else:
            info.set_node(node)
        if is_ready(node):
            self._ready_names.add(name)
        else:
            self._ready_names.discard(name)
        if old is None or is_ready(old) != is_ready(node):
            self._ready = None

    def remove_node(self, name: str) -> None:
        if self.nodes.pop(name, None) is not None:
            self._ready = None
        self._ready_names.discard(name)
        self._infos.pop(name, None)
        self._with_anti_affinity.discard(name)

    def node_infos(self) -> list[NodeInfo]:
        """The Ready nodes with their pods, sorted by name. The list is shared:
        read it, never change it."""
        if self._ready is None:
            self._ready = [self._infos[name] for name in sorted(self._ready_names)]
        return self._ready

    def nodes_with_required_anti_affinity(self) -> list[NodeInfo]:
        """The Ready nodes holding pods with required anti-affinity terms."""
        return [self._infos[name] for name in self._with_anti_affinity if name in self._ready_names]

    def _track(self, info: NodeInfo) -> None:
        if info.pods_with_required_anti_affinity:
            self._with_anti_affinity.add(info.name)
        else:
            self._with_anti_affinity.discard(info.name)

    # ------------------------------------------------------------------- pods

    def set_pod(self, pod: core_pb2.Pod) -> None:
        key = pod_key(pod)
        cached = self.pods.get(key)
        if (cached is not None and cached.spec.node_name and not pod.spec.node_name
                and cached.metadata.uid == pod.metadata.uid):
            assumed = self._assumed.get(key)
            if assumed is not None:
                self._assumed[key] = (assumed[0], pod)
            return
        if pod.spec.node_name:
            self._assumed.pop(key, None)  # the API has the binding: nothing left to undo
        self._place(key, pod)

    def remove_pod(self, key: PodKey) -> None:
        self._unplace(key)
        self.pods.pop(key, None)
        self._assumed.pop(key, None)

    # ------------------------------------------------------------ assumptions

    def assume(self, bound: core_pb2.Pod) -> None:
        """Count bound (a pod with spec.nodeName set by this scheduler) on its
        node now, before the API has confirmed the binding."""
        key = pod_key(bound)
        self._assumed[key] = (bound, self.pods.get(key))
        self._place(key, bound)

    def is_assumed(self, key: PodKey) -> bool:
        return key in self._assumed

    def confirm(self, key: PodKey, bound: core_pb2.Pod) -> None:
        """The binding was written; bound is the API's answer. It replaces the
        assumed pod unless the watch has already brought something newer."""
        assumed = self._assumed.pop(key, None)
        if assumed is not None and self.pods.get(key) is assumed[0]:
            self._place(key, bound)

    def forget(self, key: PodKey) -> None:
        """The binding failed: the pod is unbound again, as last reported."""
        assumed = self._assumed.pop(key, None)
        if assumed is None or self.pods.get(key) is not assumed[0]:
            return
        unbound = assumed[1]
        if unbound is None:
            self.remove_pod(key)
        else:
            self._place(key, unbound)

    # --------------------------------------------------------------- helpers

    def _place(self, key: PodKey, pod: core_pb2.Pod) -> None:
        self._unplace(key)
        self.pods[key] = pod
        if counts_on_node(pod):
            node_name = pod.spec.node_name
            self._on_node.setdefault(node_name, {})[key] = pod
            info = self._infos.get(node_name)
            if info is not None:
                info.add_pod(pod)
                self._track(info)

    def _unplace(self, key: PodKey) -> None:
        old = self.pods.get(key)
        if old is not None and counts_on_node(old):
            node_name = old.spec.node_name
            on_node = self._on_node.get(node_name)
            if on_node is not None:
                on_node.pop(key, None)
                if not on_node:
                    del self._on_node[node_name]
            info = self._infos.get(node_name)
            if info is not None:
                info.remove_pod(key)
                self._track(info)
