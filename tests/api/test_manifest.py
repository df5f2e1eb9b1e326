"""Manifests (control/api/manifest.py): YAML and JSON to typed messages and back.

Covered:
- reading streams: several documents, empty documents, JSON, ``kind: List``;
  and the documents it refuses, each named by document, line and path:
  duplicate keys, non-string keys, non-mapping documents, unsupported tags,
  aliases expanding past the budget (billion laughs, fast and small), nesting
  past 100 levels (a 10,000-deep document, without RecursionError), input
  over 3 MiB;
- strict conversion: unknown fields at any depth, JSON type errors with path
  and expected type, every error of a document reported at once, nulls,
  presence of false and 0, IntOrString, quantities written as numbers,
  base64 bytes, explicit JSON names;
- the way back: only set fields, Kubernetes' key order, and the round trip of
  every manifest under tests/api/manifests/ (Kubernetes documentation
  examples plus a pod using every PodSpec feature);
- printing: block YAML with readable multi-line strings, JSON; and the text
  of FieldError and ManifestError.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from control.api import kinds
from control.api.manifest import (
    MAX_MANIFEST_BYTES,
    FieldError,
    ManifestError,
    dump_json,
    dump_yaml,
    from_dict,
    kind_of,
    load_documents,
    to_dict,
    to_message,
)

MANIFESTS = Path(__file__).parent / "manifests"
POD = kinds.by_kind("Pod")
SECRET = kinds.by_kind("Secret")


def manifest_documents() -> list[Any]:
    return [
        pytest.param(document, id=f"{path.name}[{i}]")
        for path in sorted(MANIFESTS.iterdir())
        for i, document in enumerate(load_documents(path.read_text(), source=path.name))
    ]


def without_nulls_and_empties(value: Any) -> Any:
    """What a round trip may drop: nulls, and lists and maps left empty."""
    if isinstance(value, dict):
        pruned = {key: without_nulls_and_empties(item) for key, item in value.items() if item is not None}
        return {key: item for key, item in pruned.items() if item not in ({}, []) or value[key] == {}}
    if isinstance(value, list):
        return [without_nulls_and_empties(item) for item in value]
    return value


def conversion_errors(obj: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        to_message(obj)
    return [str(error) for error in caught.value.errors]


def a_pod(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25", **container}]},
    }


# ------------------------------------------------------------ reading YAML


def test_a_stream_yields_every_document_in_order() -> None:
    stream = "kind: A\n---\nkind: B\n---\nkind: C\n"
    assert [doc["kind"] for doc in load_documents(stream)] == ["A", "B", "C"]


def test_empty_documents_are_skipped() -> None:
    assert load_documents("---\n---\nkind: A\n---\n# only a comment\n") == [{"kind": "A"}]


def test_a_json_document_is_read() -> None:
    document = {"kind": "Pod", "spec": {"containers": []}}
    assert load_documents(json.dumps(document)) == [document]


def test_json_indented_with_tabs_is_read() -> None:
    text = json.dumps({"kind": "Pod", "metadata": {"name": "web"}}, indent="\t")
    assert load_documents(text) == [{"kind": "Pod", "metadata": {"name": "web"}}]


def test_bytes_are_read_as_utf8() -> None:
    assert load_documents("metadata: {name: café}".encode()) == [{"metadata": {"name": "café"}}]


def test_a_list_contributes_its_items() -> None:
    stream = "kind: A\n---\napiVersion: v1\nkind: List\nitems:\n- kind: B\n- kind: C\n"
    assert [doc["kind"] for doc in load_documents(stream)] == ["A", "B", "C"]


def test_a_list_item_that_is_not_a_mapping_is_rejected() -> None:
    with pytest.raises(ManifestError, match=r"document 0: items\[1\]: a manifest must be a mapping, got number 3"):
        load_documents("kind: List\nitems:\n- kind: A\n- 3\n")


def test_a_document_that_is_not_a_mapping_is_rejected() -> None:
    with pytest.raises(ManifestError) as caught:
        load_documents("kind: A\n---\n- a\n- b\n")
    assert caught.value.document == 1
    assert "a manifest must be a mapping, got array" in str(caught.value)


def test_a_duplicate_key_is_rejected_with_document_line_and_path() -> None:
    stream = "kind: A\n---\nmetadata:\n  labels:\n    app: a\n    app: b\n"
    with pytest.raises(ManifestError) as caught:
        load_documents(stream, source="app.yaml")
    error = caught.value
    # Lines count from the start of the stream, as an editor shows them.
    assert (error.source, error.document, error.line) == ("app.yaml", 1, 6)
    assert error.errors == [FieldError("metadata.labels.app", "Duplicate value", "key already set at line 5", "app")]
    assert str(error) == (
        'app.yaml, document 1, line 6: metadata.labels.app: Duplicate value: "app": key already set at line 5')


def test_a_duplicate_key_inside_a_list_names_the_index() -> None:
    with pytest.raises(ManifestError, match=r"spec\.containers\[1\]\.image: Duplicate value"):
        load_documents("spec:\n  containers:\n  - name: a\n  - name: b\n    image: x\n    image: y\n")


@pytest.mark.parametrize("key", ["1", "true", "null", "1.5"])
def test_a_mapping_key_that_is_not_a_string_is_rejected(key: str) -> None:
    with pytest.raises(ManifestError, match="mapping keys must be strings"):
        load_documents(f"metadata:\n  labels:\n    {key}: x\n")


def test_a_quoted_key_that_looks_like_a_number_is_a_string() -> None:
    assert load_documents('data:\n  "1": x\n') == [{"data": {"1": "x"}}]


def test_a_collection_as_a_mapping_key_is_rejected() -> None:
    with pytest.raises(ManifestError, match="mapping keys must be strings, not collections"):
        load_documents("? [a, b]\n: x\n")


def test_a_python_object_tag_is_rejected() -> None:
    with pytest.raises(ManifestError, match="unsupported tag"):
        load_documents("a: !!python/object/apply:os.system ['true']\n")


def test_a_syntax_error_names_the_line() -> None:
    with pytest.raises(ManifestError) as caught:
        load_documents("kind: Pod\nspec: [a, b\nmetadata: {}\n")
    assert caught.value.line is not None and caught.value.line >= 2


def test_timestamps_stay_the_strings_they_were_written_as() -> None:
    [doc] = load_documents("firstTimestamp: 2018-11-15T20:46:46Z\n")
    assert doc == {"firstTimestamp": "2018-11-15T20:46:46Z"}


def test_yaml_1_1_scalars_mean_what_they_mean_to_kubernetes() -> None:
    [doc] = load_documents("a: yes\nb: 0644\nc: ~\n")
    assert doc == {"a": True, "b": 420, "c": None}


def test_aliases_and_merge_keys_within_budget_are_expanded() -> None:
    stream = "base: &base {app: web, tier: front}\nlabels:\n  <<: *base\n  tier: back\ncopy: *base\n"
    [doc] = load_documents(stream)
    assert doc["labels"] == {"app": "web", "tier": "back"}
    assert doc["copy"] == {"app": "web", "tier": "front"}
    assert doc["copy"] is not doc["base"]  # expanded, not shared


def test_a_recursive_alias_is_rejected() -> None:
    with pytest.raises(ManifestError, match=r"undefined or recursive alias \*a"):
        load_documents("a: &a [*a]\n")


def test_an_alias_bomb_is_rejected_quickly_and_in_little_memory() -> None:
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        levels.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = "\n".join(levels) + "\n"
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ManifestError, match="aliases expand to more than"):
            load_documents(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 5 * 1024 * 1024


def test_ten_thousand_nested_lists_are_rejected_without_recursion_error() -> None:
    with pytest.raises(ManifestError, match="nesting is deeper than 100 levels"):
        load_documents("[" * 10_000 + "]" * 10_000)


def test_ten_thousand_nested_mappings_are_rejected_without_recursion_error() -> None:
    with pytest.raises(ManifestError, match="nesting is deeper than 100 levels"):
        load_documents("{a: " * 10_000 + "}" * 10_000)


def test_nesting_of_exactly_100_levels_is_accepted() -> None:
    [doc] = load_documents("{a: " * 99 + "[1]" + "}" * 99)
    for _ in range(99):
        doc = doc["a"]
    assert doc == [1]


def test_input_over_3_mib_is_rejected() -> None:
    text = "data:\n  big: " + "x" * MAX_MANIFEST_BYTES + "\n"
    with pytest.raises(ManifestError, match=f"Too long: must have at most {MAX_MANIFEST_BYTES} bytes"):
        load_documents(text)


def test_bytes_over_3_mib_are_rejected() -> None:
    with pytest.raises(ManifestError, match="Too long"):
        load_documents(b" " * (MAX_MANIFEST_BYTES + 1))


def test_bytes_that_are_not_utf8_are_rejected() -> None:
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_documents(b"kind: \xff\n")


# ------------------------------------------------------- strict conversion


@pytest.mark.parametrize("document", manifest_documents())
def test_a_real_manifest_round_trips(document: dict[str, Any]) -> None:
    assert to_dict(to_message(document)) == without_nulls_and_empties(document)


@pytest.mark.parametrize("document", manifest_documents())
def test_a_real_manifest_round_trips_through_printed_yaml(document: dict[str, Any]) -> None:
    printed = dump_yaml(to_dict(to_message(document)))
    assert load_documents(printed) == [without_nulls_and_empties(document)]


@pytest.mark.parametrize("document", manifest_documents())
def test_a_real_manifest_round_trips_through_printed_json(document: dict[str, Any]) -> None:
    printed = dump_json(to_dict(to_message(document)))
    assert load_documents(printed) == [without_nulls_and_empties(document)]


def test_the_kind_is_chosen_by_api_version_and_kind() -> None:
    lease = to_message({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "a"}})
    assert lease.DESCRIPTOR.full_name == "sampan.api.v1.Lease"


def test_missing_api_version_and_kind_are_both_named() -> None:
    assert conversion_errors({"metadata": {"name": "a"}}) == [
        "apiVersion: Required value: every manifest must set apiVersion",
        "kind: Required value: every manifest must set kind",
    ]


def test_an_unknown_kind_is_rejected() -> None:
    assert conversion_errors({"apiVersion": "v1", "kind": "Gizmo"}) == [
        'kind: Invalid value: "Gizmo": no matches for kind "Gizmo" in version "v1"']


def test_a_kind_under_the_wrong_api_version_is_rejected() -> None:
    with pytest.raises(ManifestError, match='no matches for kind "Lease" in version "v1"'):
        kind_of({"apiVersion": "v1", "kind": "Lease"})


def test_from_dict_rejects_a_manifest_of_another_kind() -> None:
    with pytest.raises(ManifestError, match='kind: Invalid value: "Pod": must be "Secret"'):
        from_dict(SECRET, {"apiVersion": "v1", "kind": "Pod"})


def test_an_unknown_field_is_named_by_its_full_path() -> None:
    pod = a_pod()
    pod["spec"]["containers"].append({
        "name": "sidecar", "image": "busybox", "livenessProbe": {"httpGet": {"portt": 8080}},
    })
    assert conversion_errors(pod) == ['unknown field "spec.containers[1].livenessProbe.httpGet.portt"']


def test_a_misspelt_top_level_field_is_unknown() -> None:
    assert conversion_errors({**a_pod(), "spce": {}}) == ['unknown field "spce"']


def test_the_proto_field_name_is_not_a_json_name() -> None:
    assert conversion_errors(a_pod(ports=[{"container_port": 80}])) == [
        'unknown field "spec.containers[0].ports[0].container_port"']


def test_field_names_are_case_sensitive() -> None:
    assert conversion_errors(a_pod(Image="nginx")) == ['unknown field "spec.containers[0].Image"']


def test_explicit_json_names_are_used() -> None:
    pod = to_message({"apiVersion": "v1", "kind": "Pod", "status": {"podIP": "10.0.0.1", "hostIP": "10.0.0.2"}})
    assert (pod.status.pod_ip, pod.status.host_ip) == ("10.0.0.1", "10.0.0.2")
    endpoints = {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}
    node = to_message({"apiVersion": "v1", "kind": "Node", "status": endpoints})
    assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250


def test_a_string_for_an_integer_is_a_type_error() -> None:
    assert conversion_errors(a_pod(ports=[{"containerPort": "80"}])) == [
        'spec.containers[0].ports[0].containerPort: expected integer, got string "80"']


def test_a_bool_for_an_integer_is_a_type_error() -> None:
    pod = a_pod()
    pod["spec"]["terminationGracePeriodSeconds"] = True
    assert conversion_errors(pod) == ["spec.terminationGracePeriodSeconds: expected integer, got boolean true"]


def test_a_fraction_for_an_integer_is_a_type_error() -> None:
    assert conversion_errors(a_pod(ports=[{"containerPort": 80.5}])) == [
        "spec.containers[0].ports[0].containerPort: expected integer, got number 80.5"]


def test_an_integer_outside_int32_is_a_type_error() -> None:
    assert conversion_errors(a_pod(ports=[{"containerPort": 2**31}])) == [
        "spec.containers[0].ports[0].containerPort: expected 32-bit integer, got number 2147483648 (out of range)"]


def test_a_bool_for_a_string_is_a_type_error() -> None:
    assert conversion_errors(a_pod(image=True)) == ["spec.containers[0].image: expected string, got boolean true"]


def test_a_number_for_a_string_is_a_type_error() -> None:
    assert conversion_errors(a_pod(workingDir=1)) == ["spec.containers[0].workingDir: expected string, got number 1"]


def test_a_string_for_a_bool_is_a_type_error() -> None:
    assert conversion_errors(a_pod(tty="true")) == ['spec.containers[0].tty: expected boolean, got string "true"']


def test_a_scalar_for_an_object_is_a_type_error() -> None:
    assert conversion_errors(a_pod(resources="big")) == [
        'spec.containers[0].resources: expected object, got string "big"']


def test_a_repeated_field_requires_a_list() -> None:
    assert conversion_errors(a_pod(command="sleep 10")) == [
        'spec.containers[0].command: expected array, got string "sleep 10"']


def test_a_map_field_requires_a_mapping() -> None:
    pod = a_pod()
    pod["metadata"]["labels"] = ["app=web"]
    assert conversion_errors(pod) == ["metadata.labels: expected object, got array"]


def test_an_unquoted_label_value_that_is_not_a_string_is_a_type_error() -> None:
    pod = a_pod()
    pod["metadata"]["labels"] = {"canary": True, "replicas": 1}
    assert conversion_errors(pod) == [
        "metadata.labels[canary]: expected string, got boolean true",
        "metadata.labels[replicas]: expected string, got number 1",
    ]


def test_an_env_value_of_yes_is_a_bool_and_so_a_type_error() -> None:
    [document] = load_documents(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    env:\n    - name: X\n      value: yes\n")
    assert conversion_errors(document) == ["spec.containers[0].env[0].value: expected string, got boolean true"]


def test_every_error_in_a_manifest_is_listed() -> None:
    pod = a_pod(imagee="nginx", ports=[{"containerPort": "80", "protocl": "TCP"}], tty="yes")
    pod["spec"]["restartPolicy"] = 1
    pod["metadata"]["labels"] = {"ok": "yes", "bad": False}
    paths = [error.path for error in pytest.raises(ManifestError, to_message, pod).value.errors]
    assert sorted(paths) == sorted([
        "metadata.labels[bad]",
        "spec.containers[0].imagee",
        "spec.containers[0].ports[0].containerPort",
        "spec.containers[0].ports[0].protocl",
        "spec.containers[0].tty",
        "spec.restartPolicy",
    ])


def test_null_values_leave_fields_unset() -> None:
    pod = to_message({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "creationTimestamp": None},
                      "spec": {"nodeName": None, "containers": None}})
    assert not pod.metadata.HasField("creation_timestamp")
    assert not pod.spec.HasField("node_name")
    assert to_dict(pod) == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {}}


def test_false_and_zero_are_kept_as_set_values() -> None:
    pod = to_message(a_pod(tty=False, ports=[{"containerPort": 80, "hostPort": 0}]))
    container = pod.spec.containers[0]
    assert container.HasField("tty") and container.ports[0].HasField("host_port")
    assert to_dict(pod)["spec"]["containers"][0]["tty"] is False
    assert to_dict(pod)["spec"]["containers"][0]["ports"][0]["hostPort"] == 0


def test_an_empty_object_is_set_and_printed_back() -> None:
    pod = to_message({"apiVersion": "v1", "kind": "Pod", "spec": {"volumes": [{"name": "a", "emptyDir": {}}]}})
    assert pod.spec.volumes[0].HasField("empty_dir")
    assert to_dict(pod)["spec"]["volumes"] == [{"name": "a", "emptyDir": {}}]


def test_an_int_or_string_takes_a_bare_integer_or_string() -> None:
    pod = to_message(a_pod(livenessProbe={"tcpSocket": {"port": 8080}}, readinessProbe={"tcpSocket": {"port": "http"}}))
    container = pod.spec.containers[0]
    assert container.liveness_probe.tcp_socket.port.int_value == 8080
    assert container.readiness_probe.tcp_socket.port.str_value == "http"
    assert to_dict(pod)["spec"]["containers"][0]["readinessProbe"] == {"tcpSocket": {"port": "http"}}


def test_an_int_or_string_rejects_other_types() -> None:
    assert conversion_errors(a_pod(livenessProbe={"tcpSocket": {"port": True}})) == [
        "spec.containers[0].livenessProbe.tcpSocket.port: expected integer or string, got boolean true"]


@pytest.mark.parametrize(("written", "stored"), [(1, "1"), (0.5, "500m"), (2.0, "2"), (1000, "1k"), ("250m", "250m")])
def test_a_quantity_may_be_written_as_a_number(written: Any, stored: str) -> None:
    pod = to_message(a_pod(resources={"limits": {"cpu": written}}))
    assert pod.spec.containers[0].resources.limits["cpu"] == stored


def test_node_capacity_and_empty_dir_size_accept_numbers() -> None:
    node = to_message({"apiVersion": "v1", "kind": "Node", "status": {"capacity": {"cpu": 4, "pods": 110}}})
    assert dict(node.status.capacity) == {"cpu": "4", "pods": "110"}
    pod = to_message({"apiVersion": "v1", "kind": "Pod",
                      "spec": {"volumes": [{"name": "a", "emptyDir": {"sizeLimit": 1000000}}]}})
    assert pod.spec.volumes[0].empty_dir.size_limit == "1M"


def test_a_quantity_rejects_a_bool() -> None:
    assert conversion_errors(a_pod(resources={"requests": {"memory": True}})) == [
        "spec.containers[0].resources.requests[memory]: expected quantity (string or number), got boolean true"]


def test_a_number_outside_a_quantity_field_is_still_a_type_error() -> None:
    assert conversion_errors({"apiVersion": "v1", "kind": "ConfigMap", "data": {"replicas": 3}}) == [
        "data[replicas]: expected string, got number 3"]


def test_bytes_are_read_from_base64() -> None:
    secret = to_message({"apiVersion": "v1", "kind": "Secret", "data": {"username": "YWRtaW4="}})
    assert secret.data["username"] == b"admin"


def test_base64_may_be_wrapped_over_lines() -> None:
    secret = to_message({"apiVersion": "v1", "kind": "Secret", "data": {"cert": "YWRt\naW4="}})
    assert secret.data["cert"] == b"admin"


def test_invalid_base64_is_an_error_naming_the_key() -> None:
    errors = conversion_errors({"apiVersion": "v1", "kind": "Secret", "data": {"password": "not base64!"}})
    assert len(errors) == 1 and errors[0].startswith("data[password]: Invalid value: illegal base64 data")


def test_base64_for_binary_data_must_be_a_string() -> None:
    assert conversion_errors({"apiVersion": "v1", "kind": "ConfigMap", "binaryData": {"blob": 5}}) == [
        "binaryData[blob]: expected base64 string, got number 5"]


# ----------------------------------------------------------------- to_dict


def test_to_dict_puts_api_version_kind_metadata_spec_first_and_status_last() -> None:
    pod = to_message({"status": {"phase": "Running"}, "spec": {"nodeName": "n"}, "metadata": {"name": "a"},
                      "kind": "Pod", "apiVersion": "v1"})
    assert list(to_dict(pod)) == ["apiVersion", "kind", "metadata", "spec", "status"]


def test_to_dict_writes_fields_in_proto_order() -> None:
    pod = to_message(a_pod(ports=[{"protocol": "TCP", "containerPort": 80, "name": "http"}]))
    assert list(to_dict(pod)["spec"]["containers"][0]["ports"][0]) == ["name", "containerPort", "protocol"]


def test_to_dict_sorts_map_keys() -> None:
    pod = to_message({"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"b": "2", "a": "1"}}})
    assert list(to_dict(pod)["metadata"]["labels"]) == ["a", "b"]


def test_to_dict_omits_unset_fields() -> None:
    assert to_dict(kinds.by_kind("Pod").new()) == {}


def test_to_dict_writes_bytes_as_base64() -> None:
    secret = SECRET.new()
    secret.data["key"] = b"\x00\xff"
    assert to_dict(secret) == {"data": {"key": "AP8="}}


# ------------------------------------------------------------------ output


def test_dump_yaml_is_block_style_in_the_given_order() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}]}}
    text = dump_yaml(pod)
    assert text == "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n"


def test_dump_yaml_writes_multi_line_strings_as_literal_blocks() -> None:
    text = dump_yaml({"data": {"nginx.conf": "server {\n  listen 80;\n}\n"}})
    assert text == "data:\n  nginx.conf: |\n    server {\n      listen 80;\n    }\n"


def test_dump_yaml_quotes_strings_that_would_read_back_as_other_types() -> None:
    obj = {"a": "yes", "b": "0644", "c": "1.5", "d": "null", "e": "2018-11-15T20:46:46Z"}
    assert load_documents(dump_yaml(obj)) == [obj]


def test_dump_json_is_indented_json() -> None:
    assert dump_json({"kind": "Pod"}) == '{\n    "kind": "Pod"\n}\n'


# ------------------------------------------------------------ error texts


def test_a_field_error_prints_like_kubernetes() -> None:
    error = FieldError("metadata.name", "Invalid value", "a lowercase RFC 1123 subdomain must ...", "Web")
    assert str(error) == 'metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must ...'


def test_a_required_value_error_omits_the_value() -> None:
    assert str(FieldError("spec.containers[0].image", "Required value")) == "spec.containers[0].image: Required value"


def test_an_unsupported_value_error_lists_the_supported_values() -> None:
    error = FieldError("spec.restartPolicy", "Unsupported value", 'supported values: "Always", "Never"', "Sometimes")
    assert str(error) == 'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never"'


def test_a_numeric_value_is_printed_unquoted() -> None:
    assert str(FieldError("spec.x", "Invalid value", "must be 1", 2)) == "spec.x: Invalid value: 2: must be 1"


def test_an_unknown_field_error_prints_like_strict_decoding() -> None:
    assert str(FieldError("spec.containers[0].imagee", "unknown field")) == 'unknown field "spec.containers[0].imagee"'


def test_a_manifest_error_lists_several_errors_on_one_line() -> None:
    error = ManifestError([FieldError("a", "Required value"), FieldError("b", "unknown field")])
    assert str(error) == '[a: Required value, unknown field "b"]'
    assert "\n" not in str(error)
