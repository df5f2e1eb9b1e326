"""Downward API references: what of a pod may be handed to its own containers.

A pod can expose its own fields (``fieldRef``) and its containers' resources
(``resourceFieldRef``) either as environment variables (pod_containers.py) or
as files in a downwardAPI or projected volume (pod_volumes.py). Both routes
check references here, with one difference passed as ``volume``: environment
variables may also read the node's and the pod's addresses and the service
account, and a volume file must name the container whose resources it reports.
"""

from __future__ import annotations

import re

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import qualified_name_errors
from control.api.quantity import parse_quantity
from control.server.validation.field_errors import invalid, one_of, quantity_errors, required

_RESOURCE_FIELD_REFS = (
    "limits.cpu", "limits.ephemeral-storage", "limits.memory",
    "requests.cpu", "requests.ephemeral-storage", "requests.memory",
)
_ENV_FIELD_PATHS = (
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
    "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
)
_VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid")
_SUBSCRIPTED_FIELD_PATH = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")
_CPU_DIVISORS = ("1m", "1")
_MEMORY_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")


def field_ref_errors(path: str, ref: Message, *, volume: bool) -> list[FieldError]:
    """A supported pod field, or one label or annotation by its key."""
    if not ref.field_path:
        return [required(f"{path}.fieldPath")]
    subscripted = _SUBSCRIPTED_FIELD_PATH.fullmatch(ref.field_path)
    if subscripted:
        field, key = subscripted.groups()
        key = key.lower() if field == "metadata.annotations" else key
        return invalid(f"{path}.fieldPath", ref.field_path, qualified_name_errors(key))
    return one_of(f"{path}.fieldPath", ref.field_path, _VOLUME_FIELD_PATHS if volume else _ENV_FIELD_PATHS)


def resource_field_ref_errors(path: str, ref: Message, *, volume: bool) -> list[FieldError]:
    """A container resource, with a divisor that suits it (cores or millicores, bytes in SI or binary units)."""
    if volume and not ref.container_name:
        return [required(f"{path}.containerName")]
    if not ref.resource:
        return [required(f"{path}.resource")]
    errors = one_of(f"{path}.resource", ref.resource, _RESOURCE_FIELD_REFS)
    if errors or not ref.divisor:
        return errors
    errors = quantity_errors(f"{path}.divisor", ref.divisor)
    if errors:
        return errors
    resource = ref.resource.partition(".")[2]
    allowed = _CPU_DIVISORS if resource == "cpu" else _MEMORY_DIVISORS
    divisor = parse_quantity(ref.divisor)
    if divisor != 0 and all(parse_quantity(option) != divisor for option in allowed):
        errors += invalid(f"{path}.divisor", ref.divisor, [
            f"only divisor's values {', '.join(allowed)} are supported with the {resource} resource"])
    return errors
