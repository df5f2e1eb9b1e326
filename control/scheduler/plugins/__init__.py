"""The scheduler's plugins: one module each, named in one registry.

``REGISTRY`` maps a plugin's NAME to its factory; ``FILTERS`` and
``SCORERS`` say at which extension points each one can run. A ``Profile``
names the plugins it runs. ``default_profile`` is kube-scheduler's default
set, in its filter order, with its score weights; a scheduler configuration
(control.scheduler.config) starts from the same defaults.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from control.scheduler.framework import Profile, WeightedScorer
from control.scheduler.plugins import (
    inter_pod_affinity, node_affinity, node_name, node_resources_fit, node_unschedulable, taint_toleration,
)

DEFAULT_SCHEDULER = "default-scheduler"

REGISTRY: dict[str, Callable[..., Any]] = {
    node_unschedulable.NAME: node_unschedulable.new,
    node_name.NAME: node_name.new,
    taint_toleration.NAME: taint_toleration.new,
    node_affinity.NAME: node_affinity.new,
    node_resources_fit.NAME: node_resources_fit.new,
    node_resources_fit.BALANCED_NAME: node_resources_fit.new_balanced_allocation,
    inter_pod_affinity.NAME: inter_pod_affinity.new,
}
# The extension points each plugin implements.
FILTERS = frozenset({
    node_unschedulable.NAME, node_name.NAME, taint_toleration.NAME, node_affinity.NAME,
    node_resources_fit.NAME, inter_pod_affinity.NAME,
})
SCORERS = frozenset({
    taint_toleration.NAME, node_affinity.NAME, node_resources_fit.NAME, node_resources_fit.BALANCED_NAME,
    inter_pod_affinity.NAME,
})

DEFAULT_FILTERS = (
    node_unschedulable.NAME, node_name.NAME, taint_toleration.NAME, node_affinity.NAME,
    node_resources_fit.NAME, inter_pod_affinity.NAME,
)
DEFAULT_SCORERS = {
    taint_toleration.NAME: 3,
    node_affinity.NAME: 2,
    node_resources_fit.NAME: 1,
    node_resources_fit.BALANCED_NAME: 1,
    inter_pod_affinity.NAME: 2,
}


def build_profile(
    *,
    name: str,
    filters: Sequence[str],
    scorers: Mapping[str, int],
    plugin_args: Mapping[str, Mapping[str, Any]] | None = None,
    percentage_of_nodes_to_score: int | None = None,
) -> Profile:
    """A profile of registered plugins; a plugin both filtering and scoring is built once."""
    plugin_args = plugin_args or {}
    built: dict[str, Any] = {}

    def plugin(plugin_name: str) -> Any:
        if plugin_name not in REGISTRY:
            raise KeyError(f"unknown scheduler plugin {plugin_name!r}")
        if plugin_name not in built:
            built[plugin_name] = REGISTRY[plugin_name](**plugin_args.get(plugin_name, {}))
        return built[plugin_name]

    return Profile(
        name=name,
        filters=tuple(plugin(n) for n in filters),
        scorers=tuple(WeightedScorer(plugin(n), weight) for n, weight in scorers.items()),
        percentage_of_nodes_to_score=percentage_of_nodes_to_score,
    )


def default_profile(*, scoring_strategy: node_resources_fit.Strategy = "LeastAllocated",
                    name: str = DEFAULT_SCHEDULER) -> Profile:
    return build_profile(
        name=name, filters=DEFAULT_FILTERS, scorers=DEFAULT_SCORERS,
        plugin_args={node_resources_fit.NAME: {"strategy": scoring_strategy}},
    )
