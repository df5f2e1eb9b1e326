"""Pod volume rules: each volume has a unique name and exactly one source.

``volumes_errors`` also returns the volume names, which the container rules
need to check that every volume mount names a volume. Paths a volume writes
files to (items, projections, downward API files) stay inside the volume.
"""

from __future__ import annotations

from typing import Sequence

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import dns1123_label_errors, dns1123_subdomain_errors
from control.server.validation.downward_api import field_ref_errors, resource_field_ref_errors
from control.server.validation.field_errors import (
    forbidden, invalid, name_errors, one_of, quantity_errors, required, required_local_path_errors,
)

_FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"
_HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket")
_VOLUME_SOURCES = (
    ("host_path", "hostPath"), ("empty_dir", "emptyDir"), ("secret", "secret"), ("config_map", "configMap"),
    ("persistent_volume_claim", "persistentVolumeClaim"), ("nfs", "nfs"), ("downward_api", "downwardAPI"),
    ("projected", "projected"),
)
_PROJECTION_SOURCES = (
    ("secret", "secret"), ("config_map", "configMap"), ("downward_api", "downwardAPI"),
    ("service_account_token", "serviceAccountToken"),
)


def volumes_errors(volumes: Sequence[Message], *, spec_path: str = "spec") -> tuple[list[FieldError], set[str]]:
    """The broken rules of a pod spec's volumes (at ``spec_path``), and the names of the volumes it declares."""
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        path = f"{spec_path}.volumes[{i}]"
        errors += _volume_source_errors(path, volume)
        errors += name_errors(f"{path}.name", volume.name, dns1123_label_errors)
        if volume.name in names:
            errors.append(FieldError(f"{path}.name", "Duplicate value", value=volume.name))
        names.add(volume.name)
    return errors, names


def _volume_source_errors(path: str, volume: Message) -> list[FieldError]:
    given = [(field, json_name) for field, json_name in _VOLUME_SOURCES if volume.HasField(field)]
    if not given:
        return [required(path, "must specify a volume type")]
    errors = [forbidden(f"{path}.{json_name}", "may not specify more than 1 volume type")
              for _, json_name in given[1:]]
    field, json_name = given[0]
    source, item = getattr(volume, field), f"{path}.{json_name}"
    if field == "host_path":
        if not source.path:
            errors.append(required(f"{item}.path"))
        elif ".." in source.path.split("/"):
            errors += invalid(f"{item}.path", source.path, ["must not contain '..'"])
        if source.HasField("type"):
            errors += one_of(f"{item}.type", source.type, _HOST_PATH_TYPES)
    elif field == "empty_dir" and source.HasField("size_limit"):
        errors += quantity_errors(f"{item}.sizeLimit", source.size_limit)
    elif field in ("secret", "config_map"):
        name_field, name_json = ("secret_name", "secretName") if field == "secret" else ("name", "name")
        errors += name_errors(f"{item}.{name_json}", getattr(source, name_field), dns1123_subdomain_errors)
        errors += _key_to_path_errors(f"{item}.items", source.items)
        errors += _file_mode_errors(f"{item}.defaultMode", source)
    elif field == "persistent_volume_claim" and not source.claim_name:
        errors.append(required(f"{item}.claimName"))
    elif field == "nfs":
        if not source.server:
            errors.append(required(f"{item}.server"))
        if not source.path:
            errors.append(required(f"{item}.path"))
        elif not source.path.startswith("/"):
            errors += invalid(f"{item}.path", source.path, ["must be an absolute path"])
    elif field == "downward_api":
        errors += _downward_api_items_errors(f"{item}.items", source.items)
        errors += _file_mode_errors(f"{item}.defaultMode", source)
    elif field == "projected":
        errors += _projection_errors(f"{item}.sources", source.sources)
        errors += _file_mode_errors(f"{item}.defaultMode", source)
    return errors


def _file_mode_errors(path: str, source: Message) -> list[FieldError]:
    field = "mode" if "mode" in source.DESCRIPTOR.fields_by_name else "default_mode"
    value = getattr(source, field)
    if source.HasField(field) and not 0 <= value <= 0o777:
        return invalid(path, value, [_FILE_MODE_MSG])
    return []


def _key_to_path_errors(path: str, items: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        if not item.key:
            errors.append(required(f"{item_path}.key"))
        errors += required_local_path_errors(f"{item_path}.path", item.path)
        errors += _file_mode_errors(f"{item_path}.mode", item)
    return errors


def _downward_api_items_errors(path: str, items: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        errors += required_local_path_errors(f"{item_path}.path", item.path)
        if item.HasField("field_ref"):
            errors += field_ref_errors(f"{item_path}.fieldRef", item.field_ref, volume=True)
            if item.HasField("resource_field_ref"):
                errors += invalid(item_path, "resource",
                                  ["fieldRef and resourceFieldRef can not be specified simultaneously"])
        elif item.HasField("resource_field_ref"):
            errors += resource_field_ref_errors(f"{item_path}.resourceFieldRef", item.resource_field_ref, volume=True)
        else:
            errors.append(required(item_path, "one of fieldRef and resourceFieldRef is required"))
        errors += _file_mode_errors(f"{item_path}.mode", item)
    return errors


def _projection_errors(path: str, sources: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, source in enumerate(sources):
        item = f"{path}[{i}]"
        given = [(field, json_name) for field, json_name in _PROJECTION_SOURCES if source.HasField(field)]
        if not given:
            errors.append(required(item, "must specify exactly 1 volume type"))
            continue
        errors += [forbidden(f"{item}.{json_name}", "may not specify more than 1 volume type per source")
                   for _, json_name in given[1:]]
        field, json_name = given[0]
        projection, projection_path = getattr(source, field), f"{item}.{json_name}"
        if field in ("secret", "config_map"):
            errors += name_errors(f"{projection_path}.name", projection.name, dns1123_subdomain_errors)
            errors += _key_to_path_errors(f"{projection_path}.items", projection.items)
        elif field == "downward_api":
            errors += _downward_api_items_errors(f"{projection_path}.items", projection.items)
        else:
            errors += required_local_path_errors(f"{projection_path}.path", projection.path)
            seconds = projection.expiration_seconds
            if projection.HasField("expiration_seconds") and seconds < 600:
                errors += invalid(f"{projection_path}.expirationSeconds", seconds,
                                  ["may not specify a duration less than 10 minutes"])
            elif seconds > 2**32:
                errors += invalid(f"{projection_path}.expirationSeconds", seconds,
                                  ["may not specify a duration larger than 2^32 seconds"])
    return errors
