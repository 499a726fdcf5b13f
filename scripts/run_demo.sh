#!/usr/bin/env bash
# run_demo.sh — `make run`: start the echo server on a free loopback port, run
# the load generator against it, stop the server, exit with the bench's code.
#
#   PY=.venv/bin/python bash scripts/run_demo.sh
#
# Settings (environment): PY, HOST (127.0.0.1), PORT (a free one), WORKERS (1),
# CONNS (50), SIZE (64), DURATION (5), START_TIMEOUT (30 s), GRACE (10 s from
# SIGINT to SIGTERM, and again from SIGTERM to SIGKILL).
set -euo pipefail

PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
WORKERS=${WORKERS:-1}
CONNS=${CONNS:-50}
SIZE=${SIZE:-64}
DURATION=${DURATION:-5}
START_TIMEOUT=${START_TIMEOUT:-30}
GRACE=${GRACE:-10}
PORT=${PORT:-$("$PY" -c 'import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
print(s.getsockname()[1])' "$HOST")}

LOG=$(mktemp "${TMPDIR:-/tmp}/pyiocp-echo.XXXXXX")
SERVER=""

alive() { [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; }

# Wait up to $1 seconds for the server to exit.
gone_within() {
  local deadline=$((SECONDS + $1))
  while alive; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

stop_server() {
  alive || return 0
  kill -INT "$SERVER" 2>/dev/null || true
  gone_within "$GRACE" && return 0
  echo "run: echo server ignored SIGINT for ${GRACE}s; sending SIGTERM" >&2
  kill -TERM "$SERVER" 2>/dev/null || true
  gone_within "$GRACE" && return 0
  echo "run: echo server ignored SIGTERM for ${GRACE}s; sending SIGKILL" >&2
  kill -KILL "$SERVER" 2>/dev/null || true
}

cleanup() {
  stop_server
  if [ -n "$SERVER" ]; then
    wait "$SERVER" 2>/dev/null && rc=0 || rc=$?
    echo "run: echo server exited with status $rc; its output:"
    sed 's/^/  | /' "$LOG"
  fi
  rm -f "$LOG"
}
trap cleanup EXIT

# A background job of a non-interactive shell starts with SIGINT ignored, and
# Python keeps an ignored SIGINT ignored (no KeyboardInterrupt, no clean stop):
# give the server the default disposition back.
echo "run: $PY -m pyiocp echo --host $HOST --port $PORT --workers $WORKERS"
env --default-signal=INT "$PY" -m pyiocp echo --host "$HOST" --port "$PORT" \
  --workers "$WORKERS" >"$LOG" 2>&1 </dev/null &
SERVER=$!

deadline=$((SECONDS + START_TIMEOUT))
until (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; do
  if ! alive; then
    echo "run: echo server exited before accepting connections" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "run: echo server not accepting on $HOST:$PORT after ${START_TIMEOUT}s" >&2
    exit 1
  fi
  sleep 0.1
done

echo "run: $PY -m pyiocp bench --host $HOST --port $PORT --conns $CONNS --size $SIZE --duration $DURATION"
bench_rc=0
"$PY" -m pyiocp bench --host "$HOST" --port "$PORT" --conns "$CONNS" \
  --size "$SIZE" --duration "$DURATION" </dev/null || bench_rc=$?
echo "run: bench exited with status $bench_rc"
exit "$bench_rc"
