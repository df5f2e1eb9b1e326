"""Object metadata rules: the ones every kind shares, on create and on update.

``validate_object_meta`` is Kubernetes' ValidateObjectMeta (names, namespace,
labels, annotations, finalizers, owner references) plus, when the stored
object's metadata is given, ValidateObjectMetaUpdate (identity is immutable).
A kind picks only how its names are shaped, in ``NAME_RULES``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

from google.protobuf.message import Message

from control.api.kinds import Kind
from control.api.manifest import FieldError
from control.api.names import (
    dns1035_label_errors, dns1123_label_errors, dns1123_subdomain_errors, path_segment_name_errors,
    qualified_name_errors,
)
from control.server.validation.field_errors import forbidden, invalid, labels_errors, required

_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
_MAX_ANNOTATIONS_BYTES = 256 * 1024
# Kinds whose names are DNS-1123 labels; every other kind's are subdomains.
# A StatefulSet's name is its pods' host names' prefix, so it must be a label.
NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "Namespace": dns1123_label_errors,
    "StatefulSet": dns1123_label_errors,
    # A Service's name is a DNS name of its own (NAME.NAMESPACE.svc), starting with a letter.
    "Service": dns1035_label_errors,
    # RBAC names are path segments, so "system:node-proxier" is one.
    "Role": path_segment_name_errors,
    "ClusterRole": path_segment_name_errors,
    "RoleBinding": path_segment_name_errors,
    "ClusterRoleBinding": path_segment_name_errors,
}


def validate_object_meta(kind: Kind, meta: Message, *, old_meta: Message | None = None) -> list[FieldError]:
    """Kubernetes' ValidateObjectMeta, plus ValidateObjectMetaUpdate when ``old_meta`` is given."""
    name_rule = NAME_RULES.get(kind.kind, dns1123_subdomain_errors)
    errors: list[FieldError] = []
    if meta.generate_name:
        # A prefix may end in '-': the generated suffix follows it.
        prefix = meta.generate_name
        masked = prefix[:-1] + "a" if prefix.endswith("-") else prefix
        errors += invalid("metadata.generateName", prefix, name_rule(masked))
    if meta.name:
        errors += invalid("metadata.name", meta.name, name_rule(meta.name))
    elif old_meta is not None or not meta.generate_name:
        errors.append(required("metadata.name", "name or generateName is required"))
    if not kind.namespaced and meta.namespace:
        errors.append(forbidden("metadata.namespace", "not allowed on this type"))
    elif meta.namespace:
        errors += invalid("metadata.namespace", meta.namespace, dns1123_label_errors(meta.namespace))
    errors += labels_errors("metadata.labels", meta.labels)
    errors += annotations_errors("metadata.annotations", meta.annotations)
    errors += finalizer_errors("metadata.finalizers", meta.finalizers)
    errors += _owner_reference_errors(meta.owner_references)
    if old_meta is not None:
        errors += _immutable_meta_errors(meta, old_meta)
    return errors


def annotations_errors(path: str, annotations: Mapping[str, str]) -> list[FieldError]:
    """Annotation keys are qualified names (of any case); all of them together fit in 256 KiB."""
    errors: list[FieldError] = []
    for key in sorted(annotations):
        errors += invalid(path, key, qualified_name_errors(key.lower()))
    size = sum(len(key.encode()) + len(value.encode()) for key, value in annotations.items())
    if size > _MAX_ANNOTATIONS_BYTES:
        errors.append(FieldError(path, "Too long", f"must have at most {_MAX_ANNOTATIONS_BYTES} bytes"))
    return errors


def finalizer_errors(path: str, finalizers: Iterable[str]) -> list[FieldError]:
    """Finalizers are qualified names, and an unprefixed one must be a standard one."""
    errors: list[FieldError] = []
    for finalizer in finalizers:
        problems = qualified_name_errors(finalizer)
        errors += invalid(path, finalizer, problems)
        if not problems and "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
            errors += invalid(path, finalizer, ["name is neither a standard finalizer name nor is it fully qualified"])
    return errors


def _owner_reference_errors(references: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, reference in enumerate(references):
        path = f"metadata.ownerReferences[{i}]"
        version = reference.api_version.rpartition("/")[2]
        if not version:
            errors += invalid(f"{path}.apiVersion", reference.api_version, ["version must not be empty"])
        for field, json_name in (("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not getattr(reference, field):
                errors += invalid(f"{path}.{json_name}", "", ["must not be empty"])
    if sum(1 for reference in references if reference.controller) > 1:
        errors.append(FieldError("metadata.ownerReferences", "Invalid value",
                                 "Only one reference can have Controller set to true"))
    return errors


def _immutable_meta_errors(meta: Message, old_meta: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    for field, json_name in (("name", "name"), ("namespace", "namespace")):
        if getattr(meta, field) != getattr(old_meta, field):
            errors += invalid(f"metadata.{json_name}", getattr(meta, field), ["field is immutable"])
    # The registry copies these from the stored object when a client leaves
    # them out; only a different value is an attempt to change them.
    for field, json_name in (("uid", "uid"), ("creation_timestamp", "creationTimestamp")):
        if meta.HasField(field) and getattr(meta, field) != getattr(old_meta, field):
            errors += invalid(f"metadata.{json_name}", getattr(meta, field), ["field is immutable"])
    return errors
