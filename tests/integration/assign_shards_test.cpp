// A real Service run in this process (so the test reads its ServiceProbe and sets options no
// flag has), with real td-worker processes, on both brokers:
//   - the td.assign producer shards (AssignProducers) with two groups per producer: more groups
//     than one producer holds run to completion, and once their retention has passed (their
//     groups are forgotten) the full producers are closed;
//   - quiet cycles (ServiceOptions::quiet_cycle_wait): a StepStarted's cycle waits and is
//     written with its StepFinished, one td.state snapshot for both.
// Every wait polls with a deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>

#include "common/time.h"
#include "coordinator/kafka/kafka_port.h"
#include "coordinator/shell/service.h"
#include "td/v1/state.pb.h"
#include "tests/integration/cluster.h"

namespace td::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kRunTimeout = 90s;

// Runs a Service on its own thread until destroyed.
class InProcessCoordinator {
 public:
  explicit InProcessCoordinator(coordinator::ServiceOptions options) {
    auto service = coordinator::Service::create(std::move(options), clock_,
                                                coordinator::KafkaPort::create);
    if (!service) {
      ADD_FAILURE() << "Service::create: " << service.error().message();
      return;
    }
    service_ = std::move(*service);
    thread_ = std::thread([this] { status_ = service_->run(); });
  }
  ~InProcessCoordinator() {
    if (!service_) return;
    service_->stop();
    thread_.join();
    EXPECT_TRUE(status_) << status_.error().message();
  }
  bool ok() const { return service_ != nullptr; }
  const coordinator::ServiceProbe& probe() const { return service_->probe(); }

 private:
  SystemClock clock_;
  std::unique_ptr<coordinator::Service> service_;
  std::thread thread_;
  td::Status status_;
};

TEST(AssignShards, MoreGroupsThanOneProducerHoldsCompleteAndEmptiedProducersClose) {
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  coordinator::ServiceOptions options;
  options.bootstrap_servers = cluster.bootstrap();
  options.consumer_group = "assign-shards-" + std::to_string(::getpid());
  options.core.coordinator_id = "in-process";
  options.core.finished_group_retention = 1s;   // forgotten soon after they complete
  options.assign_groups_per_producer = 2;
  InProcessCoordinator coordinator(options);
  ASSERT_TRUE(coordinator.ok());

  // Five groups (different change refs, nothing built on another): producers 0 and 1 get two
  // groups each and are full, producer 2 has the fifth.
  std::string yaml = "name: shards\ndefaults: {timeout: 1m, max_attempts: 2}\nsteps:\n";
  for (const char* id : {"a", "b"}) {
    yaml += std::string("  - id: ") + id + "\n    run: " + kMarkCommand + "\n";
  }
  const auto schema = cluster.writeSchema("shards", yaml);
  std::vector<Process*> workers;
  for (int i = 0; i < 5; ++i) {
    workers.push_back(&cluster.startWorker(
        schema, {"w" + std::to_string(i), "change-" + std::to_string(i)}));
  }
  for (auto* w : workers) ASSERT_EQ(w->wait(kRunTimeout), 0) << cluster.logs();

  std::set<std::string> groups;
  for (const auto& m : cluster.marksWritten()) groups.insert(m.group);
  EXPECT_EQ(groups.size(), 5u) << cluster.logs();
  EXPECT_EQ(cluster.marksWritten().size(), 10u) << "every step of every group ran once";
  int completed = 0;
  for (const auto& e : cluster.events()) completed += e.has_group_completed() ? 1 : 0;
  EXPECT_EQ(completed, 5);

  // Every group forgotten (1 s retention, then the next tick): both full producers close; the
  // current one (the fifth group's) stays open for new groups.
  const auto& probe = coordinator.probe();
  EXPECT_TRUE(waitUntil([&] { return probe.assign_producers_closed.load() >= 2; }, 30s))
      << "closed " << probe.assign_producers_closed.load() << ", open "
      << probe.assign_producers_open.load();
  EXPECT_EQ(probe.assign_producers_closed.load(), 2u);
  EXPECT_EQ(probe.assign_producers_open.load(), 1);
}

// Outbox events of `group`'s td.state snapshots, one string per snapshot ("started:a
// finished:a ..."), in the order they were written.
std::vector<std::string> snapshotOutboxes(const Cluster& cluster, const std::string& group) {
  std::vector<std::string> out;
  for (const auto& m : cluster.readTopic("td.state")) {
    td::v1::StateRecord record;
    if (m.key != group || !record.ParseFromString(m.value) || !record.has_group()) continue;
    std::string kinds;
    for (const auto& r : record.group().outbox()) {
      if (r.event().has_step_started()) kinds += "started:" + r.event().step_started().step_id() + " ";
      if (r.event().has_step_finished()) {
        kinds += "finished:" + r.event().step_finished().step_id() + " ";
      }
    }
    out.push_back(kinds);
  }
  return out;
}

TEST(QuietCycles, AStepStartedWaitsForItsStepFinishedAndOneSnapshotHoldsBoth) {
  Cluster cluster(Cluster::Options{.start_coordinator = false});
  coordinator::ServiceOptions options;
  options.bootstrap_servers = cluster.bootstrap();
  options.consumer_group = "quiet-cycles-" + std::to_string(::getpid());
  options.core.coordinator_id = "in-process";
  // Longer than the step (1 s), so without the wait the StepStarted is written a second before
  // its StepFinished arrives.
  options.quiet_cycle_wait = Millis(5000);
  InProcessCoordinator coordinator(options);
  ASSERT_TRUE(coordinator.ok());
  const auto schema = cluster.writeSchema(
      "quiet", "name: quiet\ndefaults: {timeout: 1m, max_attempts: 1}\nsteps:\n"
               "  - {id: a, run: 'sleep 1'}\n  - {id: b, run: 'sleep 1'}\n");
  auto& worker = cluster.startWorker(schema, {"w1", "change-1"});
  ASSERT_EQ(worker.wait(kRunTimeout), 0) << cluster.logs();
  std::string group;
  for (const auto& e : cluster.events()) {
    if (e.has_group_completed()) group = e.group_id();
  }
  ASSERT_FALSE(group.empty()) << cluster.logs();
  const auto outboxes = snapshotOutboxes(cluster, group);
  std::string all;
  for (const auto& o : outboxes) all += "[" + o + "] ";
  for (const char* step : {"a", "b"}) {
    const std::string started = std::string("started:") + step + " ";
    const std::string both = started + "finished:" + step + " ";
    EXPECT_TRUE(std::any_of(outboxes.begin(), outboxes.end(),
                            [&](const std::string& o) { return o.find(both) != std::string::npos; }))
        << "no snapshot holds " << step << "'s start and finish together: " << all;
    EXPECT_FALSE(std::any_of(outboxes.begin(), outboxes.end(), [&](const std::string& o) {
      return o.find(started) != std::string::npos && o.find(both) == std::string::npos;
    })) << step << "'s start was written alone: " << all;
  }
}

}  // namespace
}  // namespace td::testing
