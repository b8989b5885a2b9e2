# Fills td.state (4 partitions) with hand-made group snapshots, several versions of each as an
# uncompacted log holds them, to measure how long a coordinator takes to restore a large
# changelog (docs/performance.md, "Restoring a large changelog"). Needs Debian's
# python3-confluent-kafka and the protoc-generated td.v1 modules that the build writes to
# build/python_gen (or TD_PYGEN).
#   /usr/bin/python3 benchmarks/fill_state.py BOOTSTRAP GROUPS_PER_PARTITION VERSIONS RUNNING_PER_PARTITION
import os, sys, time
sys.path.insert(0, os.environ.get("TD_PYGEN", "build/python_gen"))
from confluent_kafka import Producer
from td.v1 import state_pb2, common_pb2

bootstrap, per_partition, versions, running = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "queue.buffering.max.messages": 1000000})
now = int(time.time() * 1000)
count = 0
for partition in range(4):
    for v in range(versions):
        for g in range(per_partition):
            r = state_pb2.StateRecord()
            r.protocol_version = common_pb2.PROTOCOL_VERSION_1
            s = r.group
            s.group_id = f"exp-{partition}-{g:05d}"
            s.compatibility_key = f"key-{partition}-{g}"
            s.partition = partition
            s.ordinal = g + 1
            s.coordinator_epoch = 1
            s.coordinator_id = "old"
            live = g < running
            s.status = common_pb2.GROUP_STATUS_RUNNING if live else common_pb2.GROUP_STATUS_COMPLETED
            s.created_at_ms = now - 60000
            s.finished_at_ms = 0 if live else now - 1000
            s.next_sequence = 40 + v
            s.schema_name = "exp"
            for i in range(10):
                st = s.steps.add()
                st.spec.id = f"step{i}"
                st.spec.max_attempts = 3
                st.state = state_pb2.STEP_STATE_QUEUED if live and i >= 5 else state_pb2.STEP_STATE_SUCCEEDED
                st.attempt = 0 if live and i >= 5 else 1
                st.peer_id = "" if live and i >= 5 else f"w{i % 3}"
                st.last_outcome = common_pb2.STEP_OUTCOME_UNSPECIFIED if live and i >= 5 else common_pb2.STEP_OUTCOME_SUCCEEDED
            for m in range(3):
                mm = s.members.add()
                mm.peer_id = f"w{m}-{partition}-{g}"
                mm.session_id = f"s{m}"
                mm.present = True
                mm.slots = 1
            s.refs.append(f"repo\nc{g}")
            p.produce("td.state", key=s.group_id, value=r.SerializeToString(), partition=partition)
            count += 1
            if count % 10000 == 0:
                p.flush()
p.flush()
print(f"produced {count} records, {len(r.SerializeToString())} bytes each (last)")
