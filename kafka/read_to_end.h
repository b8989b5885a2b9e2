// Reading a whole topic as it is now: every partition from its start to its high watermark.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "kafka/partition_reader.h"

namespace td::kafka {

// Reads partitions 0..partitions-1 of `topic` from their low to their high watermarks as they
// are when called, calling `on_message` for each record in between (in offset order per
// partition), then returns. Reading ends at a partition's mark or once the reader is past it
// (a log written in transactions ends with a marker that is never handed out). Replaces the
// reader's assignment. Errors: the watermarks' (kafka/partition_reader.h), poll's, and
// td::Errc::kTimeout when the whole read took longer than `timeout`.
// With `on_past`, for a reader that goes on polling afterwards (a follower): empty partitions
// are assigned too, at their end, and records past the watermarks that come with the batches
// read go to `on_past` instead of being dropped.
td::Status readToEnd(PartitionReader& reader, const std::string& topic, std::int32_t partitions,
                     std::chrono::milliseconds timeout,
                     const std::function<void(const Message&)>& on_message,
                     const std::function<void(const Message&)>& on_past = {});

}  // namespace td::kafka
