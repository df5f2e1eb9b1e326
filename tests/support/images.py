"""Container images for tests, built locally: no registry is reachable.

Both images are one layer made from Debian's ``busybox-static``: ``/bin/busybox``,
a symlink per applet (``sh``, ``sleep``, ``httpd``, ``wget``, ``nc``, ...), a
minimal ``/etc/passwd`` and ``/etc/group`` and a world-writable ``/tmp``.

- ``BUSYBOX_IMAGE`` (default command ``sh``) under the names CRI gives
  ``busybox:1.36`` and ``busybox`` once normalized, so pod specs can say
  ``image: busybox:1.36``. (The binary inside is whatever Debian ships; the tag
  is only a name.)
- ``PAUSE_IMAGE``: the same layer with ``sleep 2147483647`` as its command, the
  CRI plugin's ``sandbox_image``.

Each is written as a tar of an OCI image layout (``oci-layout``, ``index.json``
naming the image in the ``io.containerd.image.name`` annotation, a manifest, a
config whose ``rootfs.diff_ids`` holds the sha256 of the uncompressed layer,
and the gzip'd layer), which ``ctr images import`` takes. The archives are
byte-for-byte deterministic (fixed mtimes, sorted entries, owner root) and
cached under /var/tmp/sampan-test-images, keyed by the busybox binary's
version and digest, so only the first run on a machine builds them.
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
CACHE_ROOT = Path("/var/tmp/sampan-test-images")

# Bump when the layout or contents change, so stale caches are not reused.
_FORMAT = 1
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


@dataclass(frozen=True)
class ImageArchives:
    """Paths of the image archives, ready for ``import_image``."""

    busybox: Path
    pause: Path

    def all(self) -> tuple[Path, ...]:
        return (self.busybox, self.pause)


def build_test_images(*, busybox: str = "/bin/busybox", cache_root: Path = CACHE_ROOT) -> ImageArchives:
    """Return the cached busybox and pause archives, building them if missing."""
    binary = Path(busybox).read_bytes()
    if _dynamically_linked(binary):
        raise RuntimeError(f"{busybox} is dynamically linked; the images need Debian's busybox-static")
    version = _busybox_version(busybox)
    cache = cache_root / f"v{_FORMAT}-busybox-{version}-{hashlib.sha256(binary).hexdigest()[:12]}"
    images = ImageArchives(busybox=cache / "busybox.tar", pause=cache / "pause.tar")
    if all(path.exists() for path in images.all()):
        return images
    cache.mkdir(parents=True, exist_ok=True)
    layer = _rootfs_layer(binary, applets=_applets(busybox))
    _write_atomically(images.busybox, image_archive(names=BUSYBOX_NAMES, layer=layer, cmd=("sh",)))
    _write_atomically(images.pause, image_archive(names=(PAUSE_IMAGE,), layer=layer, cmd=("sleep", "2147483647")))
    return images


def import_image(ctr_binary: str, address: str, tar_path: Path | str, *, snapshotter: str = "") -> None:
    """``ctr -n k8s.io images import``: the namespace the CRI plugin serves."""
    command = [ctr_binary, "--address", address, "-n", "k8s.io", "images", "import"]
    if snapshotter:
        command.append(f"--snapshotter={snapshotter}")
    result = subprocess.run([*command, str(tar_path)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"ctr images import {tar_path} failed ({result.returncode}): {result.stderr.strip()}")


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
        "history": [{"created": "2023-01-01T00:00:00Z", "created_by": "tests/support/images.py"}],
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
    # Concurrent test sessions may build at once; each renames a complete file.
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
