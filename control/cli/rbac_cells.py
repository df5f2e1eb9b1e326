"""``get`` table cells for the RBAC kinds, with kubectl's columns.

- Role, ClusterRole: NAME and CREATED AT (the timestamp itself, not an age).
- RoleBinding, ClusterRoleBinding: NAME, ROLE (``ClusterRole/view``), AGE;
  ``-o wide`` adds USERS, GROUPS and SERVICEACCOUNTS (``namespace/name``),
  each a comma-separated list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from google.protobuf.message import Message

from control.cli import durations


def role_cells(role: Message, *, now: datetime, wide: bool) -> list[str]:
    return [role.metadata.name, role.metadata.creation_timestamp]


def subjects_by_kind(subjects: Iterable[Message]) -> tuple[list[str], list[str], list[str]]:
    """(users, groups, service accounts as namespace/name) as kubectl lists them."""
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in subjects:
        if subject.kind == "User":
            users.append(subject.name)
        elif subject.kind == "Group":
            groups.append(subject.name)
        elif subject.kind == "ServiceAccount":
            accounts.append(f"{subject.namespace}/{subject.name}" if subject.namespace else subject.name)
    return users, groups, accounts


def binding_cells(binding: Message, *, now: datetime, wide: bool) -> list[str]:
    cells = [binding.metadata.name, f"{binding.role_ref.kind}/{binding.role_ref.name}",
             durations.age(binding.metadata.creation_timestamp, at=now)]
    if wide:
        cells += [", ".join(names) for names in subjects_by_kind(binding.subjects)]
    return cells
