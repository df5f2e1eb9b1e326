"""``sampan delete``: kubectl's grace-period and timeout flags, then end to
end: by name, by label, by manifest; kubectl's wording; NotFound for a
missing object; the warning of a forced deletion."""

from __future__ import annotations

import pytest

from control.cli.commands.delete import grace_period, parse_duration
from control.cli.errors import CommandError
from control.cli.main import build_parser
from tests.cli import sampan


@pytest.mark.parametrize(("flags", "seconds"), [
    ([], None),
    (["--grace-period=30"], 30),
    (["--grace-period=0"], 1),
    (["--grace-period=0", "--force"], 0),
    (["--force"], 0),
    (["--now"], 1),
])
def test_grace_period_follows_kubectls_rules(flags, seconds):
    assert grace_period(build_parser().parse_args(["delete", "pod", "web", *flags])) == seconds


def test_timeouts_are_go_durations():
    assert parse_duration("0s") == 0 and parse_duration("1m30s") == 90 and parse_duration("500ms") == 0.5
    with pytest.raises(CommandError):
        parse_duration("soon")

CONFIGMAPS = "".join(
    f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{tier: {tier}}}}}\n"
    for name, tier in (("a", "front"), ("b", "front"), ("c", "back")))


def apply_configmaps(capsys, server, *, tmp_path) -> str:
    path = tmp_path / "cms.yaml"
    path.write_text(CONFIGMAPS)
    assert sampan(capsys, server, "apply", "-f", str(path)).code == 0
    return str(path)


def remaining(capsys, server) -> list[str]:
    return sampan(capsys, server, "get", "cm", "-o", "name").lines


def test_delete_by_name_prints_kubectls_line_and_removes_it(capsys, control_server, tmp_path):
    apply_configmaps(capsys, control_server, tmp_path=tmp_path)
    result = sampan(capsys, control_server, "delete", "configmap", "a")
    assert (result.code, result.out, result.err) == (0, 'configmap "a" deleted\n', "")
    assert remaining(capsys, control_server) == ["configmap/b", "configmap/c"]


def test_deleting_a_missing_object_is_not_found_and_the_others_go(capsys, control_server, tmp_path):
    apply_configmaps(capsys, control_server, tmp_path=tmp_path)
    result = sampan(capsys, control_server, "delete", "cm", "ghost", "b")
    assert result.code == 1
    assert result.out == 'configmap "b" deleted\n'
    assert result.err == 'Error from server (NotFound): configmaps "ghost" not found\n'


def test_delete_by_label_selector(capsys, control_server, tmp_path):
    apply_configmaps(capsys, control_server, tmp_path=tmp_path)
    result = sampan(capsys, control_server, "delete", "cm", "-l", "tier=front")
    assert result.lines == ['configmap "a" deleted', 'configmap "b" deleted']
    assert remaining(capsys, control_server) == ["configmap/c"]


def test_delete_by_manifest(capsys, control_server, tmp_path):
    path = apply_configmaps(capsys, control_server, tmp_path=tmp_path)
    assert sampan(capsys, control_server, "delete", "-f", path).lines == [
        'configmap "a" deleted', 'configmap "b" deleted', 'configmap "c" deleted']


def test_a_kind_without_names_needs_all_or_a_selector(capsys, control_server):
    result = sampan(capsys, control_server, "delete", "pods")
    assert (result.code, result.err) == (1, "error: resource(s) were provided, but no name was specified\n")


def test_a_forced_immediate_deletion_warns(capsys, control_server, tmp_path):
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: nginx}]\n")
    sampan(capsys, control_server, "apply", "-f", str(tmp_path / "pod.yaml"))
    result = sampan(capsys, control_server, "delete", "pod", "web", "--force", "--grace-period=0")
    assert (result.code, result.out) == (0, 'pod "web" deleted\n')
    assert result.err.startswith("Warning: Immediate deletion does not wait for confirmation")
    assert sampan(capsys, control_server, "get", "pods").err == "No resources found in default namespace.\n"
