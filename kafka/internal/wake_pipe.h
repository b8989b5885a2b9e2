// A self-pipe that librdkafka queues write to, so one thread can wait with poll(2) for records
// of several clients (a reader and its hot twin) and for file descriptors of its own (td-worker
// also waits on its step processes and signals). One place for the pipe, its draining and the
// wake-up a reader owes itself when it stopped with records still queued.
//
// Thread safety: drain() and wait() on the owner's thread; librdkafka writes from its own.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"
#include "kafka/internal/rdkafka.h"
#include "kafka/types.h"

namespace td::kafka::internal {

class WakePipe {
 public:
  // O_CLOEXEC | O_NONBLOCK. Errors: td::Errc::kIo.
  static td::Result<WakePipe> open();
  WakePipe() = default;   // closed: isOpen() is false
  WakePipe(WakePipe&& other) noexcept;
  WakePipe& operator=(WakePipe&& other) noexcept;
  WakePipe(const WakePipe&) = delete;
  WakePipe& operator=(const WakePipe&) = delete;
  ~WakePipe();

  bool isOpen() const { return fds_[0] >= 0; }
  int readFd() const { return fds_[0]; }

  // Has `queue` write a byte to this pipe whenever it goes from empty to non-empty. Undo it
  // with unwatch() before the pipe closes.
  void watch(rd_kafka_queue_t* queue) const;
  static void unwatch(rd_kafka_queue_t* queue);

  // Reads away what was written.
  void drain() const;
  // Writes one byte, so the next wait() returns at once: for a reader that stopped at its batch
  // limit with records still queued (librdkafka signals only a queue that was empty).
  void signal() const;
  // Waits up to `timeout` for a byte (0: just look). True if one is there.
  bool wait(std::chrono::milliseconds timeout) const;

 private:
  void close();
  int fds_[2] = {-1, -1};
};

// A consumer that is only ever assign()ed: `group` is a placeholder group id (never joined,
// subscribed or committed to). Its consumer queue serves everything (rd_kafka_poll_set_consumer)
// and signals `pipe`. `defaults` go under `props`, as makeConf() applies them.
struct AssignOnlyConsumer {
  HandlePtr rk;
  QueuePtr queue;
};
td::Result<AssignOnlyConsumer> makeAssignOnlyConsumer(const Properties& defaults,
                                                      const Properties& props, void* opaque,
                                                      const WakePipe& pipe);

// "<prefix>-<pid>-<n>": a group id no other client of this process uses.
std::string placeholderGroup(const std::string& prefix);

}  // namespace td::kafka::internal
