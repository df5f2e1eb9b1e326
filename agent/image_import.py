"""Image archives imported into the node's image store, for air-gapped machines.

``sampan image import FILE.tar`` streams an archive (an OCI image layout or a
``docker save`` tar) through the control service to an agent's ImportImage
(agent/server.py). The call's metadata describes the archive
(control.api.image_archives); the agent checks it (``check_archive_header``:
nothing over 2 GiB) and that it has a store before accepting, spools the
chunks to a file under its data dir (``receive_archive``: exactly the size
announced), then hands the file to its ``ImageStore``:

- ``ContainerdImages`` runs ``ctr --address SOCKET -n k8s.io images import``
  into the namespace the CRI plugin serves, so pods see the images at once;
  the names come from ctr's ``unpacking NAME (sha256:...)`` lines.
- ``NoImageStore`` is the process runtime's: it runs host binaries and has
  nowhere to put images, so it refuses before a byte is sent.

``image_store_for`` picks one for the runtime the agent chose.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Protocol

from agent.runtime.base import ContainerRuntime
from control.api import errors
from protos.agent.v1 import agent_pb2

MAX_ARCHIVE_BYTES = 2 * 1024 * 1024 * 1024
# The namespace the CRI plugin serves: images anywhere else are invisible to pods.
CRI_NAMESPACE = "k8s.io"
IMPORT_TIMEOUT = 600.0
# ctr 1.6/1.7: "unpacking docker.io/library/busybox:1.36 (sha256:...)...done"
_UNPACKED = re.compile(r"^unpacking (\S+) \(sha256:[0-9a-f]+\)", re.MULTILINE)


class ImageStore(Protocol):
    """Where imported images go. The agent's ImportImage calls ``check_available``
    before it reads the archive, then ``import_archive`` with the spooled file."""

    def check_available(self) -> None:
        """Raise an APIError (PreconditionError) when this node cannot import images."""

    async def import_archive(self, path: Path) -> list[str]:
        """Import the archive at path; the names of the images it held. APIError on failure."""


@dataclass(frozen=True)
class NoImageStore:
    """The process runtime's (non-)store: every import is refused."""

    node_name: str

    def check_available(self) -> None:
        raise errors.PreconditionError(f"node {self.node_name} uses the process runtime: it has no image store")

    async def import_archive(self, path: Path) -> list[str]:
        self.check_available()
        return []


@dataclass(frozen=True)
class ContainerdImages:
    """containerd's image store, through ``ctr`` (None: not installed on this node)."""

    node_name: str
    address: str
    ctr_binary: str | None

    def check_available(self) -> None:
        if self.ctr_binary is None:
            raise errors.PreconditionError(
                f"node {self.node_name} has no ctr binary on its PATH to import images with (install containerd)")

    async def import_archive(self, path: Path) -> list[str]:
        self.check_available()
        assert self.ctr_binary is not None
        process = await asyncio.create_subprocess_exec(
            self.ctr_binary, "--address", self.address, "-n", CRI_NAMESPACE, "images", "import", str(path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), IMPORT_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            detail = stderr.decode(errors="replace").strip().splitlines()
            raise errors.InternalError(
                f"ctr images import failed on node {self.node_name} ({process.returncode}): "
                f"{detail[-1] if detail else 'no message'}")
        return imported_names(stdout.decode(errors="replace"))


def imported_names(ctr_output: str) -> list[str]:
    """The image names in ``ctr images import``'s output, in order, once each."""
    return list(dict.fromkeys(_UNPACKED.findall(ctr_output)))


def image_store_for(runtime: ContainerRuntime, *, node_name: str) -> ImageStore:
    """containerd's store for the CRI runtime (ctr found on PATH), else none."""
    from agent.runtime.cri import CRIRuntime

    if isinstance(runtime, CRIRuntime):
        return ContainerdImages(node_name=node_name, address=runtime.socket_path, ctr_binary=shutil.which("ctr"))
    return NoImageStore(node_name)


async def receive_archive(header: agent_pb2.ImageArchive, data: AsyncIterator[bytes], *, directory: Path) -> Path:
    """Spool the archive's bytes to a new file in directory; its path (the caller removes it).

    RequestTooLargeError past MAX_ARCHIVE_BYTES, BadRequestError when the bytes
    do not add up to the announced size; no file is left behind on failure."""
    check_archive_header(header)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix="import-", suffix=".tar")
    path = Path(name)
    try:
        received = 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in data:
                received += len(chunk)
                if received > header.size:
                    raise errors.BadRequestError(
                        f"image archive {header.name!r} is longer than the {header.size} bytes announced")
                await asyncio.to_thread(out.write, chunk)
        if received != header.size:
            raise errors.BadRequestError(
                f"image archive {header.name!r} ended after {received} of {header.size} bytes")
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def check_archive_header(header: agent_pb2.ImageArchive) -> None:
    """RequestTooLargeError past MAX_ARCHIVE_BYTES, BadRequestError for an empty archive."""
    if header.size > MAX_ARCHIVE_BYTES:
        raise errors.RequestTooLargeError(
            f"image archive {header.name!r} is {header.size} bytes; the limit is {MAX_ARCHIVE_BYTES} bytes (2 GiB)")
    if header.size <= 0:
        raise errors.BadRequestError(f"image archive {header.name!r}: the size must be greater than 0")
