#include "kafka/internal/wake_pipe.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <utility>

namespace td::kafka::internal {

td::Result<WakePipe> WakePipe::open() {
  WakePipe pipe;
  if (::pipe2(pipe.fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    pipe.fds_[0] = pipe.fds_[1] = -1;
    return makeError(td::Errc::kIo, "pipe2 failed");
  }
  return pipe;
}

WakePipe::WakePipe(WakePipe&& other) noexcept {
  std::swap(fds_, other.fds_);
}

WakePipe& WakePipe::operator=(WakePipe&& other) noexcept {
  if (this != &other) {
    close();
    std::swap(fds_, other.fds_);
  }
  return *this;
}

WakePipe::~WakePipe() { close(); }

void WakePipe::close() {
  for (int& fd : fds_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

void WakePipe::watch(rd_kafka_queue_t* queue) const {
  static const char kPayload = 1;
  rd_kafka_queue_io_event_enable(queue, fds_[1], &kPayload, 1);
}

void WakePipe::unwatch(rd_kafka_queue_t* queue) {
  rd_kafka_queue_io_event_enable(queue, -1, nullptr, 0);
}

void WakePipe::drain() const {
  char buf[64];
  while (::read(fds_[0], buf, sizeof buf) > 0) {
  }
}

void WakePipe::signal() const {
  const char byte = 1;
  [[maybe_unused]] auto n = ::write(fds_[1], &byte, 1);
}

bool WakePipe::wait(std::chrono::milliseconds timeout) const {
  pollfd fd{fds_[0], POLLIN, 0};
  return ::poll(&fd, 1, static_cast<int>(timeout.count())) > 0;
}

td::Result<AssignOnlyConsumer> makeAssignOnlyConsumer(const Properties& defaults,
                                                      const Properties& props, void* opaque,
                                                      const WakePipe& pipe) {
  auto conf = makeConf(defaults, props, opaque);
  if (!conf) return td::unexpected(conf.error());
  auto rk = makeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
  if (!rk) return td::unexpected(rk.error());
  AssignOnlyConsumer out{.rk = std::move(*rk)};
  rd_kafka_poll_set_consumer(out.rk.get());
  out.queue.reset(rd_kafka_queue_get_consumer(out.rk.get()));
  if (!out.queue) return makeError(Errc::kState, "no consumer queue");
  pipe.watch(out.queue.get());
  return out;
}

std::string placeholderGroup(const std::string& prefix) {
  static std::atomic<unsigned> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

}  // namespace td::kafka::internal
