"""The pause and busybox images, built on this machine: no registry needed.

Both are one layer made from Debian's ``busybox-static``: ``/bin/busybox``, a
symlink per applet (``sh``, ``sleep``, ``httpd``, ``wget``, ``nc``, ...), a
minimal ``/etc/passwd`` and ``/etc/group`` and a world-writable ``/tmp``.

- ``PAUSE_IMAGE``: the layer with ``sleep 2147483647`` as its command, the CRI
  plugin's ``sandbox_image`` (a sandbox's only job is to hold its namespaces).
- ``BUSYBOX_IMAGE`` (default command ``sh``) under the names the CRI makes of
  ``busybox:1.36`` and ``busybox`` once normalized, so a pod spec (the sample
  app's among them) can say ``image: busybox:1.36``. The binary inside is
  whatever Debian ships; the tag is only a name.

Each is written as a tar of an OCI image layout (``oci-layout``,
``index.json`` naming the image in the ``io.containerd.image.name``
annotation, a manifest, a config whose ``rootfs.diff_ids`` holds the sha256 of
the uncompressed layer, and the gzip'd layer), which ``ctr images import``
takes. Archives are byte-for-byte deterministic (fixed mtimes, sorted entries,
owner root) and cached in a directory keyed by the busybox binary's version
and digest, so only the first use on a machine builds them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX_IMAGE = "docker.io/library/busybox:1.36"
BUSYBOX_NAMES = (BUSYBOX_IMAGE, "docker.io/library/busybox:latest")
PAUSE_IMAGE = "registry.local/sampan/pause:1.0"
PAUSE_COMMAND = ("sleep", "2147483647")
BUSYBOX_BINARY = "/bin/busybox"
# The namespace the CRI plugin serves: images anywhere else are invisible to pods.
CRI_NAMESPACE = "k8s.io"

# Bump when the layout or contents change, so stale caches are not reused.
_FORMAT = 2
# 2023-01-01T00:00:00Z: any fixed time makes the archives reproducible.
_MTIME = 1672531200
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_APPLET_DIRS = ("bin/", "sbin/", "usr/bin/", "usr/sbin/")
_DIRECTORIES = {
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
    "sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
    "usr/sbin": 0o755, "var": 0o755, "var/tmp": 0o1777, "var/www": 0o755,
}
_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
}

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class ImageBuildError(RuntimeError):
    """The images cannot be built here (no static busybox) or not imported."""


@dataclass(frozen=True)
class ImageArchives:
    """Paths of the image archives, ready for ``import_image``."""

    busybox: Path
    pause: Path

    def all(self) -> tuple[Path, ...]:
        return (self.busybox, self.pause)


def build_images(*, cache_dir: Path, busybox: str = BUSYBOX_BINARY) -> ImageArchives:
    """The busybox and pause archives under cache_dir, built if missing."""
    source = _BusyboxSource(busybox)
    return ImageArchives(
        busybox=source.archive(cache_dir, "busybox.tar", names=BUSYBOX_NAMES, command=("sh",)),
        pause=source.archive(cache_dir, "pause.tar", names=(PAUSE_IMAGE,), command=PAUSE_COMMAND))


def build_pause_image(*, name: str, cache_dir: Path, busybox: str = BUSYBOX_BINARY) -> Path:
    """A pause archive under another name: the sandbox_image a containerd
    not configured by us expects (registry.k8s.io/pause:3.6, say)."""
    if name == PAUSE_IMAGE:
        return build_images(cache_dir=cache_dir, busybox=busybox).pause
    tag = hashlib.sha256(name.encode()).hexdigest()[:12]
    return _BusyboxSource(busybox).archive(cache_dir, f"pause-{tag}.tar", names=(name,), command=PAUSE_COMMAND)


def require_static_busybox(busybox: str = BUSYBOX_BINARY) -> None:
    """ImageBuildError unless busybox is a statically linked binary the images can hold."""
    _BusyboxSource(busybox)


def import_image(ctr_binary: str, address: str, tar_path: Path | str, *, snapshotter: str = "") -> None:
    """``ctr -n k8s.io images import``, unpacked for the CRI's snapshotter."""
    command = [ctr_binary, "--address", address, "-n", CRI_NAMESPACE, "images", "import"]
    if snapshotter:
        command.append(f"--snapshotter={snapshotter}")
    result = subprocess.run([*command, str(tar_path)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise ImageBuildError(f"ctr images import {tar_path} failed ({result.returncode}): {result.stderr.strip()}")


def image_archive(*, names: tuple[str, ...], layer: bytes, cmd: tuple[str, ...]) -> bytes:
    """The tar of an OCI image layout holding one image under ``names``.

    ``layer`` is the uncompressed layer tar; it is gzip'd here and its digest
    becomes the config's diff_id.
    """
    compressed = gzip.compress(layer, mtime=0)
    architecture = _oci_architecture()
    config = _json({
        "architecture": architecture,
        "os": "linux",
        "created": "2023-01-01T00:00:00Z",
        "config": {"Env": [f"PATH={_PATH}"], "Cmd": list(cmd), "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        "history": [{"created": "2023-01-01T00:00:00Z", "created_by": "agent/bootstrap/images.py"}],
    })
    manifest = _json({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": _digest(compressed), "size": len(compressed)}],
    })
    index = _json({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": _digest(manifest),
                "size": len(manifest),
                "platform": {"architecture": architecture, "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                },
            }
            for name in names
        ],
    })
    blobs = {f"blobs/sha256/{_digest(blob).split(':')[1]}": blob for blob in (compressed, config, manifest)}
    archive = _Tar()
    archive.directory("blobs", 0o755)
    archive.directory("blobs/sha256", 0o755)
    for path in sorted(blobs):
        archive.file(path, blobs[path], 0o644)
    archive.file("index.json", index, 0o644)
    archive.file("oci-layout", _json({"imageLayoutVersion": "1.0.0"}), 0o644)
    return archive.close()


class _BusyboxSource:
    """One busybox binary, and the cache directory its archives go to."""

    def __init__(self, busybox: str) -> None:
        self._path = busybox
        try:
            self._binary = Path(busybox).read_bytes()
        except OSError as err:
            raise ImageBuildError(f"cannot read {busybox} (install Debian's busybox-static): {err}") from None
        if _dynamically_linked(self._binary):
            raise ImageBuildError(f"{busybox} is dynamically linked; the images need Debian's busybox-static")
        self._layer: bytes | None = None

    def archive(self, cache_root: Path, filename: str, *, names: tuple[str, ...], command: tuple[str, ...]) -> Path:
        digest = hashlib.sha256(self._binary).hexdigest()[:12]
        path = cache_root / f"v{_FORMAT}-busybox-{_busybox_version(self._path)}-{digest}" / filename
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if self._layer is None:
                self._layer = _rootfs_layer(self._binary, applets=_applets(self._path))
            _write_atomically(path, image_archive(names=names, layer=self._layer, cmd=command))
        return path


def _rootfs_layer(binary: bytes, *, applets: list[str]) -> bytes:
    layer = _Tar()
    for path, mode in sorted(_DIRECTORIES.items()):
        layer.directory(path, mode)
    layer.file("bin/busybox", binary, 0o755)
    for path in applets:
        layer.symlink(path, "/bin/busybox")
    for path, content in sorted(_FILES.items()):
        layer.file(path, content, 0o644)
    return layer.close()


def _applets(busybox: str) -> list[str]:
    """Where each applet lives (``bin/sh``, ``usr/bin/wget``, ...), per busybox itself."""
    listed = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    return sorted({path for path in listed if path.startswith(_APPLET_DIRS) and path != "bin/busybox"})


def _busybox_version(busybox: str) -> str:
    banner = subprocess.run([busybox], capture_output=True, text=True).stdout.split()
    # "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary."
    return next((word.lstrip("v") for word in banner if word.startswith("v")), "unknown")


def _dynamically_linked(elf: bytes) -> bool:
    """Whether a 64-bit little-endian ELF executable names an interpreter (PT_INTERP)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    phentsize = int.from_bytes(elf[0x36:0x38], "little")
    phnum = int.from_bytes(elf[0x38:0x3A], "little")
    return any(int.from_bytes(elf[phoff + i * phentsize:phoff + i * phentsize + 4], "little") == 3
               for i in range(phnum))


def _oci_architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _write_atomically(path: Path, content: bytes) -> None:
    # Concurrent builders (test sessions, two `sampan up`s) each rename a complete file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class _Tar:
    """An in-memory tar whose entries carry fixed owners and times."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.USTAR_FORMAT)

    def directory(self, path: str, mode: int) -> None:
        self._tar.addfile(self._info(path, tarfile.DIRTYPE, mode))

    def file(self, path: str, content: bytes, mode: int) -> None:
        info = self._info(path, tarfile.REGTYPE, mode)
        info.size = len(content)
        self._tar.addfile(info, io.BytesIO(content))

    def symlink(self, path: str, target: str) -> None:
        info = self._info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def close(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()

    @staticmethod
    def _info(path: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.type = kind
        info.mode = mode
        info.mtime = _MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info
