"""apply's three-way merge patch: fields dropped from the manifest become
null, changed fields are set, fields only the server set are left alone, an
unchanged manifest gives an empty patch; and the last-applied annotation."""

from __future__ import annotations

import json

from control.cli.merge_patch import (
    LAST_APPLIED,
    last_applied_value,
    parse_last_applied,
    three_way_merge_patch,
    with_last_applied,
)

MANIFEST = {
    "apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
    "data": {"a": "1", "b": "2"},
}
LIVE = {
    **MANIFEST,
    "metadata": {**MANIFEST["metadata"], "uid": "u-1", "resourceVersion": "7",
                 "creationTimestamp": "2024-05-01T12:00:00Z"},
}


def test_an_unchanged_manifest_gives_an_empty_patch():
    assert three_way_merge_patch(original=MANIFEST, modified=MANIFEST, current=LIVE) == {}


def test_a_field_removed_from_the_manifest_is_set_to_null():
    modified = {**MANIFEST, "metadata": {**MANIFEST["metadata"], "labels": {"app": "web"}}}
    patch = three_way_merge_patch(original=MANIFEST, modified=modified, current=LIVE)
    assert patch == {"metadata": {"labels": {"tier": None}}}


def test_a_changed_field_is_set_to_its_new_value():
    modified = {**MANIFEST, "data": {"a": "1", "b": "3"}}
    assert three_way_merge_patch(original=MANIFEST, modified=modified, current=LIVE) == {"data": {"b": "3"}}


def test_fields_only_the_server_set_are_left_alone():
    live = {**LIVE, "status": {"phase": "Active"}}
    assert three_way_merge_patch(original=MANIFEST, modified=MANIFEST, current=live) == {}


def test_a_field_changed_on_the_server_is_set_back_to_the_manifest():
    live = {**LIVE, "data": {"a": "changed", "b": "2"}}
    assert three_way_merge_patch(original=MANIFEST, modified=MANIFEST, current=live) == {"data": {"a": "1"}}


def test_a_field_added_by_others_survives_when_the_manifest_never_had_it():
    live = {**LIVE, "metadata": {**LIVE["metadata"], "labels": {"app": "web", "tier": "front", "owner": "ops"}}}
    assert three_way_merge_patch(original=MANIFEST, modified=MANIFEST, current=live) == {}


def test_without_a_previous_manifest_nothing_is_deleted():
    modified = {**MANIFEST, "data": {"a": "1"}}
    assert three_way_merge_patch(original=None, modified=modified, current=LIVE) == {}


def test_lists_are_replaced_whole():
    original = {"spec": {"args": ["a", "b"]}}
    modified = {"spec": {"args": ["a"]}}
    assert three_way_merge_patch(original=original, modified=modified, current=original) == {"spec": {"args": ["a"]}}


def test_an_explicit_empty_map_the_object_lacks_is_a_value():
    modified = {**MANIFEST, "data": {}}
    live = {key: value for key, value in LIVE.items() if key != "data"}
    assert three_way_merge_patch(original=None, modified=modified, current=live) == {"data": {}}


def test_the_annotation_holds_the_manifest_as_compact_sorted_json():
    value = last_applied_value(MANIFEST)
    assert value.endswith("\n") and " " not in value
    assert json.loads(value) == MANIFEST
    assert value.index('"apiVersion"') < value.index('"data"') < value.index('"kind"')


def test_the_annotation_never_contains_itself():
    annotated = with_last_applied(MANIFEST, last_applied_value(MANIFEST))
    assert annotated["metadata"]["annotations"][LAST_APPLIED] == last_applied_value(annotated)
    assert "annotations" not in MANIFEST["metadata"]


def test_an_unreadable_annotation_counts_as_none():
    assert parse_last_applied("{not json") is None
    assert parse_last_applied("") is None
