#!/usr/bin/env bash
# Grants Task Director's two principals the Kafka ACLs they need, and no more, with
# kafka-acls.sh. For clusters with an authorizer (allow.everyone.if.no.acl.found=false); see
# deploy/README.md and docs/configuration.md ("Secure clusters") for what each ACL is for.
#
#   create-acls.sh --bootstrap-server HOST:PORT [--prefix td.]
#                  [--coordinator-principal User:td-coordinator]
#                  [--worker-principal User:td-worker] [--consumer-group td-coordinator]
#                  [--assign-topics admin|auto] [--exactly-once]
#                  [--audit-principal User:td-audit]
#                  [--command-config FILE] [--dry-run]
#
# - Coordinators: Read on registrations, completions, state and step-stats and on the consumer
#   group; Write on joins, events, dlq, state and step-stats; Write and Create on every topic
#   prefixed <prefix>assign. (plus Delete with --assign-topics admin, the default).
#   --exactly-once adds Write on transactional ids prefixed <consumer-group>. (the coordinator's
#   transactional.id is <consumer-group>.<coordinator-id>).
# - Workers: Write on registrations, completions and logs; Read on joins and on every topic
#   prefixed <prefix>assign.. Nothing on any group: they read with assign() and commit nothing.
# - td-audit, only with --audit-principal: Read on events and logs (verify, show, tail,
#   report and logs read with assign(), no group).
# Read and Write imply Describe, and Write on any topic implies IdempotentWrite (Kafka 3.0+).
# Idempotent (an ACL that exists is not added twice). One kafka-acls.sh call per principal,
# pattern type and operation set (six, one more with --exactly-once and with --audit-principal;
# each starts a JVM). --dry-run prints the commands.
# KAFKA_ACLS overrides where kafka-acls.sh is (default: PATH, else /opt/kafka/bin).
# Exit codes: 0 done, 1 a kafka-acls.sh call failed, 2 usage.
set -euo pipefail

bootstrap=""
prefix="td."
coordinator="User:td-coordinator"
worker="User:td-worker"
group="td-coordinator"
assign_topics="admin"
exactly_once=0
audit=""
command_config=""
dry_run=0

usage() {
  sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_value() {
  if [ $# -lt 2 ] || [ -z "$2" ]; then
    echo "create-acls.sh: $1 needs a value" >&2
    exit 2
  fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap-server) need_value "$@"; bootstrap="$2"; shift 2 ;;
    --prefix) need_value "$@"; prefix="$2"; shift 2 ;;
    --coordinator-principal) need_value "$@"; coordinator="$2"; shift 2 ;;
    --worker-principal) need_value "$@"; worker="$2"; shift 2 ;;
    --consumer-group) need_value "$@"; group="$2"; shift 2 ;;
    --assign-topics) need_value "$@"; assign_topics="$2"; shift 2 ;;
    --exactly-once) exactly_once=1; shift ;;
    --audit-principal) need_value "$@"; audit="$2"; shift 2 ;;
    --command-config) need_value "$@"; command_config="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage ;;
    *) echo "create-acls.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

[ -n "$bootstrap" ] || { echo "create-acls.sh: --bootstrap-server is required" >&2; exit 2; }
for p in "$coordinator" "$worker" ${audit:+"$audit"}; do
  [[ "$p" =~ ^[A-Za-z]+:.+$ ]] || {
    echo "create-acls.sh: principal '$p' is not TYPE:NAME (e.g. User:td-worker)" >&2; exit 2; }
done
case "$assign_topics" in
  admin|auto) ;;
  *) echo "create-acls.sh: --assign-topics must be admin or auto, not '$assign_topics'" >&2; exit 2 ;;
esac

# kafka-acls.sh from PATH, else where the apache/kafka image keeps it; KAFKA_ACLS overrides.
acls_cmd="${KAFKA_ACLS:-}"
if [ -z "$acls_cmd" ]; then
  if command -v kafka-acls.sh >/dev/null 2>&1; then
    acls_cmd="kafka-acls.sh"
  else
    acls_cmd="/opt/kafka/bin/kafka-acls.sh"
  fi
fi

common=(--bootstrap-server "$bootstrap")
[ -z "$command_config" ] || common+=(--command-config "$command_config")

# grant PRINCIPAL PATTERN-TYPE OPERATIONS RESOURCE...: one kafka-acls.sh call; OPERATIONS is a
# comma-separated list, each RESOURCE is topic:NAME, group:NAME or transactional-id:NAME.
grant() {
  local principal="$1" pattern="$2" ops="$3"
  shift 3
  local args=(--add --allow-principal "$principal" --resource-pattern-type "$pattern")
  local op resource op_list
  IFS=, read -r -a op_list <<<"$ops"
  for op in "${op_list[@]}"; do args+=(--operation "$op"); done
  for resource in "$@"; do args+=("--${resource%%:*}" "${resource#*:}"); done
  if [ "$dry_run" -eq 1 ]; then
    echo "$acls_cmd ${common[*]} ${args[*]}"
  elif ! "$acls_cmd" "${common[@]}" "${args[@]}" >/dev/null; then
    echo "create-acls.sh: kafka-acls.sh failed granting $ops to $principal on $*" >&2
    exit 1
  fi
}

t() { echo "topic:$prefix$1"; }

# Coordinators: consume the input (subscribe, as the consumer group), restore td.state, follow
# td.step-stats; write replies, the audit stream, dead letters, snapshots, step durations.
grant "$coordinator" literal Read \
  "$(t registrations)" "$(t completions)" "$(t state)" "$(t step-stats)" "group:$group"
grant "$coordinator" literal Write \
  "$(t joins)" "$(t events)" "$(t dlq)" "$(t state)" "$(t step-stats)"
# Per-group assignment topics: written; created (by CreateTopics with --assign-topics admin, by
# the broker's auto-creation with auto); deleted once the group is forgotten (admin only).
assign_ops="Write,Create"
[ "$assign_topics" = auto ] || assign_ops+=",Delete"
grant "$coordinator" prefixed "$assign_ops" "$(t assign.)"
# --exactly-once: the coordinator's transactional producer (transactional.id
# <consumer-group>.<coordinator-id>); its offsets go through the group's Read above.
[ "$exactly_once" -eq 0 ] || grant "$coordinator" prefixed Write "transactional-id:$group."

# Workers: register and report; read the join replies and their group's assignments.
grant "$worker" literal Write "$(t registrations)" "$(t completions)" "$(t logs)"
grant "$worker" literal Read "$(t joins)"
grant "$worker" prefixed Read "$(t assign.)"

# td-audit (optional): reads the audit stream and the steps' output.
[ -z "$audit" ] || grant "$audit" literal Read "$(t events)" "$(t logs)"

[ "$dry_run" -eq 1 ] || echo "create-acls.sh: ACLs for $coordinator and $worker on '$prefix' granted"
