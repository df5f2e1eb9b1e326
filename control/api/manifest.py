"""Manifests: Kubernetes YAML and JSON documents to and from Sampan's typed messages.

Three steps, each as strict as kubectl with ``--validate=strict``:

1. ``load_documents`` reads a YAML stream (JSON is YAML) into plain dicts.
   The stream is read event by event, not through PyYAML's composer, which
   recurses once per nesting level and expands aliases by sharing. So a
   document nested 10,000 deep fails at level 101 with a clear error instead
   of a RecursionError, and a billion-laughs document fails once its aliases
   would have expanded to more than ``MAX_ALIAS_NODES`` nodes. Duplicate keys,
   non-string keys and tags other than YAML's plain types are errors too.
2. ``to_message`` / ``from_dict`` turn a dict into the kind's protobuf message
   by walking its descriptor: keys are the fields' JSON names, unknown keys
   and wrong JSON types are errors naming the field path, and every error in
   a document is reported at once.
3. ``to_dict`` is the reverse (only fields that are set, Kubernetes' key
   order), and ``dump_yaml`` / ``dump_json`` print the result.

Kubernetes-isms kept on purpose: a null value means "not set"; YAML 1.1
scalars (``yes``, ``0644``) mean what they mean to Kubernetes; timestamps stay
strings; quantities may be written as numbers (``cpu: 0.5``) and are stored as
their canonical string (``"500m"``); ``map<string, bytes>`` fields take base64.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from control.api import kinds, quantity
from control.api.kinds import Kind

MAX_MANIFEST_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 100
# Nodes that aliases may add to one document once expanded. Real manifests
# alias a few small blocks; a billion-laughs document passes this in its
# fourth or fifth level.
MAX_ALIAS_NODES = 10_000

_INT_OR_STRING = "sampan.api.v1.IntOrString"
# Fields that hold resource quantities: numbers are accepted there and stored
# as canonical quantity strings, as Kubernetes' resource.Quantity does.
_QUANTITY_FIELDS = frozenset({
    "sampan.api.v1.ResourceRequirements.limits",
    "sampan.api.v1.ResourceRequirements.requests",
    "sampan.api.v1.NodeStatus.capacity",
    "sampan.api.v1.NodeStatus.allocatable",
    "sampan.api.v1.PodSpec.overhead",
    "sampan.api.v1.EmptyDirVolumeSource.size_limit",
    "sampan.api.v1.ResourceFieldSelector.divisor",
})
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1, "32-bit integer"),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1, "32-bit integer"),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1, "32-bit integer"),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1, "64-bit integer"),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1, "64-bit integer"),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1, "64-bit integer"),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1, "unsigned 32-bit integer"),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1, "unsigned 32-bit integer"),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1, "unsigned 64-bit integer"),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1, "unsigned 64-bit integer"),
}
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
_TOP_LEVEL_FIRST = ("apiVersion", "kind", "metadata", "spec")


# ------------------------------------------------------------------- errors

# Error types whose text Kubernetes prints without the offending value.
_TYPES_WITHOUT_VALUE = frozenset({"Required value", "Forbidden", "Too long", "Internal error"})
# Decoding errors (not field.Error in Kubernetes): printed as "path: detail".
_TYPES_DETAIL_ONLY = frozenset({"Invalid type", "Invalid YAML"})


@dataclass(frozen=True)
class FieldError:
    """One broken rule at one field path, printed the way Kubernetes prints it.

    ``type`` is Kubernetes' error type text ("Invalid value", "Required value",
    "Unsupported value", "Duplicate value", "Not found", "Forbidden", "Too long"),
    or a decoding error: "unknown field", "Invalid type", "Invalid YAML".
    ``value`` is the offending value, shown where Kubernetes shows it; None
    means it is not shown (Kubernetes' field.OmitValue).
    """

    path: str
    type: str
    detail: str = ""
    value: str | int | float | bool | None = None

    def __str__(self) -> str:
        if self.type == "unknown field":
            return f'unknown field "{self.path}"'
        if self.type in _TYPES_DETAIL_ONLY:
            return f"{self.path}: {self.detail}" if self.path else self.detail
        text = self.type
        if self.type not in _TYPES_WITHOUT_VALUE and self.value is not None:
            text += f": {render_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return f"{self.path}: {text}" if self.path else text


def render_value(value: object) -> str:
    """A value as Kubernetes quotes it in messages: strings in double quotes."""
    if isinstance(value, (str, bool)) or value is None:
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class ManifestError(ValueError):
    """A manifest that cannot be read or converted; ``errors`` lists every problem.

    ``document`` (the index in the YAML stream) and ``line`` (1-based) locate
    errors found while reading YAML; they are None for conversion errors.
    """

    def __init__(
        self,
        errors: list[FieldError],
        *,
        source: str = "",
        document: int | None = None,
        line: int | None = None,
    ) -> None:
        self.errors = list(errors)
        self.source = source
        self.document = document
        self.line = line
        super().__init__(self._text())

    def _text(self) -> str:
        where = [part for part in (
            self.source,
            f"document {self.document}" if self.document is not None else "",
            f"line {self.line}" if self.line is not None else "",
        ) if part]
        body = str(self.errors[0]) if len(self.errors) == 1 else "[" + ", ".join(map(str, self.errors)) + "]"
        return f"{', '.join(where)}: {body}" if where else body


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


# --------------------------------------------------------------- YAML input

_YAMLLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_COLLECTION_TAGS = {
    yaml.MappingStartEvent: (None, "!", _TAG + "map"),
    yaml.SequenceStartEvent: (None, "!", _TAG + "seq"),
}


# Markers for a mapping's pending key: none read yet, or YAML's merge key "<<".
_NO_KEY = object()
_MERGE = object()


class _Frame:
    """A mapping or sequence being built, with what is needed to report on it."""

    __slots__ = ("value", "path", "anchor", "nodes", "key", "key_line", "lines", "merges")

    def __init__(self, value: dict[str, Any] | list[Any], path: str, anchor: str | None) -> None:
        self.value = value
        self.path = path
        self.anchor = anchor
        self.nodes = 1  # this node plus everything under it, aliases expanded
        self.key: Any = _NO_KEY
        self.key_line = 0
        self.lines: dict[str, int] = {}
        self.merges: list[dict[str, Any]] = []

    def child_path(self) -> str:
        if isinstance(self.value, list):
            return _index(self.path, len(self.value))
        if self.key is _NO_KEY or self.key is _MERGE:
            return self.path
        return _child(self.path, str(self.key))


class _DocumentReader:
    """Builds plain values from PyYAML's event stream, one document at a time."""

    def __init__(self, text: str, *, source: str) -> None:
        self._loader = _YAMLLoader(text)
        self._source = source
        self._document = 0

    def documents(self) -> list[tuple[int, Any]]:
        found: list[tuple[int, Any]] = []
        try:
            self._loader.get_event()  # StreamStart
            while not self._loader.check_event(yaml.StreamEndEvent):
                self._loader.get_event()  # DocumentStart
                found.append((self._document, self._read_document()))
                self._loader.get_event()  # DocumentEnd
                self._document += 1
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = " ".join(part for part in (exc.context, exc.problem) if part)
            if "nesting depth" in problem:
                # PyYAML >= 6.0.4 stops very deep flow collections while scanning,
                # before our own depth check sees them: say it the same way.
                problem = f"nesting is deeper than {MAX_DEPTH} levels"
            raise self._error(FieldError("", "Invalid YAML", problem), mark.line if mark else None) from None
        except yaml.YAMLError as exc:  # the reader's errors (control characters) carry no mark
            raise self._error(FieldError("", "Invalid YAML", str(exc).splitlines()[0]), None) from None
        finally:
            self._loader.dispose()
        return found

    def _error(self, error: FieldError, line: int | None) -> ManifestError:
        return ManifestError(
            [error], source=self._source, document=self._document,
            line=None if line is None else line + 1,
        )

    def _read_document(self) -> Any:
        anchors: dict[str, tuple[Any, int]] = {}
        alias_nodes = 0
        stack: list[_Frame] = []
        while True:
            event = self._loader.get_event()
            line = event.start_mark.line
            path = stack[-1].child_path() if stack else ""
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    raise self._error(FieldError(
                        path, "Invalid YAML", f"nesting is deeper than {MAX_DEPTH} levels"), line)
                if event.tag not in _COLLECTION_TAGS[type(event)]:
                    raise self._error(FieldError(path, "Invalid YAML", f"unsupported tag {event.tag}"), line)
                if stack and isinstance(stack[-1].value, dict) and stack[-1].key is _NO_KEY:
                    raise self._error(FieldError(
                        path, "Invalid YAML", "mapping keys must be strings, not collections"), line)
                empty: dict[str, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
                stack.append(_Frame(empty, path, event.anchor))
                continue
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                value = self._merged(frame)
                if frame.anchor is not None:
                    anchors[frame.anchor] = (value, frame.nodes)
                nodes = frame.nodes
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise self._error(FieldError(
                        path, "Invalid YAML", f"undefined or recursive alias *{event.anchor}"), line)
                original, nodes = anchors[event.anchor]
                alias_nodes += nodes
                if alias_nodes > MAX_ALIAS_NODES:
                    raise self._error(FieldError(
                        path, "Invalid YAML",
                        f"aliases expand to more than {MAX_ALIAS_NODES} nodes"), line)
                value = copy.deepcopy(original)
            elif isinstance(event, yaml.ScalarEvent):
                value = self._scalar(event, path)
                nodes = 1
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
            else:  # pragma: no cover - the parser yields nothing else inside a document
                raise self._error(FieldError(path, "Invalid YAML", f"unexpected {event}"), line)
            if not stack:
                return value
            self._add(stack[-1], value, nodes, event, line)

    def _add(self, frame: _Frame, value: Any, nodes: int, event: yaml.Event, line: int) -> None:
        frame.nodes += nodes
        if isinstance(frame.value, list):
            frame.value.append(value)
            return
        if frame.key is _NO_KEY:
            if isinstance(event, yaml.ScalarEvent) and self._is_merge_key(event):
                frame.key = _MERGE
            elif not isinstance(value, str):
                raise self._error(FieldError(
                    _child(frame.path, str(value)), "Invalid YAML",
                    f"mapping keys must be strings, got {_describe(value)}"), line)
            elif value in frame.lines:
                raise self._error(FieldError(
                    _child(frame.path, value), "Duplicate value", f"key already set at line {frame.lines[value]}",
                    value=value), line)
            else:
                frame.key, frame.key_line = value, line
            return
        if frame.key is _MERGE:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                raise self._error(FieldError(
                    _child(frame.path, "<<"), "Invalid YAML", "a merge key needs a mapping or a list of mappings"),
                    line)
            frame.merges.extend(sources)
        else:
            frame.value[frame.key] = value
            frame.lines[frame.key] = frame.key_line + 1
        frame.key = _NO_KEY

    @staticmethod
    def _merged(frame: _Frame) -> dict[str, Any] | list[Any]:
        # YAML merge keys: explicit keys win, then earlier merged mappings.
        if not frame.merges or not isinstance(frame.value, dict):
            return frame.value
        merged: dict[str, Any] = {}
        for source in reversed(frame.merges):
            merged.update(source)
        merged.update(frame.value)
        return merged

    def _is_merge_key(self, event: yaml.ScalarEvent) -> bool:
        return self._resolve(event) == _TAG + "merge"

    def _resolve(self, event: yaml.ScalarEvent) -> str:
        if event.tag in (None, "!"):
            if event.tag == "!" or not event.implicit[0]:
                return _TAG + "str"
            return self._loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        return event.tag

    def _scalar(self, event: yaml.ScalarEvent, path: str) -> Any:
        tag = self._resolve(event)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        line = event.start_mark.line
        if tag in (_TAG + "timestamp", _TAG + "str", _TAG + "merge"):
            # Kubernetes reads YAML timestamps as the strings they are written as.
            return event.value
        if tag == _TAG + "binary":
            return "".join(event.value.split())
        construct = {
            _TAG + "null": self._loader.construct_yaml_null,
            _TAG + "bool": self._loader.construct_yaml_bool,
            _TAG + "int": self._loader.construct_yaml_int,
            _TAG + "float": self._loader.construct_yaml_float,
        }.get(tag)
        if construct is None:
            raise self._error(FieldError(path, "Invalid YAML", f"unsupported tag {tag}"), line)
        try:
            return construct(node)
        except (ValueError, yaml.YAMLError):
            raise self._error(FieldError(
                path, "Invalid YAML", f"{event.value!r} is not a valid {tag.removeprefix(_TAG)}"), line) from None


def load_documents(data: str | bytes, *, source: str = "") -> list[dict[str, Any]]:
    """Every object in a YAML (or JSON) stream, in order.

    Empty documents are skipped; a ``kind: List`` document contributes its
    ``items``. Raises ManifestError naming the document, line and path of the
    first problem: syntax, duplicate or non-string keys, aliases expanding
    past ``MAX_ALIAS_NODES``, nesting deeper than ``MAX_DEPTH``, a document
    that is not a mapping, or input larger than ``MAX_MANIFEST_BYTES``.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError([FieldError(
            "", "Too long", f"must have at most {MAX_MANIFEST_BYTES} bytes")], source=source)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestError([FieldError(
                "", "Invalid YAML", f"not UTF-8: invalid byte at offset {exc.start}")], source=source) from None
    objects: list[dict[str, Any]] = []
    for index, document in _DocumentReader(data, source=source).documents():
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ManifestError([FieldError(
                "", "Invalid type", f"a manifest must be a mapping, got {_describe(document)}")],
                source=source, document=index)
        if document.get("kind") == "List" and "items" in document:
            objects.extend(_list_items(document, source=source, index=index))
        else:
            objects.append(document)
    return objects


def _list_items(obj: dict[str, Any], *, source: str, index: int) -> list[dict[str, Any]]:
    items = obj["items"]
    if items is None:
        return []
    if not isinstance(items, list):
        raise ManifestError([FieldError(
            "items", "Invalid type", f"expected array, got {_describe(items)}")], source=source, document=index)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ManifestError([FieldError(
                _index("items", i), "Invalid type", f"a manifest must be a mapping, got {_describe(item)}")],
                source=source, document=index)
    return items


def _describe(value: object) -> str:
    """A JSON value as decoding errors name it: 'string "80"', 'number 1', 'object'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {render_value(value)}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 64 else value[:64] + "..."
        return f"string {render_value(shown)}"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


# ----------------------------------------------------- dict -> typed message

_INVALID = object()


def kind_of(obj: dict[str, Any]) -> Kind:
    """The kind a manifest names with apiVersion and kind."""
    if not isinstance(obj, dict):
        raise ManifestError([FieldError("", "Invalid type", f"expected object, got {_describe(obj)}")])
    errors = [
        FieldError(name, "Required value", f"every manifest must set {name}")
        for name in ("apiVersion", "kind") if not obj.get(name)
    ]
    errors += [
        FieldError(name, "Invalid type", f"expected string, got {_describe(obj[name])}")
        for name in ("apiVersion", "kind") if obj.get(name) and not isinstance(obj[name], str)
    ]
    if errors:
        raise ManifestError(errors)
    try:
        return kinds.by_api_version_kind(obj["apiVersion"], obj["kind"])
    except kinds.UnknownKindError as exc:
        raise ManifestError([FieldError("kind", "Invalid value", str(exc), value=obj["kind"])]) from exc


def to_message(obj: dict[str, Any]) -> Message:
    """The typed message for a manifest, its kind chosen by apiVersion and kind."""
    return from_dict(kind_of(obj), obj)


def from_dict(kind: Kind, obj: dict[str, Any]) -> Message:
    """Convert a manifest dict to ``kind``'s message, strictly.

    Raises ManifestError listing every unknown field and every value of the
    wrong JSON type, each with its path (``spec.containers[0].imagee``).
    """
    if not isinstance(obj, dict):
        raise ManifestError([FieldError("", "Invalid type", f"expected object, got {_describe(obj)}")])
    errors: list[FieldError] = []
    message = kind.new()
    _fill(message, obj, "", errors)
    for name, expected in (("apiVersion", kind.api_version), ("kind", kind.kind)):
        given = obj.get(name)
        if isinstance(given, str) and given != expected:
            errors.append(FieldError(name, "Invalid value", f'must be "{expected}"', value=given))
    if errors:
        raise ManifestError(errors)
    return message


@functools.cache
def _fields_by_json_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    return {field.json_name: field for field in descriptor.fields}


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.is_repeated
        and field.message_type.GetOptions().map_entry
    )


def _type_error(path: str, expected: str, value: object) -> FieldError:
    shown = value if isinstance(value, (str, int, float, bool)) else None
    return FieldError(path, "Invalid type", f"expected {expected}, got {_describe(value)}", value=shown)


def _fill(message: Message, obj: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    fields = _fields_by_json_name(message.DESCRIPTOR)
    for key, value in obj.items():
        field_path = _child(path, str(key))
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            errors.append(FieldError(field_path, "unknown field"))
        elif value is not None:  # Kubernetes ignores nulls: the field stays unset
            _set_field(message, field, value, field_path, errors)


def _set_field(
    message: Message, field: FieldDescriptor, value: Any, path: str, errors: list[FieldError]
) -> None:
    if _is_map(field):
        _set_map(getattr(message, field.name), field, value, path, errors)
    elif field.is_repeated:
        _set_repeated(getattr(message, field.name), field, value, path, errors)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        _set_message(getattr(message, field.name), value, path, errors)
    else:
        converted = _scalar(field, value, path, errors, is_quantity=field.full_name in _QUANTITY_FIELDS)
        if converted is not _INVALID:
            setattr(message, field.name, converted)


def _set_message(target: Message, value: Any, path: str, errors: list[FieldError]) -> None:
    if target.DESCRIPTOR.full_name == _INT_OR_STRING:
        _set_int_or_string(target, value, path, errors)
    elif not isinstance(value, dict):
        errors.append(_type_error(path, "object", value))
    else:
        target.SetInParent()  # `emptyDir: {}` is set, not absent
        _fill(target, value, path, errors)


def _set_int_or_string(target: Message, value: Any, path: str, errors: list[FieldError]) -> None:
    if isinstance(value, str):
        target.str_value = value
    elif isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        target.int_value = value
    else:
        errors.append(_type_error(path, "integer or string", value))


def _set_map(target: Any, field: FieldDescriptor, value: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(value, dict):
        errors.append(_type_error(path, "object", value))
        return
    value_field = field.message_type.fields_by_name["value"]
    is_quantity = field.full_name in _QUANTITY_FIELDS
    for key, item in value.items():
        item_path = _key(path, str(key))
        if not isinstance(key, str):
            errors.append(FieldError(item_path, "Invalid type", f"keys must be strings, got {_describe(key)}"))
        elif item is None:
            continue
        elif value_field.type == FieldDescriptor.TYPE_MESSAGE:
            _set_message(target[key], item, item_path, errors)
        else:
            converted = _scalar(value_field, item, item_path, errors, is_quantity=is_quantity)
            if converted is not _INVALID:
                target[key] = converted


def _set_repeated(target: Any, field: FieldDescriptor, value: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(value, list):
        errors.append(_type_error(path, "array", value))
        return
    for i, item in enumerate(value):
        item_path = _index(path, i)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            element = target.add()
            if item is not None:  # as in Go, a null element is a zero value
                _set_message(element, item, item_path, errors)
        elif item is None:
            target.append(field.default_value)
        else:
            converted = _scalar(field, item, item_path, errors, is_quantity=False)
            if converted is not _INVALID:
                target.append(converted)


def _scalar(
    field: FieldDescriptor, value: Any, path: str, errors: list[FieldError], *, is_quantity: bool
) -> Any:
    """``value`` converted for a scalar field, or _INVALID after recording why not."""
    kind = field.type
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return value
        if is_quantity and is_number and Decimal(repr(value)).is_finite():
            return quantity.format_decimal(Decimal(repr(value)))
        errors.append(_type_error(path, "quantity (string or number)" if is_quantity else "string", value))
    elif kind == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        errors.append(_type_error(path, "boolean", value))
    elif kind in _INT_RANGES:
        low, high, name = _INT_RANGES[kind]
        if not (isinstance(value, int) and not isinstance(value, bool)):
            errors.append(_type_error(path, "integer", value))
        elif not low <= value <= high:
            errors.append(FieldError(path, "Invalid type", f"expected {name}, got number {value} (out of range)",
                                     value=value))
        else:
            return value
    elif kind in _FLOAT_TYPES:
        if is_number:
            return float(value)
        errors.append(_type_error(path, "number", value))
    elif kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            errors.append(_type_error(path, "base64 string", value))
        else:
            try:
                return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
            except (binascii.Error, ValueError) as exc:
                errors.append(FieldError(path, "Invalid value", f"illegal base64 data: {exc}"))
    elif kind == FieldDescriptor.TYPE_ENUM:
        number = field.enum_type.values_by_name.get(value) if isinstance(value, str) else None
        if number is not None:
            return number.number
        errors.append(_type_error(path, f"one of {', '.join(field.enum_type.values_by_name)}", value))
    else:  # pragma: no cover - no other scalar types exist
        errors.append(FieldError(path, "Internal error", f"unsupported field type {kind}"))
    return _INVALID



# ----------------------------------------------------- typed message -> dict


def to_dict(message: Message) -> dict[str, Any]:
    """The manifest for a message: only fields that are set, under their JSON
    names; apiVersion, kind, metadata and spec first and status last, the
    rest in proto order; map keys sorted, as Kubernetes prints them."""
    out = _message_to_dict(message)
    first = {key: out.pop(key) for key in _TOP_LEVEL_FIRST if key in out}
    status = {"status": out.pop("status")} if "status" in out else {}
    return {**first, **out, **status}


def _message_to_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if _is_map(field):
            if value:
                value_field = field.message_type.fields_by_name["value"]
                out[field.json_name] = {key: _to_json(value_field, value[key]) for key in sorted(value)}
        elif field.is_repeated:
            if value:
                out[field.json_name] = [_to_json(field, item) for item in value]
        elif field.has_presence:
            if message.HasField(field.name):
                converted = _to_json(field, value)
                if converted is not None:
                    out[field.json_name] = converted
        elif value != field.default_value:
            out[field.json_name] = _to_json(field, value)
    return out


def _to_json(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if value.DESCRIPTOR.full_name == _INT_OR_STRING:
            which = value.WhichOneof("value")
            return None if which is None else getattr(value, which)
        return _message_to_dict(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    return value


# ------------------------------------------------------------------- output


class _ManifestDumper(yaml.SafeDumper):
    """Block style, keys in the order given, multi-line strings as `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # The emitter falls back to quoting when a block cannot hold the text exactly.
    # A string that would read back as another type ("6", "true") gets double
    # quotes, as kubectl prints it, rather than PyYAML's single quotes.
    if "\n" in data:
        style = "|"
    elif data and dumper.resolve(yaml.ScalarNode, data, (True, False)) != _TAG + "str":
        style = '"'
    else:
        style = None
    return dumper.represent_scalar(_TAG + "str", data, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def dump_yaml(obj: dict[str, Any]) -> str:
    """A manifest as block-style YAML that ``load_documents`` reads back unchanged."""
    return yaml.dump(
        obj, Dumper=_ManifestDumper, sort_keys=False, default_flow_style=False,
        allow_unicode=True, width=1 << 16,
    )


def dump_json(obj: dict[str, Any]) -> str:
    """A manifest as JSON, indented as ``kubectl get -o json`` prints it."""
    return json.dumps(obj, indent=4, ensure_ascii=False) + "\n"
