"""Label and field selectors, in Kubernetes' syntax and semantics.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``,
``a`` (exists), ``!a`` (does not exist), ``a>3``/``a<3`` (numeric), joined by
commas (all must hold). Field selectors: ``path=value``, ``path==value``,
``path!=value`` over an object's scalar fields named by their JSON path
(``metadata.name``, ``spec.nodeName``, ``status.phase`` ...).

Both parse once into an immutable selector whose ``matches`` is cheap, so the
server can filter every watch event with it. Label keys and values must follow
the rules labels themselves follow (control/api/names.py), so a selector no
valid label could match is an error rather than a silently empty result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from google.protobuf.message import Message

from control.api.names import label_value_errors, qualified_name_errors


class SelectorError(ValueError):
    """A selector string that does not parse; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist, Gt, Lt (= and != become In/NotIn)
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if not present:
            return False
        try:
            have = int(labels[self.key])
        except ValueError:
            return False
        bound = int(self.values[0])
        return have > bound if self.operator == "Gt" else have < bound


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.operator == "Exists":
                parts.append(r.key)
            elif r.operator == "DoesNotExist":
                parts.append("!" + r.key)
            elif r.operator in ("Gt", "Lt"):
                parts.append(f"{r.key}{'>' if r.operator == 'Gt' else '<'}{r.values[0]}")
            else:
                op = "in" if r.operator == "In" else "notin"
                parts.append(f"{r.key} {op} ({','.join(r.values)})")
        return ",".join(parts)


_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a label selector string (raises SelectorError)."""
    tokens = _tokenize(text)
    reqs: list[Requirement] = []
    i = 0

    def expect_value(pos: int) -> tuple[str, int]:
        if pos < len(tokens) and tokens[pos] not in ("(", ")", ",", "!=", "==", "=", "!", ">", "<"):
            return tokens[pos], pos + 1
        return "", pos

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            if i + 1 >= len(tokens):
                raise SelectorError(f"unable to parse requirement: {text!r}: key expected after '!'")
            key = tokens[i + 1]
            _reject_invalid("key", key, qualified_name_errors(key))
            reqs.append(Requirement(key, "DoesNotExist"))
            i += 2
        else:
            key = tok
            _reject_invalid("key", key, qualified_name_errors(key))
            i += 1
            op = tokens[i] if i < len(tokens) else ","
            if op == ",":
                reqs.append(Requirement(key, "Exists"))
            elif op in ("=", "==", "!="):
                value, i = expect_value(i + 1)
                _reject_invalid("value", value, label_value_errors(value))
                reqs.append(Requirement(key, "NotIn" if op == "!=" else "In", (value,)))
            elif op in (">", "<"):
                value, i = expect_value(i + 1)
                if not value.lstrip("-").isdigit():
                    raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer: {value!r}")
                reqs.append(Requirement(key, "Gt" if op == ">" else "Lt", (value,)))
            elif op in ("in", "notin"):
                if i + 1 >= len(tokens) or tokens[i + 1] != "(":
                    raise SelectorError(f"unable to parse requirement: found {tokens[i + 1] if i + 1 < len(tokens) else 'end'!r}, expected: '('")
                i += 2
                values: list[str] = []
                while True:
                    value, i = expect_value(i)
                    _reject_invalid("value", value, label_value_errors(value))
                    values.append(value)
                    if i < len(tokens) and tokens[i] == ",":
                        i += 1
                        continue
                    if i < len(tokens) and tokens[i] == ")":
                        i += 1
                        break
                    raise SelectorError(f"unable to parse requirement: expected ',' or ')' in {text!r}")
                reqs.append(Requirement(key, "In" if op == "in" else "NotIn", tuple(values)))
            else:
                raise SelectorError(f"unable to parse requirement: found {op!r}, expected: in, notin, =, ==, !=, gt, lt")
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(f"unable to parse requirement: found {tokens[i]!r}, expected: ','")
            i += 1
            if i >= len(tokens):
                raise SelectorError(f"unable to parse requirement: trailing ',' in {text!r}")
    return LabelSelector(tuple(reqs))


def from_label_selector_message(selector: Message) -> LabelSelector:
    """Convert a LabelSelector message (matchLabels, matchExpressions)."""
    reqs = [Requirement(k, "In", (v,)) for k, v in sorted(selector.match_labels.items())]
    for expr in selector.match_expressions:
        reqs.append(Requirement(expr.key, expr.operator, tuple(expr.values)))
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    path: str
    value: str
    negated: bool


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Message) -> bool:
        for req in self.requirements:
            equal = field_value(obj, req.path) == req.value
            if equal == req.negated:
                return False
        return True

    def check_paths(self, message_type: type[Message]) -> None:
        """Raise SelectorError for a path that names no scalar field of the kind."""
        for req in self.requirements:
            _resolve_path(message_type.DESCRIPTOR, req.path)


def parse_field_selector(text: str) -> FieldSelector:
    reqs: list[FieldRequirement] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(!=|==|=)\s*(.*)", part)
        if not match:
            raise SelectorError(f"invalid field selector: {part!r}: expected PATH=VALUE or PATH!=VALUE")
        path, op, value = match.groups()
        reqs.append(FieldRequirement(path, value.strip(), op == "!="))
    return FieldSelector(tuple(reqs))


def _resolve_path(descriptor, path: str) -> None:
    parts = path.split(".")
    for index, part in enumerate(parts):
        field = None if descriptor is None else next((f for f in descriptor.fields if f.json_name == part), None)
        if field is None or field.is_repeated:
            raise SelectorError(f'field label not supported: "{path}"')
        descriptor = field.message_type
        if index == len(parts) - 1 and descriptor is not None:
            raise SelectorError(f'field label not supported: "{path}" (not a scalar field)')


def field_value(obj: Message, path: str) -> str:
    """The string form of the scalar field at a JSON path ("" when unset)."""
    value: object = obj
    for part in path.split("."):
        descriptor = value.DESCRIPTOR  # type: ignore[attr-defined]
        field = next((f for f in descriptor.fields if f.json_name == part), None)
        if field is None:
            return ""
        value = getattr(value, field.name)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SelectorError(f"unable to parse selector {text!r} at position {pos}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _reject_invalid(part: str, text: str, problems: list[str]) -> None:
    """Raise SelectorError when a label key or value breaks the label rules."""
    if problems:
        raise SelectorError(f"invalid label {part} {text!r}: {'; '.join(problems)}")
