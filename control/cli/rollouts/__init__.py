"""The kinds ``sampan rollout`` works on, each through its RolloutKind (control/cli/rollouts/base.py).

Adding a kind is one module beside deployment.py defining its RolloutKind
and one entry in ``ROLLOUT_KINDS``; the command (control/cli/commands/
rollout.py) needs no change.
"""

from __future__ import annotations

from control.api import kinds
from control.cli.errors import CommandError
from control.cli.rollouts.base import Revision, RolloutKind, RolloutStatus
from control.cli.rollouts.daemonset import DAEMONSET
from control.cli.rollouts.deployment import DEPLOYMENT
from control.cli.rollouts.statefulset import STATEFULSET

__all__ = ["ROLLOUT_KINDS", "Revision", "RolloutKind", "RolloutStatus", "rollout_kind"]

ROLLOUT_KINDS: dict[str, RolloutKind] = {
    "Deployment": DEPLOYMENT,
    "DaemonSet": DAEMONSET,
    "StatefulSet": STATEFULSET,
}


def rollout_kind(kind: kinds.Kind, *, verb: str) -> RolloutKind:
    """The kind's rollout handling; a kind without one is an error naming the kinds that have one."""
    found = ROLLOUT_KINDS.get(kind.kind)
    if found is None:
        supported = ", ".join(kinds.by_kind(name).plural for name in ROLLOUT_KINDS)
        raise CommandError(f"error: rollout {verb} is not supported for {kind.plural} (supported: {supported})")
    return found
