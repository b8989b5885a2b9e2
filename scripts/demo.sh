#!/usr/bin/env bash
# The demo: an embedded broker, one coordinator and three workers sharing examples/demo.yaml.
# Worker w1 builds change c1, w2 builds c2 on top of c1, w3 builds c3 on top of c1 and c2, so
# all three join one group and share its nine steps. Usage: scripts/demo.sh BUILD_DIR
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
bin() { echo "$build/$1"; }
work="$(mktemp -d /tmp/td-demo.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== Task Director demo (logs of the broker and coordinator: $work)"
"$(bin broker/td-broker)" --bootstrap-file "$work/bootstrap" >"$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
[ -s "$work/bootstrap" ] || { echo "td-broker did not start"; cat "$work/broker.log"; exit 1; }
bootstrap="$(cat "$work/bootstrap")"
echo "== embedded broker at $bootstrap"

"$(bin coordinator/kafka/td-coordinator)" --bootstrap-server "$bootstrap" \
  >"$work/coordinator.log" 2>&1 &
pids+=($!)
echo "== coordinator started; three workers join (w2 builds on c1, w3 on c1 and c2)"

start=$(date +%s%N)
worker() {
  local id=$1; shift
  mkdir -p "$work/$id"
  (cd "$work/$id" && exec "$(bin worker/td-worker)" --bootstrap-server "$bootstrap" \
    --schema "$root/examples/demo.yaml" --peer-id "$id" \
    --repository https://example.com/app.git --base-ref main \
    --remote-cache-id demo-cache --pipeline gate --pipeline-type dependent "$@")
}
worker w1 --change-ref c1 >"$work/w1.summary" &
w1=$!
worker w2 --change-ref c2 --builds-on c1 >"$work/w2.summary" &
w2=$!
worker w3 --change-ref c3 --builds-on c1 --builds-on c2 >"$work/w3.summary" &
w3=$!
status=0
for p in $w1 $w2 $w3; do wait "$p" || status=1; done
end=$(date +%s%N)

echo
cat "$work/w1.summary"
ms=$(( (end - start) / 1000000 ))
printf '== demo wall time: %d.%03d s; workers exited %s\n' $((ms / 1000)) $((ms % 1000)) \
  "$([ $status -eq 0 ] && echo 0 || echo 'with a failure')"
exit $status
