"""-o name, -o yaml and -o json: one object prints as itself, several as
kubectl's List (apiVersion v1, items, kind List, metadata.resourceVersion "")."""

from __future__ import annotations

import json

import yaml

from control.api import manifest
from control.cli.output import format_objects
from protos.api.v1 import core_pb2


def configmap(name: str):
    return manifest.to_message({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}})


def test_name_output_is_kind_slash_name_per_line():
    assert format_objects([configmap("a"), configmap("b")], output="name", single=False) == \
        "configmap/a\nconfigmap/b\n"


def test_name_output_qualifies_kinds_outside_the_core_group():
    lease = manifest.to_message({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                 "metadata": {"name": "node-1"}})
    assert format_objects([lease], output="name", single=False) == "lease.coordination.k8s.io/node-1\n"


def test_one_named_object_prints_as_itself():
    document = yaml.safe_load(format_objects([configmap("a")], output="yaml", single=True))
    assert document == {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}}


def test_a_listing_prints_as_a_kubectl_list():
    document = yaml.safe_load(format_objects([configmap("a"), configmap("b")], output="yaml", single=False))
    assert list(document) == ["apiVersion", "items", "kind", "metadata"]
    assert (document["apiVersion"], document["kind"], document["metadata"]) == ("v1", "List", {"resourceVersion": ""})
    assert [item["metadata"]["name"] for item in document["items"]] == ["a", "b"]


def test_a_listing_of_one_object_is_still_a_list():
    document = json.loads(format_objects([configmap("a")], output="json", single=False))
    assert document["kind"] == "List" and len(document["items"]) == 1


def test_objects_without_type_meta_get_apiversion_and_kind():
    bare = core_pb2.Namespace()
    bare.metadata.name = "demo"
    document = json.loads(format_objects([bare], output="json", single=True))
    assert (document["apiVersion"], document["kind"]) == ("v1", "Namespace")
