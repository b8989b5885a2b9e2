#!/usr/bin/env bash
# Creates Task Director's topics on an Apache Kafka cluster with kafka-topics.sh. Shared by
# deploy/compose/compose.yaml and deploy/k8s/topics-job.yaml; see deploy/README.md.
#
#   create-topics.sh --bootstrap-server HOST:PORT [--prefix td.] [--partitions 12]
#                    [--replication-factor 1] [--aux-partitions 3]
#                    [--events-retention-ms 604800000] [--dlq-retention-ms 2592000000]
#                    [--logs-retention-ms 259200000]
#                    [--command-config FILE] [--dry-run]
#
# - registrations, completions, joins and state get the SAME partition count (--partitions):
#   td-coordinator exits 2 at start when registrations, completions and state differ, and
#   td.joins[p] answers td.registrations[p] (docs/operations.md, "Choosing the partition count").
# - state and step-stats are compacted (cleanup.policy=compact); events, dlq and logs are
#   deleted after their retention. logs (steps' output, lz4-compressed by the workers) keeps
#   the producer's compression (compression.type=producer).
# - td.assign.<group> topics are not created here: coordinators create one per group through
#   the Admin API (assign-topics: admin), or the brokers auto-create them on first use.
# - step-stats, events, dlq and logs get --aux-partitions (any count works for them).
# Idempotent (--if-not-exists); afterwards it checks that the four topics that must agree do
# agree, since an existing topic keeps its old count. --dry-run prints the kafka-topics.sh
# commands instead of running them (the deploy test reads that output).
# Exit codes: 0 done, 1 a command failed or the counts disagree, 2 usage.
set -euo pipefail

bootstrap=""
prefix="td."
partitions=12
replication=1
aux_partitions=3
events_retention_ms=604800000    # 7 days
dlq_retention_ms=2592000000      # 30 days
logs_retention_ms=259200000      # 3 days
command_config=""
dry_run=0

usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_value() {
  if [ $# -lt 2 ] || [ -z "$2" ]; then
    echo "create-topics.sh: $1 needs a value" >&2
    exit 2
  fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap-server) need_value "$@"; bootstrap="$2"; shift 2 ;;
    --prefix) need_value "$@"; prefix="$2"; shift 2 ;;
    --partitions) need_value "$@"; partitions="$2"; shift 2 ;;
    --replication-factor) need_value "$@"; replication="$2"; shift 2 ;;
    --aux-partitions) need_value "$@"; aux_partitions="$2"; shift 2 ;;
    --events-retention-ms) need_value "$@"; events_retention_ms="$2"; shift 2 ;;
    --dlq-retention-ms) need_value "$@"; dlq_retention_ms="$2"; shift 2 ;;
    --logs-retention-ms) need_value "$@"; logs_retention_ms="$2"; shift 2 ;;
    --command-config) need_value "$@"; command_config="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage ;;
    *) echo "create-topics.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

[ -n "$bootstrap" ] || { echo "create-topics.sh: --bootstrap-server is required" >&2; exit 2; }
for n in "$partitions" "$replication" "$aux_partitions" "$events_retention_ms" "$dlq_retention_ms" \
         "$logs_retention_ms"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "create-topics.sh: '$n' is not a positive integer" >&2; exit 2; }
done

# kafka-topics.sh from PATH, else where the apache/kafka image keeps it; KAFKA_TOPICS overrides.
topics_cmd="${KAFKA_TOPICS:-}"
if [ -z "$topics_cmd" ]; then
  if command -v kafka-topics.sh >/dev/null 2>&1; then
    topics_cmd="kafka-topics.sh"
  else
    topics_cmd="/opt/kafka/bin/kafka-topics.sh"
  fi
fi

common=(--bootstrap-server "$bootstrap")
[ -z "$command_config" ] || common+=(--command-config "$command_config")

run() {
  if [ "$dry_run" -eq 1 ]; then
    echo "$topics_cmd $*"
  else
    "$topics_cmd" "$@"
  fi
}

# create NAME PARTITIONS [CONFIG...]
create() {
  local name="$prefix$1" count="$2"
  shift 2
  local configs=()
  for c in "$@"; do configs+=(--config "$c"); done
  run "${common[@]}" --create --if-not-exists --topic "$name" --partitions "$count" \
    --replication-factor "$replication" "${configs[@]}"
}

# The input topics, their reply topic and the changelog: one partition count.
create registrations "$partitions"
create completions "$partitions"
create joins "$partitions"
create state "$partitions" cleanup.policy=compact
# td.step-stats is read whole by every coordinator, td.events and td.dlq by operators and
# auditors: any count works for them (--aux-partitions).
create step-stats "$aux_partitions" cleanup.policy=compact
# Audit stream and dead letters: kept for their retention, then deleted.
create events "$aux_partitions" cleanup.policy=delete "retention.ms=$events_retention_ms"
create dlq "$aux_partitions" cleanup.policy=delete "retention.ms=$dlq_retention_ms"
# Steps' output (td-audit logs), keyed by group: kept for days, not weeks (docs/operations.md,
# "Sizing td.logs").
create logs "$aux_partitions" cleanup.policy=delete "retention.ms=$logs_retention_ms" \
  compression.type=producer

[ "$dry_run" -eq 0 ] || exit 0

# An existing topic keeps its count (--if-not-exists), so check what the cluster now has.
status=0
for t in registrations completions joins state; do
  line="$("$topics_cmd" "${common[@]}" --describe --topic "$prefix$t" | grep -m1 'PartitionCount' || true)"
  count="$(sed -n 's/.*PartitionCount:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$line")"
  if [ "$count" != "$partitions" ]; then
    echo "create-topics.sh: $prefix$t has ${count:-an unknown number of} partitions, expected" \
      "$partitions (td-coordinator needs registrations, completions, joins and state to agree;" \
      "see docs/operations.md)" >&2
    status=1
  fi
done
[ "$status" -ne 0 ] || echo "create-topics.sh: topics under '$prefix' ready ($partitions partitions)"
exit "$status"
