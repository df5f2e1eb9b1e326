"""Container images for tests: ``agent.bootstrap.images``, cached per machine.

The images are the product's own (busybox as ``busybox:1.36``, the pause
image), built from Debian's ``busybox-static``; see agent/bootstrap/images.py.
Tests keep one cache for every session on a machine, under
/var/tmp/sampan-test-images, so only the first run builds them.
"""

from __future__ import annotations

from pathlib import Path

from agent.bootstrap.images import (
    BUSYBOX_IMAGE,
    BUSYBOX_NAMES,
    PAUSE_IMAGE,
    ImageArchives,
    build_images,
    image_archive,
    import_image,
)

__all__ = ["BUSYBOX_IMAGE", "BUSYBOX_NAMES", "CACHE_ROOT", "PAUSE_IMAGE", "ImageArchives", "build_test_images",
           "image_archive", "import_image"]

CACHE_ROOT = Path("/var/tmp/sampan-test-images")


def build_test_images(*, busybox: str = "/bin/busybox", cache_root: Path = CACHE_ROOT) -> ImageArchives:
    """Return the cached busybox and pause archives, building them if missing."""
    return build_images(cache_dir=cache_root, busybox=busybox)
