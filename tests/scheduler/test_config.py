"""The scheduler configuration file: profiles by schedulerName built from
the default plugins, what enabling and disabling plugins does, plugin args,
and the error for everything that cannot be used (naming the field)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from control.scheduler.config import SchedulerConfigError, load_config, parse_config
from control.scheduler.framework import CycleState, schedule_one
from control.scheduler.plugins import DEFAULT_FILTERS, DEFAULT_SCORERS
from tests.scheduler.builders import make_node, make_pod, node_info


def parse(text: str):
    return parse_config(yaml.safe_load(text))


def filter_names(profile) -> list[str]:
    return [plugin.name for plugin in profile.filters]


def scorer_weights(profile) -> dict[str, int]:
    return {scorer.plugin.name: scorer.weight for scorer in profile.scorers}


def test_an_empty_file_gives_the_default_profile():
    config = parse_config(None)
    (profile,) = config.profiles
    assert profile.name == "default-scheduler"
    assert filter_names(profile) == list(DEFAULT_FILTERS)
    assert scorer_weights(profile) == DEFAULT_SCORERS
    assert config.percentage_of_nodes_to_score == 0


def test_profiles_are_found_by_scheduler_name_and_an_empty_name_means_the_default():
    config = parse("""
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: packer
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
""")
    assert [p.name for p in config.profiles] == ["default-scheduler", "packer"]
    assert config.profile_for("packer").name == "packer"
    assert config.profile_for("").name == "default-scheduler"
    assert config.profile_for("gpu") is None


def test_a_profile_with_most_allocated_packs_where_the_default_spreads():
    config = parse("""
profiles:
- schedulerName: default-scheduler
- schedulerName: packer
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated, resources: [{name: cpu, weight: 1}]}}
""")
    busy = node_info(make_node("busy"), make_pod("x", cpu="2", memory="1Gi", node_name="busy"))
    idle = node_info(make_node("idle"))
    pod = make_pod(cpu="500m", memory="256Mi")
    assert schedule_one(pod, [busy, idle], config.profile_for("default-scheduler"))[0] == "idle"
    assert schedule_one(pod, [busy, idle], config.profile_for("packer"))[0] == "busy"


def test_disabling_every_filter_and_enabling_one_keeps_only_that_one():
    config = parse("""
profiles:
- schedulerName: lenient
  plugins:
    filter:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit}]
""")
    (profile,) = config.profiles
    assert filter_names(profile) == ["NodeResourcesFit"]
    assert scorer_weights(profile) == DEFAULT_SCORERS  # the score point keeps its defaults


def test_a_re_enabled_default_keeps_its_place_and_takes_the_new_weight_others_are_appended():
    config = parse("""
profiles:
- schedulerName: tuned
  plugins:
    score:
      disabled: [{name: TaintToleration}]
      enabled: [{name: TaintToleration, weight: 7}, {name: NodeAffinity, weight: 5}]
""")
    # NodeAffinity stays among the defaults, in their order; TaintToleration, disabled, comes back last.
    assert list(scorer_weights(config.profiles[0]).items()) == [
        ("NodeAffinity", 5), ("NodeResourcesFit", 1), ("NodeResourcesBalancedAllocation", 1),
        ("InterPodAffinity", 2), ("TaintToleration", 7)]


def test_multi_point_enables_a_plugin_at_every_point_it_implements():
    config = parse("""
profiles:
- schedulerName: minimal
  plugins:
    multiPoint:
      disabled: [{name: "*"}]
      enabled: [{name: TaintToleration, weight: 4}, {name: NodeResourcesBalancedAllocation}]
""")
    (profile,) = config.profiles
    assert filter_names(profile) == ["TaintToleration"]
    assert scorer_weights(profile) == {"TaintToleration": 4, "NodeResourcesBalancedAllocation": 1}


def test_requested_to_capacity_ratio_scores_through_its_shape():
    config = parse("""
profiles:
- schedulerName: shaped
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: RequestedToCapacityRatio
        resources: [{name: cpu, weight: 1}]
        requestedToCapacityRatio:
          shape: [{utilization: 0, score: 10}, {utilization: 100, score: 0}]
  plugins:
    score:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit}]
""")
    fit = config.profiles[0].scorers[0].plugin
    empty, half = node_info(make_node("empty")), node_info(make_node("half"), make_pod("x", cpu="2", node_name="half"))
    pod = make_pod(cpu="1")
    # 1 of 4 CPUs requested scores 7.5 of 10 on that shape (x10 for 0..100); 3 of 4 scores 2.5.
    assert fit.score(pod, empty, CycleState()) == 75
    assert fit.score(pod, half, CycleState()) == 25


def test_percentage_of_nodes_to_score_is_read_for_the_scheduler_and_per_profile():
    config = parse("""
percentageOfNodesToScore: 30
profiles:
- schedulerName: default-scheduler
- schedulerName: thorough
  percentageOfNodesToScore: 100
""")
    assert config.percentage_of_nodes_to_score == 30
    assert [p.percentage_of_nodes_to_score for p in config.profiles] == [None, 100]


@pytest.mark.parametrize(("text", "message"), [
    ("profiles: [{schedulerName: a, plugins: {filter: {enabled: [{name: GPUFit}]}}}]",
     "profiles[0].plugins.filter.enabled[0].name: unknown plugin 'GPUFit'"),
    ("profiles: [{schedulerName: a, plugins: {preBind: {}}}]",
     "profiles[0].plugins.preBind: unknown field"),
    ("parallelism: 16", "parallelism: unknown field"),
    ("profiles: [{schedulerName: a, plugins: {filter: {enabled: [{name: NodeResourcesBalancedAllocation}]}}}]",
     "plugin 'NodeResourcesBalancedAllocation' does not implement filter"),
    ("profiles: [{schedulerName: a, plugins: {score: {enabled: [{name: NodeName}]}}}]",
     "plugin 'NodeName' does not implement score"),
    ("profiles: [{schedulerName: a}, {schedulerName: a}]",
     "profiles[1].schedulerName: duplicate scheduler name 'a'"),
    ("profiles: [{plugins: {}}]", "profiles[0].schedulerName: required"),
    ("profiles: [{schedulerName: a, plugins: {score: {enabled: [{name: NodeAffinity, weight: 500}]}}}]",
     "profiles[0].plugins.score.enabled[0].weight: must be between 0 and 100, not 500"),
    ("percentageOfNodesToScore: 150", "percentageOfNodesToScore: must be between 0 and 100, not 150"),
    ("kind: Deployment", "kind: must be KubeSchedulerConfiguration"),
    ("profiles: [{schedulerName: a, pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: Random}}}]}]",
     "profiles[0].pluginConfig[0].args.scoringStrategy.type: unknown scoring strategy 'Random'"),
    ("profiles: [{schedulerName: a, pluginConfig: [{name: NodeResourcesFit, args: {ignoredResources: [x]}}]}]",
     "profiles[0].pluginConfig[0].args.ignoredResources: unknown field"),
    ("profiles: [{schedulerName: a, pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy:"
     " {type: RequestedToCapacityRatio, requestedToCapacityRatio: {shape: [{utilization: 50, score: 1},"
     " {utilization: 10, score: 2}]}}}}]}]",
     "shape[1].utilization: utilization values must be in strictly increasing order"),
    ("profiles: [{schedulerName: a, pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy:"
     " {type: RequestedToCapacityRatio}}}]}]",
     "requestedToCapacityRatio.shape: required"),
    ("profiles: [{schedulerName: a, pluginConfig: [{name: TaintToleration, args: {x: 1}}]}]",
     "profiles[0].pluginConfig[0].args: plugin 'TaintToleration' takes no args"),
])
def test_what_cannot_be_used_is_an_error_naming_the_field(text, message):
    with pytest.raises(SchedulerConfigError, match="^scheduler config: .*") as raised:
        parse(text)
    assert message in str(raised.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SchedulerConfigError) as raised:
        parse("profiles: [{schedulerName: a, plugins: {filter: {enabled: [{name: X}, {name: Y}]}}}]")
    assert "enabled[0].name" in str(raised.value) and "enabled[1].name" in str(raised.value)


def test_a_missing_or_malformed_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(SchedulerConfigError, match="scheduler config .*missing.yaml: No such file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [\n")
    with pytest.raises(SchedulerConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_sampan_control_refuses_a_bad_scheduler_config_with_one_clear_line(tmp_path):
    config = tmp_path / "scheduler.yaml"
    config.write_text("profiles: [{schedulerName: a, plugins: {filter: {enabled: [{name: GPUFit}]}}}]\n")
    done = subprocess.run(
        [sys.executable, "-m", "control.cli.main", "control", "--insecure-plaintext", "--store", f"sqlite:///{tmp_path}/state.db",
         "--listen", "127.0.0.1:0", "--metrics-listen", "", "--scheduler-config", str(config)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "profiles[0].plugins.filter.enabled[0].name: unknown plugin 'GPUFit'" in done.stderr
