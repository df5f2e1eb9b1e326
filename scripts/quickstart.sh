#!/usr/bin/env bash
# Bring up a single-node Sampan control service on the embedded store and run
# the sample app (examples/sample-app.yaml) on it. Leaves the service running;
# stop it with: kill $(cat "$DATA_DIR/control.pid")
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${SAMPAN_DATA_DIR:-$PWD/.sampan}
SERVER=${SAMPAN_SERVER:-127.0.0.1:6443}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e .
SAMPAN=.venv/bin/sampan

mkdir -p "$DATA_DIR"
if [ -f "$DATA_DIR/control.pid" ] && kill -0 "$(cat "$DATA_DIR/control.pid")" 2>/dev/null; then
  echo "control service already running (pid $(cat "$DATA_DIR/control.pid"))"
else
  nohup "$SAMPAN" control --store "sqlite:///$DATA_DIR/state.db" --listen "$SERVER" \
    --metrics-listen 127.0.0.1:10249 >"$DATA_DIR/control.log" 2>&1 &
  echo $! >"$DATA_DIR/control.pid"
  for _ in $(seq 100); do
    "$SAMPAN" --server "$SERVER" version >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
export SAMPAN_SERVER=$SERVER
"$SAMPAN" apply -f examples/sample-app.yaml
"$SAMPAN" get namespaces
"$SAMPAN" get pods,configmaps,secrets -n sample
echo
echo "Control service: $SERVER (log: $DATA_DIR/control.log). Try: $SAMPAN get pods -n sample -w"
