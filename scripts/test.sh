#!/usr/bin/env bash
# Install everything the test suite needs on Debian 12, then run it.
# Debian packages: the real components the integration tests start themselves.
# Python packages: into .venv, from pyproject.toml's [dev] extra.
# Extra arguments go to pytest (e.g. ./scripts/test.sh -k watch).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
DEBIAN_PACKAGES=(python3 python3-venv etcd-server etcd-client containerd runc containernetworking-plugins busybox-static iproute2 nftables qemu-system-x86 cpio kmod ipvsadm prometheus openssh-server openssh-client openssl util-linux)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's etcd-server package starts a system etcd on :2379; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  $SUDO systemctl stop etcd || true
fi
# Debian's prometheus package starts (and enables) a system Prometheus on :9090; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-enabled --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus || true
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# Debian's stock kernel for the IPVS tests' qemu VM (this kernel may lack IPVS), cached once.
.venv/bin/python -m tests.support.qemu_vm

exec .venv/bin/python -m pytest tests "$@"
