"""The generated protobuf code is what protoc makes of the .proto files today."""

from __future__ import annotations

from protos import generate


def test_generated_code_matches_the_proto_sources():
    assert generate.stale_files() == [], "run `python -m protos.generate` and commit the result"


def test_proto_files_register_under_package_qualified_names():
    # Debian's etcd clients register a bare "auth.proto"; ours must never clash.
    from protos.agent.v1 import agent_pb2
    from protos.api.v1 import api_pb2, core_pb2, meta_pb2

    names = {m.DESCRIPTOR.name for m in (api_pb2, core_pb2, meta_pb2, agent_pb2)}
    assert names == {"protos/api/v1/api.proto", "protos/api/v1/core.proto", "protos/api/v1/meta.proto",
                     "protos/agent/v1/agent.proto"}
