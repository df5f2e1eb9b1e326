"""The audit log (control/auth/audit.py): one JSON line per mutating request.

The sink alone: which verbs are recorded, the fields of a line, the levels
(none, metadata, request), Secret values redacted at every level, a write
failure that does not fail the request. Then a real control service with
``audit_log_path``: creates, updates, patches, deletes and a refused create
reach the file, reads do not, and a Secret's value never does.
"""

from __future__ import annotations

import io
import json

import grpc
import pytest

from control.api import errors, kinds
from control.auth.audit import AuditLevel, AuditLog, redacted
from control.auth.identity import authenticated
from control.client import Client
from control.server.gate import RequestInfo
from control.service import ControlConfig, ControlService
from protos.api.v1 import core_pb2

ALICE = authenticated("alice", ("dev",))


def secret(name: str, value: bytes) -> core_pb2.Secret:
    obj = core_pb2.Secret(api_version="v1", kind="Secret")
    obj.metadata.name, obj.metadata.namespace = name, "default"
    obj.data["password"] = value
    obj.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"] = '{"data":{"password":"c2VjcmV0"}}'
    return obj


def request(verb: str, obj=None, *, kind: str = "Secret", name: str = "db") -> RequestInfo:
    return RequestInfo(user=ALICE, verb=verb, kind=kinds.by_kind(kind), namespace="default", name=name,
                       object=obj, started=0.0)


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_mutating_request_is_one_line_with_who_what_and_how_it_ended() -> None:
    out = io.StringIO()
    AuditLog(out, clock=lambda: 1_700_000_000.25).record(request("create", kind="Pod", name="web"),
                                                         grpc.StatusCode.PERMISSION_DENIED)
    [entry] = lines(out)
    assert entry["timestamp"] == "2023-11-14T22:13:20.250000Z"
    assert {key: entry[key] for key in ("level", "user", "groups", "verb", "kind", "resource", "subresource",
                                        "namespace", "name", "code")} == {
        "level": "Metadata", "user": "alice", "groups": ["dev", "system:authenticated"], "verb": "create",
        "kind": "Pod", "resource": "pods", "subresource": "", "namespace": "default", "name": "web",
        "code": "PERMISSION_DENIED"}
    assert entry["latencyMs"] >= 0 and entry["auditID"]
    assert "requestObject" not in entry


def test_reads_are_not_recorded_and_level_none_records_nothing() -> None:
    out = io.StringIO()
    sink = AuditLog(out)
    for verb in ("get", "list", "watch", "discovery"):
        sink.record(request(verb), grpc.StatusCode.OK)
    AuditLog(out, level=AuditLevel.NONE).record(request("delete"), grpc.StatusCode.OK)
    assert out.getvalue() == ""


def test_level_request_adds_the_object_with_secret_values_redacted() -> None:
    out = io.StringIO()
    AuditLog(out, level=AuditLevel.REQUEST).record(request("update", secret("db", b"hunter2")), grpc.StatusCode.OK)
    [entry] = lines(out)
    assert entry["level"] == "Request"
    assert entry["requestObject"]["data"] == {"password": "<redacted>"}
    annotations = entry["requestObject"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/last-applied-configuration"] == "<redacted>"
    assert "aHVudGVyMg" not in out.getvalue() and "c2VjcmV0" not in out.getvalue()


def test_other_kinds_are_recorded_as_sent() -> None:
    config = {"kind": "ConfigMap", "data": {"mode": "fast"}}
    assert redacted(config) == config


def test_a_failed_write_is_logged_not_raised(caplog) -> None:
    out = io.StringIO()
    sink = AuditLog(out)
    out.close()
    sink.record(request("delete"), grpc.StatusCode.OK)
    assert "cannot write the audit log" in caplog.text


def test_an_unknown_level_is_refused_naming_the_flag() -> None:
    with pytest.raises(ValueError, match="--audit-level: Unsupported value: 'all'"):
        AuditLevel.parse("all")


async def test_a_service_writes_its_mutating_requests_to_the_file(tmp_path) -> None:
    path = tmp_path / "audit.log"
    svc = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="",
        shutdown_grace=0.2, leader_election=None, audit_log_path=str(path), audit_level="request"))
    await svc.start()
    try:
        async with Client.connect(f"127.0.0.1:{svc.port}") as api:
            created = await api.create(secret("db", b"hunter2-plain"))
            with pytest.raises(errors.AlreadyExistsError):
                await api.create(secret("db", b"hunter2-plain"))
            await api.get("Secret", "db", namespace="default")
            await api.list("Secret", namespace="default")
            created.metadata.labels["tier"] = "data"
            await api.update(created)
            await api.patch("Secret", "db", {"metadata": {"labels": {"tier": "cache"}}}, namespace="default")
            await api.delete("Secret", "db", namespace="default")
    finally:
        await svc.stop()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    ours = [(e["verb"], e["kind"], e["name"], e["code"]) for e in entries if e["kind"] == "Secret"]
    assert ours == [("create", "Secret", "db", "OK"), ("create", "Secret", "db", "ALREADY_EXISTS"),
                    ("update", "Secret", "db", "OK"), ("patch", "Secret", "db", "OK"),
                    ("delete", "Secret", "db", "OK")]
    assert {e["user"] for e in entries} == {"system:plaintext-admin"}
    assert b"hunter2-plain" not in path.read_bytes() and b"aHVudGVyMi1wbGFpbg" not in path.read_bytes()
    assert path.stat().st_mode & 0o077 == 0
