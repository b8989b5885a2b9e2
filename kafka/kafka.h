// td_kafka: thin RAII over librdkafka's C API (the only target that links librdkafka) and the
// embedded broker. Include this for the whole API; no librdkafka type appears in it.
//   Producer        -- produce with delivery callbacks, flush, partition counts
//   GroupConsumer   -- consumer-group member with manual commits and rebalance callbacks
//   PartitionReader -- group-less reader of chosen partitions/offsets, with an event fd
//   EmbeddedBroker  -- librdkafka's mock cluster hosted in-process, with fault injection
//   Admin           -- CreateTopics / DeleteTopics (Apache Kafka; not the embedded broker)
// All errors are td::Error values with codes in the "kafka" category (kafka::Errc) or, for
// non-Kafka failures, td::Errc.
#pragma once

#include "kafka/admin.h"
#include "kafka/embedded_broker.h"
#include "kafka/client_settings.h"
#include "kafka/error.h"
#include "kafka/group_consumer.h"
#include "kafka/partition_reader.h"
#include "kafka/producer.h"
#include "kafka/types.h"
