"""``sampan label`` and ``sampan annotate`` against a real control service:
setting, overwriting (refused without --overwrite, in kubectl's words for
each command), removing, "not found." for a missing key, kubectl's
labeled / unlabeled / not labeled, selection by -l and --all, --list,
--resource-version, and the refusals of malformed changes."""

from __future__ import annotations

import pytest

from control.cli.commands.label import parse_changes, split_arguments
from control.cli.errors import CommandError
from tests.cli import sampan

CONFIGMAPS = "".join(
    f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{tier: {tier}}}, "
    f"annotations: {{owner: team-{tier}}}}}\n"
    for name, tier in (("a", "front"), ("b", "front"), ("c", "back")))


@pytest.fixture
def objects(capsys, control_server, tmp_path):
    path = tmp_path / "cms.yaml"
    path.write_text(CONFIGMAPS)
    assert sampan(capsys, control_server, "create", "-f", str(path)).code == 0
    return control_server


def labels_of(capsys, server, name: str) -> str:
    return sampan(capsys, server, "get", "cm", name, "--show-labels", "--no-headers").out.split()[-1]


# ---------------------------------------------------------------- labels


def test_label_sets_and_prints_labeled(capsys, objects):
    result = sampan(capsys, objects, "label", "cm", "a", "env=prod")
    assert (result.code, result.out, result.err) == (0, "configmap/a labeled\n", "")
    assert labels_of(capsys, objects, "a") == "env=prod,tier=front"


def test_an_existing_label_needs_overwrite(capsys, objects):
    refused = sampan(capsys, objects, "label", "cm", "a", "tier=back")
    assert (refused.code, refused.out) == (1, "")
    assert refused.err == "error: 'tier' already has a value (front), and --overwrite is false\n"
    assert labels_of(capsys, objects, "a") == "tier=front"
    allowed = sampan(capsys, objects, "label", "cm", "a", "tier=back", "--overwrite")
    assert (allowed.code, allowed.out) == (0, "configmap/a labeled\n")
    assert labels_of(capsys, objects, "a") == "tier=back"


def test_removing_labels(capsys, objects):
    result = sampan(capsys, objects, "label", "configmap/a", "tier-", "missing-")
    assert result.code == 0
    assert result.lines == ['label "missing" not found.', "configmap/a unlabeled"]
    assert labels_of(capsys, objects, "a") == "<none>"


def test_a_label_change_that_changes_nothing_is_not_labeled(capsys, objects):
    result = sampan(capsys, objects, "label", "cm", "a", "tier=front", "--overwrite")
    assert result.out == "configmap/a not labeled\n"


def test_label_by_selector_and_all(capsys, objects):
    result = sampan(capsys, objects, "label", "cm", "-l", "tier=front", "release=1")
    assert result.lines == ["configmap/a labeled", "configmap/b labeled"]
    assert labels_of(capsys, objects, "c") == "tier=back"
    everything = sampan(capsys, objects, "label", "cm", "--all", "audited=yes")
    assert everything.lines == ["configmap/a labeled", "configmap/b labeled", "configmap/c labeled"]


def test_a_refusal_on_one_object_leaves_the_others_changed(capsys, objects):
    sampan(capsys, objects, "label", "cm", "b", "env=dev")
    result = sampan(capsys, objects, "label", "cm", "a", "b", "env=prod")
    assert (result.code, result.out) == (1, "configmap/a labeled\n")
    assert result.err == "error: 'env' already has a value (dev), and --overwrite is false\n"


def test_label_list(capsys, objects):
    assert sampan(capsys, objects, "label", "cm", "a", "--list").out == "tier=front\n"
    several = sampan(capsys, objects, "label", "cm", "a", "c", "--list")
    assert several.lines == ["Listing labels for ConfigMap./a:", "  tier=front",
                             "Listing labels for ConfigMap./c:", "  tier=back"]


def test_a_stale_resource_version_is_a_conflict(capsys, objects):
    result = sampan(capsys, objects, "label", "cm", "a", "env=prod", "--resource-version=1")
    assert result.code == 1
    assert result.err.startswith('Error from server (Conflict): Operation cannot be fulfilled on configmaps "a"')
    both = sampan(capsys, objects, "label", "cm", "a", "b", "env=prod", "--resource-version=1")
    assert both.err == "error: --resource-version may only be used with a single resource\n"


def test_labeling_a_missing_object_is_not_found(capsys, objects):
    result = sampan(capsys, objects, "label", "cm", "ghost", "a=b")
    assert (result.code, result.err) == (1, 'Error from server (NotFound): configmaps "ghost" not found\n')


# ---------------------------------------------------------------- annotations


def test_annotate_sets_removes_and_needs_overwrite_for_a_new_value(capsys, objects):
    assert sampan(capsys, objects, "annotate", "cm", "a", "note=hello").out == "configmap/a annotated\n"
    same = sampan(capsys, objects, "annotate", "cm", "a", "owner=team-front")
    assert (same.code, same.out) == (0, "configmap/a annotated\n"), "the same value is no overwrite"
    refused = sampan(capsys, objects, "annotate", "cm", "a", "owner=team-back", "note=bye")
    assert refused.err == ("error: --overwrite is false but found the following declared annotation(s): "
                           "'owner' already has a value (team-front); 'note' already has a value (hello)\n")
    removed = sampan(capsys, objects, "annotate", "cm", "a", "note-")
    assert removed.out == "configmap/a annotated\n"
    listed = sampan(capsys, objects, "annotate", "cm", "a", "--list")
    assert listed.out == "owner=team-front\n"


# ---------------------------------------------------------------- the arguments


def test_objects_come_before_changes():
    assert split_arguments(["pod", "web", "a=b", "c-"], what="label") == (["pod", "web"], ["a=b", "c-"])
    with pytest.raises(CommandError, match="all resources must be specified before label changes"):
        split_arguments(["pod", "a=b", "web"], what="label")


@pytest.mark.parametrize(("pairs", "message"), [
    (["a=b=c"], "error: invalid label spec: a=b=c"),
    (["bad key=x"], "error: invalid label spec: bad key=x: "),
    (["a=not valid"], "error: invalid label spec: a=not valid: "),
    (["a=b", "a-"], "error: can not both modify and remove a label in the same command"),
])
def test_malformed_label_changes_are_refused(pairs, message):
    with pytest.raises(CommandError) as raised:
        parse_changes(pairs, what="label")
    assert str(raised.value).startswith(message)


def test_annotation_values_are_free_text():
    assert parse_changes(["note=any text, even = signs?"], what="annotation").set == {
        "note": "any text, even = signs?"}


def test_changes_are_required(capsys, objects):
    assert sampan(capsys, objects, "label", "cm", "a").err == "error: at least one label update is required\n"
