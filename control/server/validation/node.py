"""Node rules: pod CIDRs, taints and the resources a node reports.

A node's pod CIDRs and provider ID may be set once (from "" to a value) and
then never change, since the network and the cloud provider have been told
about them. Taints are unique by key and effect; their effects are the ones
a pod's tolerations may name too (pod_scheduling.py).
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import label_value_errors, qualified_name_errors
from control.server.validation.field_errors import cidr_errors, forbidden, invalid, one_of, quantity_errors, required

TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")


def validate_node(node: Message, old: Message | None) -> list[FieldError]:
    spec = node.spec
    errors: list[FieldError] = []
    if spec.pod_cidr:
        errors += invalid("spec.podCIDR", spec.pod_cidr, cidr_errors(spec.pod_cidr))
    for i, cidr in enumerate(spec.pod_cidrs):
        errors += invalid(f"spec.podCIDRs[{i}]", cidr, cidr_errors(cidr))
    if len(spec.pod_cidrs) > 2:
        errors += invalid("spec.podCIDRs", ", ".join(spec.pod_cidrs),
                          ["may specify no more than one CIDR for each IP family"])
    if spec.pod_cidr and spec.pod_cidrs and spec.pod_cidrs[0] != spec.pod_cidr:
        errors += invalid("spec.podCIDRs[0]", spec.pod_cidrs[0], ["must match spec.podCIDR"])
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(spec.taints):
        path = f"spec.taints[{i}]"
        errors += invalid(f"{path}.key", taint.key, qualified_name_errors(taint.key))
        errors += invalid(f"{path}.value", taint.value, label_value_errors(taint.value))
        if not taint.effect:
            errors.append(required(f"{path}.effect"))
        else:
            errors += one_of(f"{path}.effect", taint.effect, TAINT_EFFECTS)
        if (taint.key, taint.effect) in seen:
            errors.append(FieldError(path, "Duplicate value", "taints must be unique by key and effect pair",
                                     f"{taint.key}:{taint.effect}"))
        seen.add((taint.key, taint.effect))
    for group, json_name in ((node.status.capacity, "capacity"), (node.status.allocatable, "allocatable")):
        for name in sorted(group):
            errors += quantity_errors(f"status.{json_name}[{name}]", group[name])
    if old is not None:
        if old.spec.pod_cidrs and list(spec.pod_cidrs) != list(old.spec.pod_cidrs):
            errors.append(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
        if old.spec.provider_id and spec.provider_id != old.spec.provider_id:
            errors.append(forbidden("spec.providerID",
                                    'node updates may not change providerID except from "" to valid'))
    return errors
