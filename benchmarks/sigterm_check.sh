#!/usr/bin/env bash
# CTest td_bench_sigterm: SIGTERM to a running td-bench stops the td-coordinator it started
# (before this check, a killed td-bench left its coordinator running). Polls with deadlines.
# Usage: sigterm_check.sh TD_BENCH
set -euo pipefail
bench="$1"
log="$(mktemp)"
"$bench" --smoke > "$log" 2>&1 &
bench_pid=$!
coordinator=""
cleanup() {
  kill -9 "$bench_pid" 2> /dev/null || true
  [ -n "$coordinator" ] && kill -9 "$coordinator" 2> /dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

deadline=$((SECONDS + 60))
until coordinator="$(pgrep -P "$bench_pid" -x td-coordinator | head -n 1)" && [ -n "$coordinator" ]; do
  if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$bench_pid" 2> /dev/null; then
    echo "FAIL: td-bench started no td-coordinator within 60 s"; cat "$log"; exit 1
  fi
  sleep 0.1
done
echo "td-bench $bench_pid runs td-coordinator $coordinator; sending SIGTERM to td-bench"
kill -TERM "$bench_pid"
status=0
wait "$bench_pid" || status=$?
echo "td-bench exited with status $status"
deadline=$((SECONDS + 30))
while kill -0 "$coordinator" 2> /dev/null && [ "$(ps -o stat= -p "$coordinator" | cut -c1)" != "Z" ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "FAIL: td-coordinator $coordinator still runs 30 s after td-bench got SIGTERM"; exit 1
  fi
  sleep 0.1
done
echo "PASS: td-coordinator $coordinator is gone"
