"""Name formats: Kubernetes' rules for names, keys and ports, with its messages.

Each check is a port of a function in k8s.io/apimachinery/pkg/util/validation
and, like it, returns a list of messages (empty when the value is valid), so
one bad name may break several rules at once. The checks know nothing of field
paths: the server's validation turns the messages into FieldErrors at a path,
and selector parsing turns them into a SelectorError. They live in the API
contract so that every side (server, client, CLI) applies one definition of
each rule.
"""

from __future__ import annotations

import re

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_ENV_VAR_NAME_MSG = (
    "a valid environment variable name must consist only of printable ASCII characters other than '='"
)
_PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"

_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_QUALIFIED_NAME = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)
_CONFIG_KEY = re.compile(_CONFIG_KEY_FMT)
_PORT_NAME_CHARSET = re.compile("[-a-z0-9]+")
_HAS_LETTER = re.compile(".*[a-z]")


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # Kubernetes' RegexError, double spaces and all.
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


_QUALIFIED_NAME_REGEX_ERROR = _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")


def _too_long(limit: int) -> str:
    return f"must be no more than {limit} characters"


def dns1123_label_errors(value: str) -> list[str]:
    """A DNS label: at most 63 lowercase alphanumerics and inner hyphens (namespace, container names)."""
    errors = [_too_long(63)] if len(value) > 63 else []
    if not _DNS1123_LABEL.fullmatch(value):
        if _DNS1123_SUBDOMAIN.fullmatch(value):
            errors.append("must not contain dots")
        else:
            errors.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errors


_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)


def dns1035_label_errors(value: str) -> list[str]:
    """A DNS label starting with a letter: Service names, which become DNS names."""
    errors = [_too_long(63)] if len(value) > 63 else []
    if not re.fullmatch(_DNS1035_LABEL_FMT, value):
        errors.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    """A DNS subdomain: dot-separated labels, at most 253 characters (most object names)."""
    errors = [_too_long(253)] if len(value) > 253 else []
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errors.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def qualified_name_errors(value: str) -> list[str]:
    """An optional DNS-subdomain prefix and '/', then a name of at most 63 characters (label keys)."""
    parts = value.split("/")
    errors: list[str] = []
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += ["prefix part " + message for message in dns1123_subdomain_errors(prefix)]
    elif len(parts) == 1:
        name = value
    else:
        return ["a qualified name " + _QUALIFIED_NAME_REGEX_ERROR
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part " + _too_long(63))
    if not _QUALIFIED_NAME.fullmatch(name):
        errors.append("name part " + _QUALIFIED_NAME_REGEX_ERROR)
    return errors


def label_value_errors(value: str) -> list[str]:
    """A label value: empty, or at most 63 characters shaped like a qualified name's name part."""
    errors = [_too_long(63)] if len(value) > 63 else []
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def config_key_errors(value: str) -> list[str]:
    """A ConfigMap or Secret key: also a file name when mounted, so no '.' or '..'."""
    errors = [_too_long(253)] if len(value) > 253 else []
    if not _CONFIG_KEY.fullmatch(value):
        errors.append(_regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errors.append("must not be '.'")
    elif value == "..":
        errors.append("must not be '..'")
    elif value.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def port_name_errors(value: str) -> list[str]:
    """An IANA_SVC_NAME: at most 15 lowercase alphanumerics and single inner hyphens."""
    errors = [_too_long(15)] if len(value) > 15 else []
    if not _PORT_NAME_CHARSET.fullmatch(value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.match(value):
        errors.append("must contain at least one letter (a-z)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def port_number_errors(value: int) -> list[str]:
    """A TCP, UDP or SCTP port number: 1 to 65535."""
    return [] if 1 <= value <= 65535 else [_PORT_RANGE_MSG]


def env_var_name_errors(value: str) -> list[str]:
    """An environment variable name: printable ASCII without '='."""
    if any(not 32 <= ord(char) <= 126 or char == "=" for char in value):
        return [_ENV_VAR_NAME_MSG]
    return []


def path_segment_name_errors(value: str) -> list[str]:
    """A name that is one URL path segment (Kubernetes' rule for RBAC names such as
    ``system:node-proxier``): not '.' or '..', no '/' or '%'."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{char}'" for char in "/%" if char in value]
