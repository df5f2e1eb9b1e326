"""Object metadata rules (control/server/validation/meta.py), for every kind:
names and generateName, namespaces, labels, annotations, finalizers, owner
references, and the identity fields immutable on update.
"""

from __future__ import annotations

import pytest

from tests.server.validation.support import (
    LABEL_MESSAGE, QUALIFIED_NAME_PART_MESSAGE, SUBDOMAIN_MESSAGE, a_pod, errors_of, with_metadata,
)


def test_a_name_is_required() -> None:
    pod = a_pod()
    del pod["metadata"]["name"]
    assert errors_of(pod) == ["metadata.name: Required value: name or generateName is required"]


def test_generate_name_stands_in_for_a_name_on_create() -> None:
    pod = a_pod()
    pod["metadata"] = {"generateName": "web-", "namespace": "default"}
    assert errors_of(pod) == []


def test_generate_name_does_not_stand_in_for_a_name_on_update() -> None:
    pod = a_pod()
    nameless = {**pod, "metadata": {"generateName": "web-", "namespace": "default"}}
    assert "metadata.name: Required value: name or generateName is required" in errors_of(nameless, old=pod)


def test_an_invalid_generate_name_is_rejected() -> None:
    pod = {**a_pod(), "metadata": {"generateName": "Web-", "namespace": "default"}}
    assert errors_of(pod) == [f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MESSAGE}']


def test_a_name_must_be_a_dns_subdomain() -> None:
    assert errors_of(with_metadata(a_pod(), name="Web")) == [
        f'metadata.name: Invalid value: "Web": {SUBDOMAIN_MESSAGE}']


def test_a_dotted_name_is_a_valid_subdomain() -> None:
    assert errors_of(with_metadata(a_pod(), name="web.v2")) == []


def test_a_name_longer_than_253_characters_is_rejected() -> None:
    assert errors_of(with_metadata(a_pod(), name="a" * 254)) == [
        f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters']


def test_a_namespace_name_must_be_a_dns_label() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}}
    assert errors_of(namespace) == ['metadata.name: Invalid value: "team.a": must not contain dots']


def test_a_namespace_name_with_capitals_gets_the_label_message() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Team"}}
    assert errors_of(namespace) == [f'metadata.name: Invalid value: "Team": {LABEL_MESSAGE}']


def test_a_namespace_name_of_63_characters_is_valid() -> None:
    assert errors_of({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a" * 63}}) == []


def test_the_namespace_of_an_object_must_be_a_dns_label() -> None:
    assert errors_of(with_metadata(a_pod(), namespace="my.ns")) == [
        'metadata.namespace: Invalid value: "my.ns": must not contain dots']


def test_a_cluster_scoped_object_may_not_have_a_namespace() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "namespace": "default"}}
    assert errors_of(node) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_label_keys_must_be_qualified_names() -> None:
    pod = with_metadata(a_pod(), labels={"-app": "web"})
    assert errors_of(pod) == [f'metadata.labels: Invalid value: "-app": {QUALIFIED_NAME_PART_MESSAGE}']


def test_a_label_key_prefix_must_be_a_dns_subdomain() -> None:
    pod = with_metadata(a_pod(), labels={"Example.com/app": "web"})
    assert errors_of(pod) == [f'metadata.labels: Invalid value: "Example.com/app": prefix part {SUBDOMAIN_MESSAGE}']


def test_a_label_key_name_part_is_limited_to_63_characters() -> None:
    key = "example.com/" + "a" * 64
    assert errors_of(with_metadata(a_pod(), labels={key: "x"})) == [
        f'metadata.labels: Invalid value: "{key}": name part must be no more than 63 characters']


def test_label_values_must_be_valid() -> None:
    errors = errors_of(with_metadata(a_pod(), labels={"app": "web server"}))
    assert len(errors) == 1 and errors[0].startswith(
        'metadata.labels: Invalid value: "web server": a valid label must be an empty string or consist of')


def test_valid_labels_pass_including_an_empty_value() -> None:
    labels = {"app.kubernetes.io/name": "web", "tier": "", "Version_2.x": "v1.2_3"}
    assert errors_of(with_metadata(a_pod(), labels=labels)) == []


def test_annotation_keys_must_be_qualified_names() -> None:
    errors = errors_of(with_metadata(a_pod(), annotations={"bad key": "x"}))
    assert errors == [f'metadata.annotations: Invalid value: "bad key": {QUALIFIED_NAME_PART_MESSAGE}']


def test_annotation_keys_ignore_case() -> None:
    assert errors_of(with_metadata(a_pod(), annotations={"Example.COM/Note": "anything at all, even spaces"})) == []


def test_annotations_are_limited_to_256_kib_in_total() -> None:
    pod = with_metadata(a_pod(), annotations={"a": "x" * 200_000, "b": "x" * 100_000})
    assert errors_of(pod) == ["metadata.annotations: Too long: must have at most 262144 bytes"]


def test_finalizers_must_be_qualified_names() -> None:
    errors = errors_of(with_metadata(a_pod(), finalizers=["example.com/a b"]))
    assert errors == [f'metadata.finalizers: Invalid value: "example.com/a b": {QUALIFIED_NAME_PART_MESSAGE}']


def test_an_unqualified_finalizer_must_be_a_standard_one() -> None:
    assert errors_of(with_metadata(a_pod(), finalizers=["cleanup"])) == [
        'metadata.finalizers: Invalid value: "cleanup": name is neither a standard finalizer name '
        "nor is it fully qualified"]


def test_standard_and_qualified_finalizers_pass() -> None:
    assert errors_of(with_metadata(a_pod(), finalizers=["kubernetes", "example.com/cleanup"])) == []


def test_an_owner_reference_needs_api_version_kind_name_and_uid() -> None:
    assert errors_of(with_metadata(a_pod(), ownerReferences=[{}])) == [
        'metadata.ownerReferences[0].apiVersion: Invalid value: "": version must not be empty',
        'metadata.ownerReferences[0].kind: Invalid value: "": must not be empty',
        'metadata.ownerReferences[0].name: Invalid value: "": must not be empty',
        'metadata.ownerReferences[0].uid: Invalid value: "": must not be empty',
    ]


def test_only_one_owner_reference_may_be_the_controller() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True}
    pod = with_metadata(a_pod(), ownerReferences=[owner, {**owner, "name": "b", "uid": "2"}])
    assert errors_of(pod) == [
        "metadata.ownerReferences: Invalid value: Only one reference can have Controller set to true"]


def test_a_complete_owner_reference_passes() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True}
    assert errors_of(with_metadata(a_pod(), ownerReferences=[owner])) == []


@pytest.mark.parametrize(("field", "old_value", "new_value"), [
    ("name", "web", "web2"),
    ("namespace", "default", "other"),
    ("uid", "1", "2"),
    ("creationTimestamp", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
])
def test_identity_metadata_is_immutable(field: str, old_value: str, new_value: str) -> None:
    old = with_metadata(a_pod(), **{field: old_value})
    new = with_metadata(a_pod(), **{field: new_value})
    assert f'metadata.{field}: Invalid value: "{new_value}": field is immutable' in errors_of(new, old=old)


def test_labels_and_annotations_may_change_on_update() -> None:
    old = with_metadata(a_pod(), uid="1", labels={"a": "1"})
    new = with_metadata(a_pod(), uid="1", labels={"a": "2"}, annotations={"note": "x"})
    assert errors_of(new, old=old) == []
