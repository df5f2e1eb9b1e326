"""The scheduler's configuration file, shaped like kube-scheduler's
KubeSchedulerConfiguration (``sampan control --scheduler-config FILE``):

```yaml
apiVersion: kubescheduler.config.k8s.io/v1    # optional
kind: KubeSchedulerConfiguration              # optional
percentageOfNodesToScore: 0                   # 0..100; 0: adaptive (see framework)
profiles:
- schedulerName: default-scheduler            # pods choose a profile by spec.schedulerName
  percentageOfNodesToScore: 50                # optional, this profile only
  plugins:
    multiPoint: {enabled: [...], disabled: [...]}   # every point the plugin implements
    filter:     {enabled: [{name: NodeName}], disabled: [{name: "*"}]}
    score:      {enabled: [{name: NodeResourcesFit, weight: 2}], disabled: [...]}
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated                   # LeastAllocated, MostAllocated, RequestedToCapacityRatio
        resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]
        requestedToCapacityRatio:             # for RequestedToCapacityRatio
          shape: [{utilization: 0, score: 0}, {utilization: 100, score: 10}]
  - name: NodeResourcesBalancedAllocation
    args: {resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]}
```

Each extension point starts from the default plugins (plugins.DEFAULT_FILTERS
and DEFAULT_SCORERS), as in Kubernetes: ``disabled`` removes defaults (``*``
all of them); an ``enabled`` plugin that is a default not disabled takes
that default's place (with the weight given, else its default weight), any
other is appended in the order given, weighted 1 unless told. multiPoint is
applied first, then the point's own settings. Without profiles the file
configures one default profile. Everything Sampan does not implement is an
error naming the field (``profiles[0].plugins.preBind: unknown field``), as
is an unknown plugin, a plugin enabled at a point it does not implement, a
duplicate, or a value out of range; ``load_config`` reports every problem at
once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from control.scheduler.framework import Profile
from control.scheduler.plugins import (
    DEFAULT_FILTERS, DEFAULT_SCHEDULER, DEFAULT_SCORERS, FILTERS, REGISTRY, SCORERS, build_profile,
    default_profile, node_resources_fit,
)

API_VERSION = "kubescheduler.config.k8s.io/v1"
KIND = "KubeSchedulerConfiguration"
EXTENSION_POINTS = {"filter": FILTERS, "score": SCORERS}
MAX_WEIGHT = 100
ALL = "*"


class SchedulerConfigError(ValueError):
    """A scheduler configuration that cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class SchedulerConfiguration:
    """Profiles by schedulerName, and how many nodes a decision looks at."""

    profiles: tuple[Profile, ...] = field(default_factory=lambda: (default_profile(),))
    percentage_of_nodes_to_score: int = 0  # 0: adaptive

    def profile_for(self, scheduler_name: str) -> Profile | None:
        wanted = scheduler_name or DEFAULT_SCHEDULER
        return next((p for p in self.profiles if p.name == wanted), None)


class _Problems:
    """Collects "path: problem" lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.lines.append(f"{path}: {problem}")


def _mapping(value: Any, path: str, problems: _Problems, known: Mapping[str, str] | set[str]) -> dict:
    """value as a dict with only the known keys (each unknown one is a problem)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(path, f"must be a mapping, not {type(value).__name__}")
        return {}
    for key in value:
        if key not in known:
            problems.add(f"{path}.{key}" if path else str(key),
                         f"unknown field (supported: {', '.join(sorted(known))})")
    return {k: v for k, v in value.items() if k in known}


def _list(value: Any, path: str, problems: _Problems) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(path, f"must be a list, not {type(value).__name__}")
        return []
    return value


def _int(value: Any, path: str, problems: _Problems, *, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"must be an integer, not {value!r}")
        return None
    if not low <= value <= high:
        problems.add(path, f"must be between {low} and {high}, not {value}")
        return None
    return value


def parse_config(document: Any, *, source: str = "scheduler config") -> SchedulerConfiguration:
    """A SchedulerConfiguration from the parsed YAML document; SchedulerConfigError lists every problem."""
    problems = _Problems()
    top = _mapping(document, "", problems, {"apiVersion", "kind", "percentageOfNodesToScore", "profiles"})
    if "apiVersion" in top and top["apiVersion"] != API_VERSION:
        problems.add("apiVersion", f"must be {API_VERSION}, not {top['apiVersion']!r}")
    if "kind" in top and top["kind"] != KIND:
        problems.add("kind", f"must be {KIND}, not {top['kind']!r}")
    percentage = 0
    if "percentageOfNodesToScore" in top:
        percentage = _int(top["percentageOfNodesToScore"], "percentageOfNodesToScore", problems, low=0, high=100) or 0
    profiles: list[Profile] = []
    names: set[str] = set()
    entries = _list(top.get("profiles"), "profiles", problems)
    for index, entry in enumerate(entries):
        profile = _profile(entry, f"profiles[{index}]", problems)
        if profile is None:
            continue
        if profile.name in names:
            problems.add(f"profiles[{index}].schedulerName", f"duplicate scheduler name {profile.name!r}")
        names.add(profile.name)
        profiles.append(profile)
    if problems.lines:
        raise SchedulerConfigError(f"{source}: " + "; ".join(problems.lines))
    if not entries:
        profiles = [default_profile()]
    return SchedulerConfiguration(profiles=tuple(profiles), percentage_of_nodes_to_score=percentage)


def load_config(path: str | Path) -> SchedulerConfiguration:
    """Read and parse a scheduler configuration file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise SchedulerConfigError(f"scheduler config {path}: {err.strerror or err}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SchedulerConfigError(f"scheduler config {path}: not valid YAML: {err}") from None
    return parse_config(document, source=f"scheduler config {path}")


# ------------------------------------------------------------------ profiles


def _profile(entry: Any, path: str, problems: _Problems) -> Profile | None:
    fields = _mapping(entry, path, problems, {"schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"})
    name = fields.get("schedulerName")
    if not isinstance(name, str) or not name:
        problems.add(f"{path}.schedulerName", "required: a non-empty name")
        name = ""
    percentage = None
    if fields.get("percentageOfNodesToScore") is not None:
        percentage = _int(fields["percentageOfNodesToScore"], f"{path}.percentageOfNodesToScore", problems,
                          low=0, high=100)
    plugins = _mapping(fields.get("plugins"), f"{path}.plugins", problems, {"multiPoint", *EXTENSION_POINTS})
    multi_point = _plugin_set(plugins.get("multiPoint"), f"{path}.plugins.multiPoint", problems,
                              implemented=FILTERS | SCORERS, weighted=True)
    filters = _merge(list(DEFAULT_FILTERS), multi_point, FILTERS)
    filters = _merge(filters, _plugin_set(plugins.get("filter"), f"{path}.plugins.filter", problems,
                                          implemented=FILTERS, weighted=False), FILTERS)
    scorers = _merge(list(DEFAULT_SCORERS.items()), multi_point, SCORERS, weights=DEFAULT_SCORERS)
    scorers = _merge(scorers, _plugin_set(plugins.get("score"), f"{path}.plugins.score", problems,
                                          implemented=SCORERS, weighted=True), SCORERS, weights=DEFAULT_SCORERS)
    args = _plugin_config(fields.get("pluginConfig"), f"{path}.pluginConfig", problems)
    if problems.lines:
        return None
    try:
        return build_profile(name=name, filters=filters, scorers=dict(scorers), plugin_args=args,
                             percentage_of_nodes_to_score=percentage)
    except ValueError as err:
        problems.add(f"{path}.pluginConfig", str(err))
        return None


@dataclass(frozen=True)
class _PluginSet:
    enabled: tuple[tuple[str, int | None], ...] = ()  # (name, weight or None)
    disabled: frozenset[str] = frozenset()


def _plugin_set(value: Any, path: str, problems: _Problems, *, implemented: frozenset[str],
                weighted: bool) -> _PluginSet:
    fields = _mapping(value, path, problems, {"enabled", "disabled"})
    enabled: list[tuple[str, int | None]] = []
    for index, item in enumerate(_list(fields.get("enabled"), f"{path}.enabled", problems)):
        where = f"{path}.enabled[{index}]"
        plugin = _mapping(item, where, problems, {"name", "weight"} if weighted else {"name"})
        name = _plugin_name(plugin.get("name"), f"{where}.name", problems, implemented=implemented)
        weight = None
        if plugin.get("weight") is not None:
            weight = _int(plugin["weight"], f"{where}.weight", problems, low=0, high=MAX_WEIGHT)
        if name is None:
            continue
        if any(name == seen for seen, _ in enabled):
            problems.add(f"{where}.name", f"plugin {name!r} is enabled twice")
        enabled.append((name, weight or None))
    disabled = set()
    for index, item in enumerate(_list(fields.get("disabled"), f"{path}.disabled", problems)):
        where = f"{path}.disabled[{index}]"
        plugin = _mapping(item, where, problems, {"name"})
        raw = plugin.get("name")
        if raw == ALL:
            disabled.add(ALL)
        else:
            name = _plugin_name(raw, f"{where}.name", problems, implemented=frozenset(REGISTRY))
            if name is not None:
                disabled.add(name)
    return _PluginSet(tuple(enabled), frozenset(disabled))


def _plugin_name(value: Any, path: str, problems: _Problems, *, implemented: frozenset[str]) -> str | None:
    if not isinstance(value, str) or not value:
        problems.add(path, "required: a plugin name")
        return None
    if value not in REGISTRY:
        problems.add(path, f"unknown plugin {value!r} (known: {', '.join(REGISTRY)})")
        return None
    if value not in implemented:
        point = path.split(".plugins.")[-1].split(".")[0]
        problems.add(path, f"plugin {value!r} does not implement {point}")
        return None
    return value


def _merge(current: list, custom: _PluginSet, implemented: frozenset[str], *,
           weights: Mapping[str, int] | None = None) -> list:
    """current (plugin names, or (name, weight) pairs when weights is given)
    with custom's disabled removed and its enabled (those implementing this
    point) put in place or appended."""
    wanted = [(name, weight) for name, weight in custom.enabled if name in implemented]
    replacing = {name: weight for name, weight in wanted}

    def entry(name: str, weight: int | None) -> Any:
        if weights is None:
            return name
        return name, weight or 1

    result = []
    if ALL not in custom.disabled:
        for item in current:
            name = item if weights is None else item[0]
            if name in custom.disabled:
                continue
            if name in replacing:
                result.append(entry(name, replacing.pop(name) or (weights or {}).get(name)))
            else:
                result.append(item)
    present = {item if weights is None else item[0] for item in result}
    for name, weight in wanted:
        if name in replacing and name not in present:
            result.append(entry(name, weight))
    return result


# ------------------------------------------------------------- plugin args


def _plugin_config(value: Any, path: str, problems: _Problems) -> dict[str, dict[str, Any]]:
    args: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(_list(value, path, problems)):
        where = f"{path}[{index}]"
        entry = _mapping(item, where, problems, {"name", "args"})
        name = _plugin_name(entry.get("name"), f"{where}.name", problems, implemented=frozenset(REGISTRY))
        if name is None:
            continue
        if name in args:
            problems.add(f"{where}.name", f"plugin {name!r} is configured twice")
            continue
        parser = _ARGS.get(name)
        if parser is None:
            if entry.get("args"):
                problems.add(f"{where}.args", f"plugin {name!r} takes no args")
            continue
        args[name] = parser(entry.get("args"), f"{where}.args", problems)
    return args


def _resources(value: Any, path: str, problems: _Problems) -> tuple[tuple[str, int], ...]:
    resources: list[tuple[str, int]] = []
    for index, item in enumerate(_list(value, path, problems)):
        where = f"{path}[{index}]"
        entry = _mapping(item, where, problems, {"name", "weight"})
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            problems.add(f"{where}.name", "required: a resource name")
            continue
        weight = 1
        if entry.get("weight") is not None:
            weight = _int(entry["weight"], f"{where}.weight", problems, low=1, high=MAX_WEIGHT) or 1
        if any(name == seen for seen, _ in resources):
            problems.add(f"{where}.name", f"resource {name!r} is listed twice")
        resources.append((name, weight))
    if value is not None and not resources:
        problems.add(path, "must list at least one resource")
    return tuple(resources) or node_resources_fit.DEFAULT_RESOURCES


def _shape(value: Any, path: str, problems: _Problems) -> tuple[node_resources_fit.ShapePoint, ...]:
    points: list[node_resources_fit.ShapePoint] = []
    for index, item in enumerate(_list(value, path, problems)):
        where = f"{path}[{index}]"
        entry = _mapping(item, where, problems, {"utilization", "score"})
        utilization = _int(entry.get("utilization"), f"{where}.utilization", problems, low=0, high=100)
        score = _int(entry.get("score"), f"{where}.score", problems, low=0, high=node_resources_fit.MAX_SHAPE_SCORE)
        if utilization is None or score is None:
            continue
        if points and utilization <= points[-1].utilization:
            problems.add(f"{where}.utilization", "utilization values must be in strictly increasing order")
        points.append(node_resources_fit.ShapePoint(utilization, score))
    if not points:
        problems.add(path, "required: at least one {utilization, score} point")
    return tuple(points)


def _fit_args(value: Any, path: str, problems: _Problems) -> dict[str, Any]:
    args = _mapping(value, path, problems, {"scoringStrategy"})
    strategy = _mapping(args.get("scoringStrategy"), f"{path}.scoringStrategy", problems,
                        {"type", "resources", "requestedToCapacityRatio"})
    result: dict[str, Any] = {}
    kind = strategy.get("type", "LeastAllocated")
    types = ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio")
    if kind not in types:
        problems.add(f"{path}.scoringStrategy.type",
                     f"unknown scoring strategy {kind!r} (supported: {', '.join(types)})")
        return result
    result["strategy"] = kind
    result["resources"] = _resources(strategy.get("resources"), f"{path}.scoringStrategy.resources", problems)
    ratio_path = f"{path}.scoringStrategy.requestedToCapacityRatio"
    if kind == "RequestedToCapacityRatio":
        ratio = _mapping(strategy.get("requestedToCapacityRatio"), ratio_path, problems, {"shape"})
        result["shape"] = _shape(ratio.get("shape"), f"{ratio_path}.shape", problems)
    elif "requestedToCapacityRatio" in strategy:
        problems.add(ratio_path, "only for the RequestedToCapacityRatio strategy")
    return result


def _balanced_args(value: Any, path: str, problems: _Problems) -> dict[str, Any]:
    args = _mapping(value, path, problems, {"resources"})
    return {"resources": _resources(args.get("resources"), f"{path}.resources", problems)}


_ARGS: dict[str, Callable[[Any, str, _Problems], dict[str, Any]]] = {
    node_resources_fit.NAME: _fit_args,
    node_resources_fit.BALANCED_NAME: _balanced_args,
}
