"""The kernel's ``ip sampan`` table read back as structure (from ``nft -j``), for assertions.

Tests check what the kernel holds, not the text the proxy sent: which
ClusterIP/NodePort keys the verdict maps hold and which chain each goes to,
which backends a Service's chain can reach (following its numgen verdict map
or goto to the endpoint chains and their DNAT), the hooks, the sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.proxy.netns import NodeNamespace


@dataclass
class KernelTable:
    hooks: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # chain -> (type, hook, priority)
    chains: dict[str, list[list[dict]]] = field(default_factory=dict)  # chain -> each rule's expressions
    maps: dict[str, dict[tuple, str]] = field(default_factory=dict)  # map -> key -> "goto CHAIN" / "drop"
    sets: dict[str, dict] = field(default_factory=dict)  # set -> its JSON declaration
    elements: dict[str, set[tuple]] = field(default_factory=dict)  # set -> its elements, as tuples

    def targets(self, chain: str) -> list[str]:
        """The chains ``chain`` goes to or jumps to, in rule order (numgen verdict maps included)."""
        found: list[str] = []
        for rule in self.chains.get(chain, []):
            for expr in rule:
                for verb in ("goto", "jump"):
                    if verb in expr:
                        found.append(expr[verb]["target"])
                if "vmap" in expr:
                    for _, verdict in expr["vmap"]["data"]["set"]:
                        found += [v["target"] for k, v in verdict.items() if k in ("goto", "jump")]
        return found

    def dnat(self, chain: str) -> list[tuple[str, int]]:
        """Where the chain's DNAT rules send connections."""
        found = []
        for rule in self.chains.get(chain, []):
            for expr in rule:
                if "dnat" not in expr:
                    continue
                found.append((expr["dnat"]["addr"], expr["dnat"]["port"]))
        return found

    def backends(self, service_chain: str) -> list[tuple[str, int]]:
        """The (address, port) pairs a Service port's chain can send a connection to, itself or through
        the chains it goes to (per-backend chains, under affinity)."""
        chains = [service_chain, *self.targets(service_chain)]
        return sorted({target for chain in chains for target in self.dnat(chain)})

    def numgen_moduli(self, chain: str) -> list[int]:
        """The ``numgen random mod N`` of each rule that draws one, in order."""
        found = []
        for rule in self.chains.get(chain, []):
            for expr in rule:
                key = expr["vmap"]["key"] if "vmap" in expr else expr["match"]["left"] if "match" in expr else {}
                if isinstance(key, dict) and "numgen" in key:
                    found.append(key["numgen"]["mod"])
        return found

    def service_chain(self, cluster_ip: str, protocol: str, port: int) -> str | None:
        verdict = self.maps.get("service-ips", {}).get((cluster_ip, protocol, port))
        return verdict.split(" ", 1)[1] if verdict and verdict.startswith("goto ") else None


def read_table(node: NodeNamespace) -> KernelTable | None:
    """The table as the kernel holds it, or None when there is none."""
    items = node.nft_json("list", "table", "ip", "sampan")
    if not items:
        return None
    table = KernelTable()
    for item in items:
        if "chain" in item:
            chain = item["chain"]
            table.chains.setdefault(chain["name"], [])
            if "hook" in chain:
                table.hooks[chain["name"]] = (chain["type"], chain["hook"], chain["prio"])
        elif "rule" in item:
            table.chains.setdefault(item["rule"]["chain"], []).append(item["rule"]["expr"])
        elif "map" in item:
            elements = {}
            for key, verdict in item["map"].get("elem", []):
                parts = tuple(key["concat"]) if isinstance(key, dict) and "concat" in key else (key,)
                (verb, body), = verdict.items()
                elements[parts] = f"{verb} {body['target']}" if isinstance(body, dict) else verb
            table.maps[item["map"]["name"]] = elements
        elif "set" in item:
            table.sets[item["set"]["name"]] = item["set"]
            table.elements[item["set"]["name"]] = {_element(e) for e in item["set"].get("elem", [])}
    return table


def ruleset_text(node: NodeNamespace) -> str:
    """``nft list ruleset`` of the node: every table, Sampan's and others'."""
    return node.nft("list", "ruleset")


def _element(item) -> tuple:
    """A set element as a tuple: ``("10.0.0.1",)``, or a concatenation's parts; timeouts left out."""
    if isinstance(item, dict) and "elem" in item:
        item = item["elem"]["val"]
    if isinstance(item, dict) and "concat" in item:
        return tuple(item["concat"])
    return (item,)
