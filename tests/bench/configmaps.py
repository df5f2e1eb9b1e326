"""The objects the benchmarks write: small ConfigMaps, and send-time stamps.

A benchmark's raw-store baseline must write what the API server would
write, so ``stored_value`` encodes a ConfigMap the way the server stores it
(server-set uid and creationTimestamp, no resourceVersion, deterministic
protobuf); its length is the value size both paths write.

The watch benchmark stamps each update with its sequence number and the
sender's ``time.time()`` in two annotations; a watcher in any process on the
same machine subtracts the stamp from its own clock on receipt.
"""

from __future__ import annotations

import uuid

from protos.api.v1 import core_pb2

NAMESPACE = "default"
# Sized so that the stored object (with uid, timestamp and stamps) is ~300 bytes.
_PAYLOAD = "x" * 150
SEQUENCE_ANNOTATION = "bench.sampan.io/seq"
SENT_ANNOTATION = "bench.sampan.io/sent"
WARMUP_SEQUENCE = -1


def small_configmap(name: str, *, namespace: str = NAMESPACE) -> core_pb2.ConfigMap:
    """A ConfigMap of ~300 bytes once stored."""
    configmap = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    configmap.metadata.name = name
    configmap.metadata.namespace = namespace
    configmap.metadata.labels["app.kubernetes.io/part-of"] = "sampan-bench"
    configmap.data["payload"] = _PAYLOAD
    return configmap


def stored_value(configmap: core_pb2.ConfigMap) -> bytes:
    """The bytes the API server would store for configmap."""
    stored = core_pb2.ConfigMap()
    stored.CopyFrom(configmap)
    stored.metadata.uid = str(uuid.uuid4())
    stored.metadata.creation_timestamp = "2025-01-01T00:00:00Z"
    stored.metadata.ClearField("resource_version")
    return stored.SerializeToString(deterministic=True)


def storage_key(name: str, *, namespace: str = NAMESPACE) -> str:
    """Where the API server keeps a ConfigMap (control.api.kinds' layout)."""
    return f"/registry/configmaps/{namespace}/{name}"


def stamp(configmap: core_pb2.ConfigMap, *, sequence: int, sent: float) -> None:
    annotations = configmap.metadata.annotations
    annotations[SEQUENCE_ANNOTATION] = str(sequence)
    annotations[SENT_ANNOTATION] = repr(sent)


def read_stamp(configmap: core_pb2.ConfigMap) -> tuple[int, float] | None:
    """(sequence, send time) of a stamped ConfigMap, or None for any other."""
    annotations = configmap.metadata.annotations
    if SEQUENCE_ANNOTATION not in annotations:
        return None
    return int(annotations[SEQUENCE_ANNOTATION]), float(annotations[SENT_ANNOTATION])
