"""Which container of a pod a logs or exec request means.

The API service (relaying to the node) and the node agent (serving) apply the
same rule, Kubernetes' ``validateContainer``: a request may leave the
container out only when the pod has exactly one; a named container must be
one of the pod's containers or init containers. Both errors are BadRequest, in
the API server's words.
"""

from __future__ import annotations

from control.api import errors
from protos.api.v1 import core_pb2


def container_names(pod: core_pb2.Pod) -> list[str]:
    """Every container name of the pod: init containers first, as the pod runs them."""
    return [c.name for c in pod.spec.init_containers] + [c.name for c in pod.spec.containers]


def choose_container(pod: core_pb2.Pod, name: str) -> str:
    """The container a request for ``name`` ("" for the default) means; BadRequestError if none."""
    pod_name = pod.metadata.name
    if not name:
        if len(pod.spec.containers) == 1:
            return pod.spec.containers[0].name
        if not pod.spec.containers:
            raise errors.BadRequestError(f"a container name must be specified for pod {pod_name}")
        raise errors.BadRequestError(
            f"a container name must be specified for pod {pod_name}, "
            f"choose one of: [{' '.join(container_names(pod))}]")
    if name not in container_names(pod):
        raise errors.BadRequestError(f"container {name} is not valid for pod {pod_name}")
    return name
