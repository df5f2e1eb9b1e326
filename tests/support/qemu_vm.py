"""A throwaway qemu VM on Debian's stock kernel, for tests that need kernel
features this machine's own kernel lacks (IPVS).

The VM shares the host's files instead of having its own disk:

- The kernel is Debian's ``linux-image-*-amd64`` package, fetched with
  ``apt-get download`` and unpacked with ``dpkg -x`` (never installed).
  ``prepare_kernel()`` keeps only what a boot needs: ``vmlinuz`` and the few
  modules in ``MODULES`` with everything they depend on, in the load order
  ``modprobe --show-depends`` gives, under a cache directory
  (``$SAMPAN_TEST_CACHE``, else ``~/.cache/sampan-tests``). The second run
  finds them there and needs no network; ``python -m tests.support.qemu_vm``
  fills the cache ahead of time (scripts/test.sh does).
- ``run_in_vm(script)`` builds a small initrd around Debian's static busybox
  whose ``/init`` loads those modules, mounts the host's ``/`` read-only over
  9p under a tmpfs overlay (so the VM may write anywhere and the host sees
  none of it), mounts a writable 9p share at the same path it has on the
  host, chroots into the overlay and runs ``script`` with ``/bin/sh``. The
  host's Python and the project's virtualenv thus run inside the VM as they
  are. The script's stdout, stderr and exit status come back as files in
  the share: the VM's own exit code carries nothing.

qemu runs with software emulation (``-accel tcg``; KVM is not available
here). Boot to a shell takes a few seconds; a Python program importing the
project takes a few more, since every file is read over 9p.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.components import require

#: The checkout the VM runs code from (its virtualenv included).
_REPO = Path(__file__).resolve().parents[2]

#: Modules the VM loads at boot, with their dependencies: IPVS and its
#: schedulers, the nftables pieces the proxy's IPVS mode uses for marking and
#: masquerading, dummy and veth interfaces, and what mounting the host over 9p
#: needs.
MODULES = (
    "virtio_pci", "9pnet_virtio", "9p", "overlay", "dummy", "veth",
    "nf_conntrack", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_sh",
    "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq", "nft_ct",
)

#: Debian packages the VM needs on the host (scripts/test.sh installs them).
HOST_PACKAGES = {"qemu-system-x86_64": "qemu-system-x86", "cpio": "cpio", "modprobe": "kmod", "depmod": "kmod"}
BUSYBOX = "/bin/busybox"

VM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Kernel:
    """A cached kernel: its image and the modules to load, in order."""

    version: str
    vmlinuz: Path
    modules: tuple[Path, ...]


@dataclass(frozen=True)
class VMResult:
    """What a script run in the VM left behind."""

    returncode: int
    stdout: str
    stderr: str
    console: str  # the VM's serial console: kernel messages and /init's own
    seconds: float

    def check(self) -> VMResult:
        """Raise with the whole story unless the script exited 0."""
        if self.returncode != 0:
            raise AssertionError(
                f"script in VM exited {self.returncode}\n--- stdout\n{self.stdout}\n"
                f"--- stderr\n{self.stderr}\n--- console (tail)\n{self.console[-4000:]}")
        return self


def cache_dir() -> Path:
    configured = os.environ.get("SAMPAN_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "sampan-tests"


def missing_host_tools() -> list[str]:
    """Debian packages missing on the host for booting the VM."""
    missing = {package for tool, package in HOST_PACKAGES.items() if shutil.which(tool) is None}
    if not os.path.exists(BUSYBOX):
        missing.add("busybox-static")
    return sorted(missing)


def cached_kernel(cache: Path | None = None) -> Kernel | None:
    """The kernel ``prepare_kernel`` left in the cache for today's MODULES, or None."""
    root = (cache or cache_dir()) / "kernel"
    for order in sorted(root.glob("*/modules.order"), reverse=True):
        version_dir = order.parent
        if _read(version_dir / "modules.requested").split() != list(MODULES):
            continue  # prepared for another list of modules
        modules = tuple(version_dir / "modules" / name for name in order.read_text().split())
        vmlinuz = version_dir / "vmlinuz"
        if vmlinuz.exists() and all(module.exists() for module in modules):
            return Kernel(version=version_dir.name, vmlinuz=vmlinuz, modules=modules)
    return None


def debian_kernel_package() -> str:
    """The versioned image package Debian's ``linux-image-amd64`` points at."""
    out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)", out)
    if not match:
        raise RuntimeError(f"apt-cache names no kernel image for linux-image-amd64 (run apt-get update?):\n{out}")
    return match.group(1)


def _download_kernel(work: Path) -> tuple[str, Path]:
    package = debian_kernel_package()
    subprocess.run(["apt-get", "download", "-q", package], cwd=work, check=True, capture_output=True)
    return package, next(work.glob(f"{package}_*.deb"))


def prepare_kernel(cache: Path | None = None) -> Kernel:
    """Return the cached kernel, fetching and unpacking it first if needed."""
    cache = cache or cache_dir()
    found = cached_kernel(cache)
    if found is not None:
        return found
    with tempfile.TemporaryDirectory(prefix="sampan-kernel-") as work:
        os.chmod(work, 0o755)  # apt's sandbox user reads where it downloads
        try:
            package, deb = _download_kernel(Path(work))
        except (subprocess.CalledProcessError, RuntimeError):
            if os.geteuid() != 0:
                raise
            # The package lists may be missing or name a version the mirror no longer has.
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            package, deb = _download_kernel(Path(work))
        version = package.removeprefix("linux-image-")
        tree = Path(work) / "tree"
        subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True)
        subprocess.run(["depmod", "-b", str(tree), version], check=True)
        order: list[Path] = []
        for module in MODULES:
            out = subprocess.run(
                ["modprobe", "-d", str(tree), "-S", version, "--show-depends", module],
                capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                parts = line.split()
                if parts and parts[0] == "insmod" and Path(parts[1]) not in order:
                    order.append(Path(parts[1]))
                # "builtin NAME" lines need nothing loaded.
        target = cache / "kernel" / version
        staging = target.with_name(version + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "modules").mkdir(parents=True)
        shutil.copy(tree / "boot" / f"vmlinuz-{version}", staging / "vmlinuz")
        for path in order:
            shutil.copy(path, staging / "modules" / path.name)
        (staging / "modules.order").write_text("\n".join(path.name for path in order) + "\n")
        (staging / "modules.requested").write_text("\n".join(MODULES) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    found = cached_kernel(cache)
    assert found is not None
    return found


def require_vm() -> Kernel:
    """The kernel to boot, or skip the test (fail under CI=true) naming what is missing."""
    missing = missing_host_tools()
    require(not missing, f"the qemu test VM needs the Debian packages {', '.join(missing)} "
                         "(scripts/test.sh installs them)")
    try:
        return prepare_kernel()
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        require(False, f"could not fetch Debian's kernel for the test VM: {detail}")
        raise  # unreachable: require() skipped or failed the test


_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /modules.order); do
  insmod /modules/$module || echo "init: insmod $module failed"
done
opts=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /host /rw /newroot
mount -t 9p -o $opts,ro,cache=loose hostroot /host || echo "init: mounting the host root failed"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot \
  || echo "init: overlay failed"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
# The checkout (with its virtualenv) may live under /tmp on the host: show it through the fresh /tmp.
case "@REPO@" in /tmp/*) mkdir -p /newroot@REPO@ && mount -o bind /host@REPO@ /newroot@REPO@ \
  || echo "init: showing the checkout failed" ;; esac
# After /tmp's tmpfs: the share may live under /tmp on the host.
mkdir -p /newroot@SHARE@
mount -t 9p -o $opts,cache=none share /newroot@SHARE@ || echo "init: mounting the share failed"
ip link set lo up
hostname sampan-vm
echo "init: running the script"
env -i PATH=@PATH@ HOME=/root TERM=dumb chroot /newroot /bin/sh @SHARE@/script.sh \
  > /newroot@SHARE@/stdout 2> /newroot@SHARE@/stderr
echo $? > /newroot@SHARE@/returncode
sync
echo "init: done"
poweroff -f
"""


def _build_initrd(kernel: Kernel, share: Path, path: Path) -> None:
    """Write a gzip'd newc cpio with busybox, the modules and /init."""
    with tempfile.TemporaryDirectory(prefix="sampan-initrd-") as work:
        root = Path(work)
        for name in ("bin", "proc", "sys", "dev", "modules"):
            (root / name).mkdir()
        shutil.copy(BUSYBOX, root / "bin" / "busybox")
        for module in kernel.modules:
            shutil.copy(module, root / "modules" / module.name)
        (root / "modules.order").write_text("\n".join(module.name for module in kernel.modules) + "\n")
        init = root / "init"
        init.write_text(_INIT.replace("@SHARE@", str(share)).replace("@PATH@", VM_PATH)
                        .replace("@REPO@", str(_REPO)))
        init.chmod(0o755)
        names = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
        archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=names,
                                 capture_output=True, check=True).stdout
        path.write_bytes(gzip.compress(archive, compresslevel=1))


def run_in_vm(script: str, *, kernel: Kernel, workdir: Path, timeout: float = 180.0,
              memory_mb: int = 1024) -> VMResult:
    """Boot the VM, run ``script`` (a /bin/sh script) in it as root, power off.

    ``workdir`` (a host directory) becomes the writable share, mounted at the
    same path in the VM: the script and the programs it runs can leave files
    there for the caller.
    """
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("stdout", "stderr", "returncode", "console.log"):
        (workdir / name).unlink(missing_ok=True)
    (workdir / "script.sh").write_text(script)
    initrd = workdir / "initrd.gz"
    _build_initrd(kernel, workdir, initrd)
    console = workdir / "console.log"
    command = [
        "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", str(memory_mb),
        "-nodefaults", "-display", "none", "-no-reboot", "-nic", "none",
        "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd),
        "-append", "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init",
        "-serial", f"file:{console}",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={workdir},mount_tag=share,security_model=none,multidevs=remap",
    ]
    started = time.monotonic()
    try:
        subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"VM did not power off within {timeout:.0f} s; console:\n{_read(console)[-4000:]}")
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"qemu failed ({exc.returncode}): {exc.stderr.decode(errors='replace')}")
    seconds = time.monotonic() - started
    returncode_text = _read(workdir / "returncode").strip()
    if not returncode_text:
        raise AssertionError(f"the VM never ran the script; console:\n{_read(console)[-4000:]}")
    return VMResult(returncode=int(returncode_text), stdout=_read(workdir / "stdout"),
                    stderr=_read(workdir / "stderr"), console=_read(console), seconds=seconds)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


if __name__ == "__main__":
    # Fill the cache ahead of the tests (scripts/test.sh runs this).
    prepared = prepare_kernel()
    print(f"test VM kernel {prepared.version}: {prepared.vmlinuz} and {len(prepared.modules)} modules")
