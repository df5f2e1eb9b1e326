"""InterPodAffinity: required affinity and anti-affinity by topology key,
existing pods' anti-affinity, and preferred terms as a score."""

from __future__ import annotations

from control.scheduler.framework import CycleState, schedule_one
from control.scheduler.plugins import default_profile
from control.scheduler.plugins.inter_pod_affinity import new
from tests.scheduler.builders import make_node, make_pod, node_info

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def term(app: str, topology_key: str = HOSTNAME) -> dict:
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": topology_key}


def anti_affinity(app: str, topology_key: str = HOSTNAME) -> dict:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(app, topology_key)]}}


def affinity(app: str, topology_key: str = HOSTNAME) -> dict:
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(app, topology_key)]}}


def verdicts(pod, infos) -> dict[str, tuple[str, ...]]:
    state = CycleState(nodes=infos)
    return {info.name: new().filter(pod, info, state).reasons for info in infos}


def test_anti_affinity_by_hostname_puts_replicas_on_different_nodes():
    infos = [node_info(make_node(name)) for name in ("n1", "n2", "n3")]
    profile = default_profile()
    placed = []
    for index in range(3):
        pod = make_pod(f"web-{index}", labels={"app": "web"}, affinity=anti_affinity("web"))
        chosen, failure = schedule_one(pod, infos, profile)
        assert failure is None
        pod.spec.node_name = chosen
        infos = [info.with_pod(pod) if info.name == chosen else info for info in infos]
        placed.append(chosen)
    assert sorted(placed) == ["n1", "n2", "n3"]
    chosen, failure = schedule_one(make_pod("web-3", labels={"app": "web"}, affinity=anti_affinity("web")),
                                   infos, profile)
    assert chosen is None
    assert failure.message == "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."


def test_existing_pods_anti_affinity_keeps_matching_pods_away():
    guard = make_pod("guard", labels={"app": "guard"}, affinity=anti_affinity("noisy"), node_name="n1")
    infos = [node_info(make_node("n1"), guard), node_info(make_node("n2"))]
    assert verdicts(make_pod(labels={"app": "noisy"}), infos) == {
        "n1": ("node(s) didn't satisfy existing pods anti-affinity rules",), "n2": ()}


def test_affinity_requires_a_matching_pod_in_the_same_zone():
    cache = make_pod("cache", labels={"app": "cache"}, node_name="n1")
    infos = [node_info(make_node("n1", labels={ZONE: "a"}), cache),
             node_info(make_node("n2", labels={ZONE: "a"})),
             node_info(make_node("n3", labels={ZONE: "b"}))]
    assert verdicts(make_pod(affinity=affinity("cache", ZONE)), infos) == {
        "n1": (), "n2": (), "n3": ("node(s) didn't match pod affinity rules",)}


def test_affinity_is_namespaced_by_default():
    cache = make_pod("cache", namespace="other", labels={"app": "cache"}, node_name="n1")
    infos = [node_info(make_node("n1"), cache)]
    assert verdicts(make_pod(affinity=affinity("cache")), infos) == {
        "n1": ("node(s) didn't match pod affinity rules",)}


def test_the_first_pod_of_a_self_affine_group_may_start_anywhere():
    infos = [node_info(make_node("n1")), node_info(make_node("n2"))]
    pod = make_pod(labels={"app": "db"}, affinity=affinity("db"))
    assert verdicts(pod, infos) == {"n1": (), "n2": ()}


def test_preferred_affinity_scores_nodes_near_matching_pods():
    cache = make_pod("cache", labels={"app": "cache"}, node_name="n2")
    infos = [node_info(make_node("n1")), node_info(make_node("n2"), cache)]
    preferred = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term("cache")}]}}
    assert schedule_one(make_pod(affinity=preferred), infos, default_profile())[0] == "n2"
