#!/usr/bin/env bash
# Bring up a single-node Sampan cluster on this machine with `sampan up` and
# run the sample app (examples/sample-app.yaml) on it, then fetch its page.
#
# As root, the Debian packages for containerd mode are installed first and
# `sampan up` starts a private containerd (unless a containerd already
# answers at /run/containerd/containerd.sock); otherwise the agent uses the
# process runtime. Safe to run again: a running cluster is reused and the
# app re-applied. Leaves the cluster running; stop it with
#   kill $(cat "$DATA_DIR/up.pid")
# (pods keep running in containerd; the next `sampan up` adopts them).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${SAMPAN_DATA_DIR:-$PWD/.sampan}
SERVER=${SAMPAN_SERVER:-127.0.0.1:6443}
CONTAINERD_PACKAGES=(containerd runc containernetworking-plugins busybox-static iproute2)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
packages=()
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  packages+=(python3 python3-venv)
fi
if [ "$(id -u)" = 0 ]; then
  for pkg in "${CONTAINERD_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || packages+=("$pkg")
  done
fi
if [ ${#packages[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
# Debian's containerd package starts a system containerd where systemd runs; `sampan up` uses it then.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e .
SAMPAN=.venv/bin/sampan
PYTHON=.venv/bin/python
sampan() { "$SAMPAN" --server "$SERVER" "$@"; }

mkdir -p "$DATA_DIR"
PIDFILE=$DATA_DIR/up.pid
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "sampan up already running (pid $(cat "$PIDFILE"))"
else
  nohup "$SAMPAN" up --data-dir "$DATA_DIR" --listen "$SERVER" >"$DATA_DIR/up.log" 2>&1 &
  echo $! >"$PIDFILE"
fi

# Wait for this machine's Node to be Ready (the first start builds the images: allow a while).
NODE=""
for _ in $(seq 240); do
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "sampan up exited; its output ($DATA_DIR/up.log):" >&2
    cat "$DATA_DIR/up.log" >&2
    exit 1
  fi
  NODE=$(sampan get nodes 2>/dev/null | awk 'NR > 1 && $2 == "Ready" { print $1; exit }') || true
  [ -n "$NODE" ] && break
  sleep 0.5
done
if [ -z "$NODE" ]; then
  echo "no Ready node after 2 minutes; see $DATA_DIR/up.log and the logs it names" >&2
  exit 1
fi
cat "$DATA_DIR/up.log"
sampan get nodes -o wide

# The scheduler binds the sample pod to this node.
cp examples/sample-app.yaml "$DATA_DIR/sample-app.yaml"
sampan apply -f "$DATA_DIR/sample-app.yaml"

json_field() {  # json_field EXPRESSION: evaluate it on the JSON object read from stdin
  "$PYTHON" -c "import json, sys; o = json.load(sys.stdin); print($1)"
}
RUNTIME=$(sampan get node "$NODE" -o json | json_field 'o["status"]["nodeInfo"]["containerRuntimeVersion"]')
if [[ $RUNTIME == process://* ]]; then
  sampan get pods -n sample -o wide
  echo
  echo "The agent uses the process runtime (see $DATA_DIR/up.log for why): it runs the pod's command,"
  echo "'httpd -f -p 8080 -h /www', on this machine, so it needs an httpd on the PATH, and the ConfigMap"
  echo "volume is not mounted (the process runtime applies no mounts); expect the pod to fail. Run this"
  echo "script as root with containerd available to see the app serve its page."
else
  IP=""
  for _ in $(seq 120); do
    IP=$(sampan get pod web -n sample -o json |
      json_field 'o.get("status", {}).get("podIP", "") if o.get("status", {}).get("phase") == "Running" else ""'
    ) || true
    [ -n "$IP" ] && break
    sleep 0.5
  done
  sampan get pods -n sample -o wide
  if [ -z "$IP" ]; then
    echo "the sample pod is not Running after a minute; try: $SAMPAN describe pod web -n sample" >&2
    exit 1
  fi
  echo
  echo "The sample app answers at http://$IP:8080/ :"
  fetch='import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())'
  fetched=""
  for _ in $(seq 20); do
    # httpd may still be starting: Running comes before Ready.
    if "$PYTHON" -c "$fetch" "http://$IP:8080/" 2>/dev/null; then
      fetched=yes
      break
    fi
    sleep 0.5
  done
  [ -n "$fetched" ] || { echo "http://$IP:8080/ did not answer; try: $SAMPAN describe pod web -n sample" >&2; exit 1; }
fi
echo
echo "Sampan is running (data and logs in $DATA_DIR). Try, in any shell:"
echo "  $SAMPAN get pods -A -o wide"
echo "  $SAMPAN describe pod web -n sample"
echo "Stop it with: kill \$(cat $PIDFILE)"
