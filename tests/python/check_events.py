#!/usr/bin/python3
"""Checks one group's audit stream on td.events, as an outside consumer would see it.

Reads td.events from the beginning with a consumer group of its own, collects the events of
--group until it sees group_completed or group_failed (or --timeout passes), then checks:
sequences 1..N without gaps (identical repeats are deduplicated by (group_id, sequence), as
docs/events.md tells consumers to: they are redeliveries, e.g. an outbox re-published by a new
owner after a fail-over; a repeat with different content is an error), the first event is
group_created, exactly one step_finished SUCCEEDED per step of group_created, exactly
--expect-failed step_finished FAILED, and group_completed present (and last). group_restored
events (a coordinator took the group over) are counted and listed; a coordinator_epoch that
goes down in sequence order is reported as a warning. Event kinds this code does not know are
counted as "unknown" and otherwise skipped, as the compatibility rules say.
Prints a JSON summary on stdout; exits 0 if every check passed, 1 otherwise.

The Python code for td.v1 is generated at test time, never committed:
  protoc --python_out=OUT -I messages messages/td/v1/*.proto
and OUT is given as --proto-dir.
"""
import argparse
import collections
import json
import sys
import time
import uuid


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    ap.add_argument("--group", required=True, help="the Task Director group id to check")
    ap.add_argument("--proto-dir", required=True, help="protoc --python_out directory")
    ap.add_argument("--topic", default="td.events")
    ap.add_argument("--expect-failed", type=int, default=0,
                    help="step_finished events with outcome FAILED expected")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the end")
    args = ap.parse_args()

    summary = {"group": args.group, "ok": False, "errors": []}

    def finish():
        summary["ok"] = not summary["errors"]
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0 if summary["ok"] else 1

    try:
        from confluent_kafka import Consumer, KafkaError
    except ImportError as e:
        summary["errors"].append(
            f"python module confluent_kafka missing ({e}): install python3-confluent-kafka "
            "(scripts/td does)")
        return finish()
    sys.path.insert(0, args.proto_dir)
    try:
        from td.v1 import events_pb2, common_pb2
    except ImportError as e:
        summary["errors"].append(f"cannot import generated td.v1 code from {args.proto_dir}: {e}")
        return finish()

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"td-events-check-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([args.topic])

    by_seq = {}             # sequence -> serialized event (first copy)
    repeats = 0
    redelivered = 0         # repeats with the same bytes as the first copy
    conflicts = []
    other_groups = 0
    deadline = time.monotonic() + args.timeout
    ended = False
    try:
        while not ended and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                summary["errors"].append(f"consumer error: {msg.error()}")
                break
            if msg.key() is not None and msg.key().decode("utf-8", "replace") != args.group:
                other_groups += 1
                continue
            ev = events_pb2.Event()
            ev.ParseFromString(msg.value())
            if ev.group_id != args.group:
                summary["errors"].append(
                    f"key {msg.key()!r} but group_id {ev.group_id!r} at offset {msg.offset()}")
                continue
            raw = msg.value()
            if ev.sequence in by_seq:
                repeats += 1
                if by_seq[ev.sequence] != raw:
                    conflicts.append(ev.sequence)
                else:
                    redelivered += 1
                continue
            by_seq[ev.sequence] = raw
            if ev.WhichOneof("kind") in ("group_completed", "group_failed"):
                ended = True
    finally:
        consumer.close()

    events = []
    for seq in sorted(by_seq):
        ev = events_pb2.Event()
        ev.ParseFromString(by_seq[seq])
        events.append(ev)

    kinds = collections.Counter(ev.WhichOneof("kind") or "unknown" for ev in events)
    seqs = [ev.sequence for ev in events]
    n = len(seqs)
    outcome_name = lambda v: common_pb2.StepOutcome.Name(v)
    finished = collections.Counter()
    succeeded_per_step = collections.Counter()
    for ev in events:
        if ev.WhichOneof("kind") == "step_finished":
            f = ev.step_finished
            finished[outcome_name(f.outcome)] += 1
            if f.outcome == common_pb2.STEP_OUTCOME_SUCCEEDED:
                succeeded_per_step[f.step_id] += 1
    restores = [{"sequence": ev.sequence,
                 "previous_epoch": ev.group_restored.previous_epoch,
                 "previous_coordinator_id": ev.group_restored.previous_coordinator_id,
                 "epoch": ev.coordinator_epoch,
                 "coordinator_id": ev.coordinator_id,
                 "republished": ev.group_restored.republished}
                for ev in events if ev.WhichOneof("kind") == "group_restored"]
    steps = []
    if events and events[0].WhichOneof("kind") == "group_created":
        steps = [s.id for s in events[0].group_created.steps]

    summary.update({
        "events": n,
        "last_sequence": seqs[-1] if seqs else 0,
        "kinds": dict(sorted(kinds.items())),
        "step_finished_outcomes": dict(sorted(finished.items())),
        "steps": steps,
        "repeated_sequences": repeats,
        "redelivered": redelivered,
        "restores": restores,
        "other_groups_skipped": other_groups,
        "coordinator_ids": sorted({ev.coordinator_id for ev in events}),
        "coordinator_epochs": sorted({ev.coordinator_epoch for ev in events}),
    })

    errors = summary["errors"]
    if not ended:
        errors.append(f"no group_completed/group_failed within {args.timeout} s")
    if seqs != list(range(1, n + 1)):
        missing = sorted(set(range(1, (seqs[-1] if seqs else 0) + 1)) - set(seqs))
        errors.append(f"sequence gaps: missing {missing[:20]}")
    if conflicts:
        errors.append(f"sequences repeated with different content: {conflicts[:20]}")
    if not steps:
        errors.append("first event is not group_created")
    for ev in events:
        if ev.protocol_version != common_pb2.PROTOCOL_VERSION_1:
            errors.append(f"seq {ev.sequence}: protocol_version {ev.protocol_version}")
        if ev.timestamp_ms <= 0 or not ev.coordinator_id:
            errors.append(f"seq {ev.sequence}: timestamp_ms or coordinator_id unset")
    highest_epoch = 0
    for i in range(n):
        if i > 0 and events[i].timestamp_ms < events[i - 1].timestamp_ms:
            summary.setdefault("warnings", []).append(
                f"timestamp_ms goes back at seq {events[i].sequence}")
        epoch = events[i].coordinator_epoch
        if epoch and epoch < highest_epoch:
            summary.setdefault("warnings", []).append(
                f"coordinator_epoch goes back to {epoch} at seq {events[i].sequence} "
                f"(after {highest_epoch})")
        highest_epoch = max(highest_epoch, epoch)
    for step in steps:
        if succeeded_per_step[step] != 1:
            errors.append(f"step {step}: {succeeded_per_step[step]} step_finished SUCCEEDED, want 1")
    for step in set(succeeded_per_step) - set(steps):
        errors.append(f"step_finished SUCCEEDED for step {step} not in group_created")
    if finished["STEP_OUTCOME_FAILED"] != args.expect_failed:
        errors.append(f"{finished['STEP_OUTCOME_FAILED']} failed attempts, want {args.expect_failed}")
    if kinds["group_completed"] != 1:
        errors.append(f"{kinds['group_completed']} group_completed, want 1")
    elif events[-1].WhichOneof("kind") != "group_completed":
        errors.append("group_completed is not the last event")
    if kinds["group_failed"]:
        errors.append("group_failed present")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
