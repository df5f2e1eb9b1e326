"""The seam between ``sampan rollout`` and each kind it can roll out.

A kind plugs in with one ``RolloutKind`` (registered in
control/cli/rollouts/__init__.py): how to read a rollout's progress from the
object, its revision history, and how to go back to a revision. The verbs
that only edit the object (pause, resume, restart) are the command's own,
guided by the flags here.

Contracts:

- ``status(obj, revision)`` is pure: the line kubectl would print for the
  object as it is now and whether the rollout is done; a rollout that
  cannot finish (a Deployment past its progress deadline) raises
  CommandError with the whole line (``error: ...``). ``revision`` > 0 pins
  the revision the caller expects.
- ``history(api, obj)`` returns the object's revisions, oldest first.
- ``undo(api, obj, to_revision)`` goes back to ``to_revision`` (0: the
  previous one) by writing the object (compare-and-swap on its
  resourceVersion: a ConflictError makes the caller read it again and
  retry) and returns what happened, kubectl's words (``rolled back``,
  ``skipped rollback (...)``); an impossible undo raises CommandError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from google.protobuf.message import Message

from control.client import Client
from protos.api.v1 import core_pb2


@dataclass(frozen=True)
class RolloutStatus:
    message: str
    done: bool


@dataclass(frozen=True)
class Revision:
    number: int
    change_cause: str
    template: core_pb2.PodTemplateSpec


@dataclass(frozen=True)
class RolloutKind:
    """What ``sampan rollout`` does for one kind (see the module docstring for each contract)."""

    status: Callable[[Message, int], RolloutStatus]
    history: Callable[[Client, Message], Awaitable[list[Revision]]]
    undo: Callable[[Client, Message, int], Awaitable[str]]
    # The kind has spec.paused (pause and resume apply).
    pausable: bool = False
    # Why the object may not be restarted now (None: it may), as kubectl words it.
    restart_refusal: Callable[[Message], str | None] = lambda obj: None
