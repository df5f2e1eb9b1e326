"""How an ImportImage call describes its archive: an ImageArchive in the metadata.

The description travels in the call's metadata rather than in a first
message so that the receiver can refuse (no image store, a missing node, an
archive over 2 GiB) before the sender has written anything: grpc reports a
refusal that races a client's write as "Internal error from Core", losing
the reason. The sender writes only after response headers carrying
``ACCEPTED_METADATA``. See ImportImage in protos/agent/v1/agent.proto.
"""

from __future__ import annotations

from typing import Iterable

from google.protobuf.message import DecodeError

from control.api import errors
from protos.agent.v1 import agent_pb2

ARCHIVE_METADATA_KEY = "sampan-image-archive-bin"
# The receiver's response headers when it takes the archive. Headers alone
# say nothing: a refusal's status comes with (empty) headers too, and they
# may be seen before the call is done.
ACCEPTED_METADATA = (("sampan-image-archive", "accepted"),)


def accepted(headers: Iterable[tuple[str, str | bytes]] | None) -> bool:
    """Whether a receiver's response headers accept the archive."""
    return any((key, value) == ACCEPTED_METADATA[0] for key, value in headers or ())


def archive_metadata(archive: agent_pb2.ImageArchive) -> tuple[tuple[str, bytes], ...]:
    """Call metadata describing archive."""
    return ((ARCHIVE_METADATA_KEY, archive.SerializeToString()),)


def archive_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> agent_pb2.ImageArchive:
    """The ImageArchive in a call's metadata; BadRequestError when missing or malformed."""
    for key, value in metadata or ():
        if key == ARCHIVE_METADATA_KEY:
            try:
                return agent_pb2.ImageArchive.FromString(value if isinstance(value, bytes) else value.encode())
            except DecodeError as err:
                raise errors.BadRequestError(f"malformed {ARCHIVE_METADATA_KEY} metadata: {err}") from None
    raise errors.BadRequestError(f"an image import needs the archive's description in {ARCHIVE_METADATA_KEY} metadata")
