"""The nftables mode's record per Service port and its transactions of changed ports (proxy/nft_services.py).

Checked against the whole-table path it replaces between full syncs: for
a random sequence of states (Services added, removed, given or deprived of
backends, with NodePorts, Local policy, affinity, shared backends), the
record's table equals ``build_ruleset``'s and its transaction holds the
same lines as ``partial_transaction`` of the two whole tables. Then in a
kernel (a network namespace): after those incremental syncs the table is
the one a fresh full sync of the last state writes.
"""

from __future__ import annotations

import asyncio
import random

from proxy.modes import ModeOptions
from proxy.nft_ruleset import build_ruleset, partial_transaction
from proxy.nft_services import AppliedServices
from proxy.nftables import NftablesMode
from tests.proxy.nft_table import read_table
from tests.proxy.test_nft_ruleset import MARK, state, virtual


def random_state(rng: random.Random, previous: dict):
    """The previous state's Services with a few changed (kept objects stay the same objects)."""
    services = dict(previous)
    for _ in range(rng.randrange(1, 4)):
        index = rng.randrange(12)
        name = f"svc{index}"
        if rng.random() < 0.2:
            services.pop(name, None)
            continue
        backends = tuple(sorted({f"10.244.0.{rng.randrange(2, 10)}" for _ in range(rng.randrange(4))}))
        services[name] = virtual(name, ip=f"10.96.0.{index + 1}", backends=backends,
                                 node_port=30000 + index if index % 3 == 0 else 0,
                                 local=index % 6 == 0, affinity=60 if index % 4 == 1 else 0,
                                 nodes=tuple("n1" if i % 2 else "n2" for i in range(len(backends))))
    return services, state(*(services[name] for name in sorted(services)))


def test_the_record_gives_the_whole_table_path_s_table_and_transactions():
    rng = random.Random(3)
    applied = AppliedServices(node_name="n1")
    services, current = random_state(rng, {})
    assert applied.update(current, transaction=False) == ""
    assert applied.ruleset(mark=MARK) == build_ruleset(current, mark=MARK)
    for step in range(200):
        services, new = random_state(rng, services)
        expected = partial_transaction(build_ruleset(current, mark=MARK), build_ruleset(new, mark=MARK))
        script = applied.update(new)
        assert sorted(script.splitlines()) == sorted(expected.splitlines()), f"step {step}"
        assert applied.ruleset(mark=MARK) == build_ruleset(new, mark=MARK), f"step {step}"
        current = new


def test_a_backend_two_services_share_stays_in_the_hairpin_set_until_the_last_goes():
    applied = AppliedServices(node_name="n1")
    web, db = virtual("web", backends=("10.244.0.2",)), virtual("db", ip="10.96.0.11", backends=("10.244.0.2",))
    applied.update(state(web, db), transaction=False)
    assert "hairpin" not in applied.update(state(db))
    assert "delete element ip sampan hairpin { 10.244.0.2 . 10.244.0.2 }" in applied.update(state()).splitlines()


def test_an_unchanged_state_is_no_transaction():
    applied = AppliedServices(node_name="n1")
    services = state(virtual(), virtual("db", ip="10.96.0.11"))
    applied.update(services, transaction=False)
    assert applied.update(services) == ""
    assert applied.update(state(virtual(), virtual("db", ip="10.96.0.11"))) == ""  # equal, not the same objects


def test_incremental_syncs_leave_the_table_a_full_sync_writes(node):
    rng = random.Random(11)
    incremental = NftablesMode(ModeOptions(node_name="n1", nft=tuple(node.command("nft"))))
    services, current = random_state(rng, {})

    async def run() -> None:
        nonlocal services, current
        await incremental.sync(current, full=True)
        for _ in range(30):
            services, current = random_state(rng, services)
            await incremental.sync(current, full=False)

    asyncio.run(run())
    after_incremental = read_table(node)
    asyncio.run(NftablesMode(ModeOptions(node_name="n1", nft=tuple(node.command("nft")))).cleanup())
    asyncio.run(NftablesMode(ModeOptions(node_name="n1", nft=tuple(node.command("nft")))).sync(current, full=True))
    after_full = read_table(node)
    assert after_incremental is not None and after_full is not None
    assert (after_incremental.hooks, after_incremental.chains, after_incremental.maps, after_incremental.elements) == (
        after_full.hooks, after_full.chains, after_full.maps, after_full.elements)
    assert declarations(after_incremental) == declarations(after_full)


def declarations(table) -> dict:
    """The sets as declared (their kernel handles and elements left out)."""
    return {name: {k: v for k, v in body.items() if k not in ("handle", "elem")} for name, body in table.sets.items()}
