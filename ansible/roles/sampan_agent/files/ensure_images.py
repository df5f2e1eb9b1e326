"""Wait for containerd's CRI at SOCKET, then import Sampan's sandbox (pause) and
busybox images where it lacks them, built from the host's busybox-static into
CACHE_DIR. Prints the names imported, one a line (nothing: nothing to do).

Usage: python ensure_images.py SOCKET CACHE_DIR [SNAPSHOTTER]
"""

import shutil
import sys
import time
from pathlib import Path

from agent.bootstrap.containerd import cri_status, ensure_images


def main(argv: list[str]) -> int:
    socket, cache_dir = argv[1], Path(argv[2])
    snapshotter = argv[3] if len(argv) > 3 else ""
    deadline = time.monotonic() + 60
    status = cri_status(socket)
    while status is None:
        if time.monotonic() > deadline:
            print(f"containerd's CRI does not answer at {socket}", file=sys.stderr)
            return 1
        time.sleep(0.5)
        status = cri_status(socket)
    ctr = shutil.which("ctr")
    if ctr is None:
        print("ctr (Debian package containerd) is not installed", file=sys.stderr)
        return 1
    imported = ensure_images(socket, ctr_binary=ctr, cache_dir=cache_dir,
                             sandbox_image=status.sandbox_image or "registry.local/sampan/pause:1.0",
                             snapshotter=status.snapshotter or snapshotter)
    for name in imported:
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
