"""Every expected failure as the one line kubectl would print for it.

Commands raise (or, when they go on past a failure, word with
``error_line``) and ``main`` prints the line to stderr and exits 1:

- server errors: ``Error from server (NotFound): pods "x" not found``, the
  reason being the APIError's Kubernetes StatusReason; an object that fails
  validation reads ``The Pod "x" is invalid: ...`` as in kubectl;
- the control service unreachable: ``error: cannot reach the control service
  at HOST:PORT: ...`` with a hint at --server and $SAMPAN_SERVER;
- everything found on this side (unknown kind, bad manifest, bad selector,
  unreadable file, bad flag combination): ``error: ...``.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
import sys

from control.api import errors, kinds
from control.api.manifest import ManifestError
from control.api.selectors import SelectorError
from control.client import SERVER_ENV, resolve_server
from control.client_config import CONFIG_ENV

_INVALID_OBJECT = re.compile(r'^[A-Za-z][A-Za-z0-9.]* "[^"]*" is invalid: ')
_UNREACHABLE_PREFIX = "the control service is unreachable: "


class CommandError(Exception):
    """A failure already worded for the user: printed as it is."""


class UsageError(CommandError):
    """Flags or arguments that do not make a command."""


def api_error_line(err: errors.APIError, *, server: str | None = None) -> str:
    # Only the client's own "unreachable" is about the control service; an
    # UnavailableError the server sent (a node's agent it cannot reach) is the server's.
    if isinstance(err, errors.UnavailableError) and err.message.startswith(_UNREACHABLE_PREFIX):
        detail = err.message.removeprefix(_UNREACHABLE_PREFIX)
        return (f"error: cannot reach the control service at {resolve_server(server)}: {detail} "
                f"(is it running? point at it with --server or ${SERVER_ENV}, and at a client config with its "
                f"CA and your certificate with --config or ${CONFIG_ENV})")
    if isinstance(err, errors.InvalidError) and _INVALID_OBJECT.match(err.message):
        return f"The {err.message}"
    return f"Error from server ({err.reason}): {err.message}"


def manifest_error_line(err: ManifestError, *, source: str) -> str:
    """kubectl's validation error: every bad field path, in one line."""
    problems = ", ".join(str(problem) for problem in err.errors)
    where = f'"{source}"' if source else "the input"
    if err.line is not None or err.document is not None:
        at = ", ".join(part for part in (
            f"document {err.document}" if err.document is not None else "",
            f"line {err.line}" if err.line is not None else "") if part)
        return f"error: error parsing {where} ({at}): {problems}"
    return f"error: error validating {where}: error validating data: [{problems}]"


def error_line(err: BaseException, *, server: str | None = None) -> str | None:
    """The line to print for an expected error; None for a bug."""
    if isinstance(err, CommandError):
        return str(err)
    if isinstance(err, errors.APIError):
        return api_error_line(err, server=server)
    if isinstance(err, ManifestError):
        return manifest_error_line(err, source=err.source)
    if isinstance(err, (kinds.UnknownKindError, SelectorError)):
        return f"error: {err.args[0] if err.args else err}"
    if isinstance(err, OSError) and err.filename is not None:
        return f"error: {err.filename}: {err.strerror or err}"
    return None


def report(line: str) -> None:
    """Print one error line to stderr (for commands that go on after a failure)."""
    print(line, file=sys.stderr, flush=True)
