#include "coordinator/shell/service.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "common/log.h"
#include "coordinator/changelog_fold.h"
#include "coordinator/codec.h"
#include "kafka/error.h"
#include "td/v1/dlq.pb.h"
#include "td/v1/state.pb.h"
#include "td/v1/stats.pb.h"

namespace td::coordinator {

namespace {

// A td.state record stays under Kafka's default 1 MiB limit; a larger snapshot first drops its
// outbox events (td.events copies; a fail-over in that window would leave a sequence gap).
constexpr std::size_t kMaxStateRecordBytes = 900 * 1024;

// Group-level transitions (a group's life, its membership, its owner) at info; step-level ones
// (queued, assigned, started, finished, aborted) and refused input at debug: those come with
// every step or every stray heartbeat, and td.events has them all anyway.
spdlog::level::level_enum eventLogLevel(const td::v1::Event& event) {
  using E = td::v1::Event;
  switch (event.kind_case()) {
    case E::kGroupCreated:
    case E::kPeerJoined:
    case E::kGroupCompleted:
    case E::kGroupFailed:
    case E::kGroupAbandoned:
    case E::kGroupCancelled:
    case E::kPeerLeft:
    case E::kPeerLost:
    case E::kGroupRestored:
    case E::kUniverseStarted:
    case E::kUniverseFinished:
    case E::KIND_NOT_SET:
      return spdlog::level::info;
    case E::kStepQueued:
    case E::kStepAssigned:
    case E::kStepStarted:
    case E::kStepFinished:
    case E::kStepAborted:
    case E::kInputIgnored:
      return spdlog::level::debug;
  }
  return spdlog::level::info;
}

const std::string* groupOf(const Effect& effect) {
  if (const auto* e = std::get_if<PublishEvent>(&effect)) return &e->event.group_id();
  if (const auto* a = std::get_if<PublishAssignment>(&effect)) return &a->group_id;
  return nullptr;
}

}  // namespace

Service::Service(ServiceOptions options, const Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      core_(options_.core),
      log_(td::log::get("coordinator")) {}

td::Status Service::checkOptions(const ServiceOptions& options) {
  if (options.assign_groups_per_producer < 1) {
    return makeError(td::Errc::kInvalidArgument, "assign_groups_per_producer must be >= 1");
  }
  return {};
}

td::Result<std::unique_ptr<Service>> Service::create(ServiceOptions options, const Clock& clock,
                                                     const PortFactory& make_port) {
  TD_RETURN_IF_ERROR(checkOptions(options));
  std::unique_ptr<Service> service(new Service(std::move(options), clock));
  auto port = make_port(service->options_, service->probe_);
  if (!port) return td::unexpected(port.error());
  service->port_ = std::move(*port);
  service->port_->setRebalanceListener(
      [raw = service.get()](bool assigned,
                            const std::vector<kafka::TopicPartitionOffset>& partitions) {
        raw->onRebalance(assigned, partitions);
      });
  return service;
}

td::Status Service::rejoin() {
  log_->warn("{}: leaving the consumer group and joining it again, so every partition's "
             "groups are restored from what was committed",
             rejoin_reason_);
  dropCycle();
  if (renew_producers_) {
    // A producer that failed for good (an idempotence sequence desynchronisation) delivers
    // nothing more; new ones get new producer ids.
    renew_producers_ = false;
    TD_RETURN_IF_ERROR(port_->renewProducers());
    publishAssignProbe();
  }
  delivery_failures_.store(0);
  last_delivery_error_.reset();
  in_transaction_ = false;
  probe_.rejoins.fetch_add(1);
  // Revokes every partition through onRebalance: the core drops their groups.
  port_->leaveGroup();
  rejoin_needed_ = false;
  return port_->subscribe();
}

void Service::dropCycle() {
  pending_.clear();
  encoded_.clear();
  deferred_offsets_.clear();
  deferred_until_.reset();
  dead_letters_.clear();
  stats_out_.clear();
  dispatch_started_.clear();
}

bool Service::failedTransaction(const td::Error& error) {
  const auto& code = error.code();
  if (code == kafka::Errc::kFatal || kafka::isAccessDenied(code)) return false;
  auto aborted = port_->abortTransaction(std::chrono::seconds(60));
  in_transaction_ = false;
  if (!aborted) {
    log_->error("abort_transaction: {}", aborted.error().message());
    return false;
  }
  rejoin_needed_ = true;
  rejoin_reason_ = "a transaction failed (" + error.message() + ")";
  return true;
}

bool isConfigurationError(const std::error_code& code) {
  return kafka::isAccessDenied(code) || code == td::Errc::kInvalidArgument ||
         code == kafka::Errc::kInvalidSessionTimeout;
}

td::Status Service::connect() {
  const auto started = clock_.now().mono;
  Millis backoff(250);
  Millis next_log(0);
  bool transactions_ready = !options_.exactly_once;
  while (!stopping_.load()) {
    turned();
    // Short requests, so a stop() is heard within a few seconds.
    auto status = checkPartitionCounts(std::chrono::seconds(2));
    if (status && !transactions_ready) {
      status = port_->initTransactions(std::chrono::seconds(5));
      transactions_ready = status.has_value();
    }
    if (status) {
      if (next_log.count() != 0) {
        log_->info("the Kafka broker at {} answers again after {} s", options_.bootstrap_servers,
                   (clock_.now().mono - started).count() / 1000);
      }
      TD_RETURN_IF_ERROR(port_->brokerAnswered());
      return port_->subscribe();
    }
    // Refused credentials or ACLs, partition counts that differ: a restart would only repeat
    // them. A fatal client error cannot pass either.
    if (isConfigurationError(status.error().code()) ||
        status.error().code() == kafka::Errc::kFatal) {
      return status;
    }
    probe_.broker_reachable.store(false);
    const Millis now = clock_.now().mono;
    if (now >= next_log) {
      // Once, then every 30 s: an outage of hours costs a line per half minute, not per try.
      log_->warn("cannot start: the Kafka broker at {} does not answer ({}) for {} s; retrying "
                 "(every {} ms at most), /readyz answers 503 meanwhile",
                 options_.bootstrap_servers, status.error().message(),
                 (now - started).count() / 1000, Millis(10000).count());
      next_log = now + Millis(30000);
    }
    const Millis until = clock_.now().mono + backoff;
    while (!stopping_.load() && clock_.now().mono < until) {
      turned();
      port_->pause(Millis(100));
    }
    backoff = std::min(backoff * 2, Millis(10000));
  }
  return {};
}

td::Status Service::checkPartitionCounts(Millis timeout) {
  const auto& topics = options_.core.topics;
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& topic : {topics.registrations(), topics.completions(), topics.state()}) {
    auto count = port_->partitionCount(topic, timeout);
    if (!count) return td::unexpected(count.error());
    counts.emplace_back(topic, *count);
  }
  for (const auto& [topic, count] : counts) {
    if (count != counts.front().second) {
      return makeError(td::Errc::kInvalidArgument,
                       fmt::format("{} has {} partitions but {} has {}: the input topics and "
                                   "the changelog must have the same count (docs/operations.md)",
                                   counts.front().first, counts.front().second, topic, count));
    }
  }
  return {};
}

td::Status Service::run() {
  log_->info("coordinator {} consuming {} and {} as group {} (lease {} ms, heartbeat {} ms, {})",
             options_.core.coordinator_id, options_.core.topics.registrations(),
             options_.core.topics.completions(), options_.consumer_group,
             options_.core.lease.count(), options_.core.heartbeat_interval.count(),
             options_.exactly_once ? "exactly-once: one transaction per cycle"
                                   : "at-least-once: state, then output, then offsets");
  turned();
  // The broker may not be there yet: wait for it (a deployment's start order is free).
  TD_RETURN_IF_ERROR(connect());
  if (stopping_.load()) {
    log_->info("coordinator stopping before it reached the broker");
    return {};
  }
  TD_RETURN_IF_ERROR(loadStepStats());
  Millis next_tick = clock_.now().mono;
  while (!stopping_.load()) {
    turned();
    if (rejoin_needed_) TD_RETURN_IF_ERROR(rejoin());
    const Instant now = clock_.now();
    Millis until = std::min(next_tick, now.mono + options_.tick_interval);
    if (deferred_until_) until = std::min(until, *deferred_until_);
    const auto wait = std::max(Millis(0), until - now.mono);
    auto batch = port_->poll(options_.batch_max, wait);
    const Millis polled_at = clock_.now().mono;
    if (fatal_) return *fatal_;
    if (!batch) return td::unexpected(batch.error());
    // Asked to stop: a batch polled since is left for the next owner (its offsets are not
    // stored). It may hold records of a partition assigned in this very poll and left
    // unrestored because of the stop (restorePartition()).
    if (stopping_.load()) break;
    if (!batch->empty()) TD_RETURN_IF_ERROR(handleBatch(*batch, polled_at));
    if (deferred_until_ && clock_.now().mono >= *deferred_until_) {
      TD_RETURN_IF_ERROR(writeDeferredCycle());
    }
    deliverFlowAnswers();
    if (clock_.now().mono >= next_tick) {
      pollStepStats();
      port_->pollAssignTopics(clock_.now().mono);
      collect(nullptr, core_.handle(Tick{}, clock_.now()));
      // A cycle that waits goes on waiting if the tick added nothing anyone waits for;
      // otherwise the tick's output is written with it.
      if (!deferred_until_ || !quietCycle()) TD_RETURN_IF_ERROR(writeDeferredCycle());
      probe_.ticks.fetch_add(1);
      trimHeap();
      next_tick = clock_.now().mono + options_.tick_interval;
    }
    if (options_.publish_stats) publishStats();
  }
  log_->info("coordinator stopping: flushing");
  TD_RETURN_IF_ERROR(writeDeferredCycle());
  TD_RETURN_IF_ERROR(port_->flush(std::chrono::seconds(10)));
  port_->leaveGroup();
  return {};
}

void Service::onRebalance(bool assigned,
                          const std::vector<kafka::TopicPartitionOffset>& partitions) {
  (assigned ? probe_.rebalances_assigned : probe_.rebalances_revoked).fetch_add(1);
  // A cycle that waits is written first, while its groups are still this coordinator's.
  if (deferred_until_ && !fatal_ && !rejoin_needed_) {
    if (auto status = writeDeferredCycle(); !status) fatal_ = td::unexpected(status.error());
  }
  if (assigned) probe_.joined.store(true);
  probe_.restoring.store(assigned);
  for (const auto& tp : partitions) {
    if (tp.topic != options_.core.topics.registrations()) continue;
    probe_.partitions_owned.fetch_add(assigned ? 1 : -1);
    handled_next_.erase(tp.partition);
    if (assigned) {
      owned_.insert(tp.partition);
    } else {
      owned_.erase(tp.partition);
    }
    if (!assigned) {
      // Its groups' output is acknowledged (cycles wait for it): their shards may close.
      for (const auto& group_id : core_.dropPartition(tp.partition)) {
        forgetAssignTopic(group_id);
        port_->dropAssignTopic(group_id);
      }
      log_->info("partition {} revoked: its groups are another coordinator's now", tp.partition);
      continue;
    }
    if (fatal_ || rejoin_needed_) continue;   // a rejoin restores every partition anew
    if (auto status = restorePartition(tp.partition); !status) {
      fatal_ = td::unexpected(status.error());
    }
  }
  probe_.restoring.store(false);
  turned();
}

td::Status Service::readState(std::int32_t partition, std::int64_t from, std::int64_t to,
                              const std::function<void(const kafka::Message&)>& visit) {
  if (from >= to) return {};
  const auto& topic = options_.core.topics.state();
  TD_RETURN_IF_ERROR(stateReader().assign({{topic, partition, from}}));
  const Millis deadline = clock_.now().mono + options_.restore_timeout;
  std::int64_t next = from;
  while (next < to) {
    turned();
    if (clock_.now().mono > deadline) {
      return makeError(td::Errc::kTimeout,
                       fmt::format("reading {}[{}] from {} to {} stopped at {} after {} ms",
                                   topic, partition, from, to, next,
                                   options_.restore_timeout.count()));
    }
    auto batch = stateReader().poll(1000, std::chrono::milliseconds(100));
    if (!batch) return td::unexpected(batch.error());
    for (const auto& msg : *batch) {
      if (msg.offset >= to) break;
      visit(msg);
      next = msg.offset + 1;
    }
    if (next < to && batch->empty()) {
      // The records before `to` may be gone (compaction) or never handed out (with
      // --exactly-once the log ends in a transaction marker, and aborted records are skipped):
      // the reader's position, or the log end, tells.
      if (stateReader().position(topic, partition) >= to) break;
      auto marks = stateReader().watermarks(topic, partition, std::chrono::seconds(5));
      if (marks && marks->second <= next) break;
    }
  }
  return {};
}

td::Status Service::restorePartition(std::int32_t partition) {
  const auto started = clock_.now().mono;
  const auto& topic = options_.core.topics.state();
  ChangelogFold fold;   // the rules: coordinator/changelog_fold.h
  auto visit = [&](const kafka::Message& msg) {
    if (fold.add(msg.key, msg.value) == ChangelogFold::Outcome::kUndecodable) {
      collect(&msg, Effects{DeadLetter{.reason = "undecodable td.state record"}});
    }
  };
  // Everything written so far, then the claim, then whatever a previous owner wrote before the
  // claim landed: the snapshots restored are exactly those before the claim.
  td::Result<std::pair<std::int64_t, std::int64_t>> marks =
      makeError(td::Errc::kTimeout, "no attempt");
  for (int tries = 0; tries < 12 && !stopping_.load(); ++tries) {
    marks = stateReader().watermarks(topic, partition, std::chrono::seconds(5));
    if (marks) break;
    log_->warn("restore of partition {}: {}", partition, marks.error().message());
  }
  if (!marks) {
    // Asked to stop before a first try: the partition is left unclaimed, and its input
    // unhandled (run() handles no batch once stopping); the next owner restores it.
    if (stopping_.load()) return {};
    return td::unexpected(marks.error());
  }
  TD_RETURN_IF_ERROR(readState(partition, marks->first, marks->second, visit));
  // Above every epoch in the log (ChangelogFold::nextEpoch()), not only the claims.
  const std::uint64_t epoch = fold.nextEpoch();
  td::v1::StateRecord claim;
  claim.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
  claim.mutable_owner()->set_epoch(epoch);
  claim.mutable_owner()->set_coordinator_id(options_.core.coordinator_id);
  claim.mutable_owner()->set_claimed_at_ms(clock_.now().wall.count());
  claim.mutable_owner()->set_partition(partition);
  // Shared with the delivery callback, which may run after this returns (a stop cuts the wait
  // short and the producer's purge runs it later).
  auto claimed_at = std::make_shared<std::int64_t>(-1);
  produce(topic, partition, std::string(kOwnerKey), claim.SerializeAsString(),
          [claimed_at](const td::Status& result, std::int32_t, std::int64_t offset) {
            if (result) *claimed_at = offset;
          });
  if (in_transaction_) {
    in_transaction_ = false;
    if (auto committed = port_->commitTransaction(std::chrono::seconds(60)); !committed) {
      log_->error("transaction failed: {}; aborting", committed.error().message());
      if (failedTransaction(committed.error())) return {};
      return committed;
    }
  }
  if (rejoin_needed_) return {};   // the claim was not written: the rejoin restores it again
  TD_RETURN_IF_ERROR(awaitAcknowledgements());
  const std::int64_t claim_offset = *claimed_at;
  TD_RETURN_IF_ERROR(readState(partition, marks->second, claim_offset, visit));
  if (fold.nextEpoch() > epoch) {
    // Another coordinator claimed the partition with this epoch or a higher one between our
    // read and our claim: one of us had lost the partition while claiming it (a process
    // stalled in mid-restore), and both would serve its groups under one epoch, which no
    // reader can tell apart (found by the simulation, docs/testing.md). This one gives up the
    // restore and joins the consumer group again, so the group decides who owns the partition
    // and its owner claims it anew, above every claim in the log.
    rejoin_needed_ = true;
    rejoin_reason_ = fmt::format("partition {} was claimed by another coordinator (epoch {}) "
                                 "while this one claimed it with epoch {}",
                                 partition, fold.nextEpoch() - 1, epoch);
    return {};
  }

  auto [snapshots, refused] = fold.take();
  for (const auto& record : refused) {
    // Its topic's deletion may have been lost with the previous owner: deleting again is
    // harmless (a missing topic counts as deleted).
    port_->retireAssignTopic(record.group_id(), clock_.now().mono);
  }
  collect(nullptr, core_.restore(partition, epoch, snapshots, refused, clock_.now()));
  TD_RETURN_IF_ERROR(writeCycle({}));
  probe_.partitions_restored.fetch_add(1);
  probe_.groups_restored.fetch_add(snapshots.size());
  log_->info("partition {} claimed with epoch {}: restored {} groups from {} records of {} in {} ms"
             "{}",
             partition, epoch, snapshots.size(), claim_offset - marks->first, topic,
             (clock_.now().mono - started).count(),
             fold.skipped() > 0
                 ? fmt::format(" ({} stale snapshots of an earlier owner skipped)", fold.skipped())
                 : std::string());
  return {};
}

td::Status Service::handleBatch(const std::vector<kafka::Message>& batch, Millis polled_at) {
  for (const auto& msg : batch) {
    probe_.records_in.fetch_add(1);
    td::Result<Input> input = msg.topic == options_.core.topics.registrations()
                                  ? decodeRegistrationRecord(msg.value, msg.partition)
                                  : decodeCompletionRecord(msg.value);
    if (!input) {
      collect(&msg, Effects{DeadLetter{.reason = input.error().message()}});
      continue;
    }
    Effects effects = core_.handle(*input, clock_.now());
    const auto* finished =
        options_.publish_stats ? std::get_if<td::v1::StepFinished>(&*input) : nullptr;
    if (finished != nullptr) {
      const bool dispatched = std::any_of(effects.begin(), effects.end(), [&](const Effect& e) {
        const auto* a = std::get_if<PublishAssignment>(&e);
        return a != nullptr && a->record.has_assigned() &&
               a->record.assigned().peer_id() == finished->peer_id();
      });
      if (dispatched) dispatch_started_.push_back(polled_at);
    }
    collect(&msg, std::move(effects));
  }
  probe_.batches.fetch_add(1);
  // Completions flow: more are likely soon (docs/performance.md, "Hot and cold fetching").
  if (std::any_of(batch.begin(), batch.end(), [&](const kafka::Message& m) {
        return m.topic == options_.core.topics.completions();
      })) {
    port_->heat();
  }
  // This batch's offsets join those of a cycle that waits, if one does (offsets only grow).
  for (const auto& msg : batch) {
    auto& offset = deferred_offsets_[{msg.topic, msg.partition}];
    offset = std::max(offset, msg.offset + 1);
    if (msg.topic == options_.core.topics.registrations()) {
      auto& handled = handled_next_[msg.partition];
      handled = std::max(handled, msg.offset + 1);
    }
  }
  if (quietCycle()) {
    const Millis now = clock_.now().mono;
    if (!deferred_until_) deferred_until_ = now + options_.quiet_cycle_wait;
    if (now < *deferred_until_) return {};   // written with the next input, or when it is due
  }
  return writeDeferredCycle();
}

bool Service::quietCycle() const {
  // Not with exactly_once: there a cycle written in a rebalance callback would have to send
  // offsets to a transaction from inside the callback.
  if (options_.exactly_once || options_.quiet_cycle_wait <= Millis(0) || !dead_letters_.empty()) {
    return false;
  }
  return std::none_of(pending_.begin(), pending_.end(), [](const Effect& e) {
    return std::holds_alternative<PublishJoin>(e) || std::holds_alternative<PublishAssignment>(e);
  });
}

td::Status Service::writeDeferredCycle() {
  std::vector<kafka::TopicPartitionOffset> offsets;
  offsets.reserve(deferred_offsets_.size());
  for (const auto& [tp, offset] : deferred_offsets_) {
    offsets.push_back({tp.first, tp.second, offset});
  }
  deferred_offsets_.clear();
  deferred_until_.reset();
  return writeCycle(offsets);
}

void Service::trimHeap() {
  const auto trimmed = heap_trimmer_.maybeTrim(clock_.now().mono);
  if (!trimmed) return;
  log_->debug("gave freed heap back: resident {} -> {} bytes", trimmed->resident_before,
              trimmed->resident_after);
}

void Service::deliverFlowAnswers() {
  for (const auto& answer : port_->flowAnswers()) {
    if (!owned_.contains(answer.partition)) continue;   // moved away meanwhile
    const std::string topic =
        fmt::format("{}[{}]", options_.core.topics.registrations(), answer.partition);
    if (!answer.error.empty()) {
      probe_.flow_probes_failed.fetch_add(1);
      log_->debug("{} is quiet and its leader did not answer: {}", topic, answer.error);
      continue;
    }
    std::int64_t next = answer.committed;
    if (auto it = handled_next_.find(answer.partition); it != handled_next_.end()) {
      next = std::max(next, it->second);
    }
    if (next < answer.high && answer.low < answer.high) {
      // Records to read: reading them shows the flow (or a later probe will).
      probe_.flow_probes_behind.fetch_add(1);
      log_->debug("{} is quiet: handled up to {}, its leader has up to {}", topic, next,
                  answer.high);
      continue;
    }
    probe_.flow_probes_caught_up.fetch_add(1);
    collect(nullptr,
            core_.handle(PartitionCaughtUp{.partition = answer.partition}, clock_.now()));
  }
}

void Service::collect(const kafka::Message* source, Effects effects) {
  for (auto& effect : effects) {
    if (const auto* probe = std::get_if<ProbeFlow>(&effect)) {
      port_->askFlow(probe->partition);
      continue;
    }
    if (auto* stats = std::get_if<PublishStepStats>(&effect)) {
      stats_out_[stats->key] = std::move(stats->stats);
      continue;
    }
    const auto* dead = std::get_if<DeadLetter>(&effect);
    if (dead == nullptr) {
      pending_.push_back(std::move(effect));
      continue;
    }
    probe_.dead_letters.fetch_add(1);
    td::v1::DeadLetter record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    record.set_reason(dead->reason);
    record.set_coordinator_id(options_.core.coordinator_id);
    record.set_timestamp_ms(clock_.now().wall.count());
    if (source != nullptr) {
      record.set_source_topic(source->topic);
      record.set_source_partition(source->partition);
      record.set_source_offset(source->offset);
      record.set_key(source->key.substr(0, protocol::kMaxDeadLetterValueBytes));
      record.set_value(source->value.substr(0, protocol::kMaxDeadLetterValueBytes));
      record.set_value_truncated(source->value.size() > protocol::kMaxDeadLetterValueBytes);
      record.set_value_size(source->value.size());
      log_->warn("dead letter {}[{}]@{}: {}", source->topic, source->partition, source->offset,
                 dead->reason);
    } else {
      log_->warn("dead letter: {}", dead->reason);
    }
    dead_letters_.push_back({source != nullptr ? source->key : "", record.SerializeAsString()});
  }
}

void Service::writeSnapshots() {
  const Instant now = clock_.now();
  const auto& topic = options_.core.topics.state();
  // Each output record is serialized once, here: its bytes go into its group's outbox and,
  // after the snapshot is acknowledged, to its own topic (produceOutput()).
  encoded_.resize(pending_.size());
  // Groups in the order this cycle first touched them, each with its output as the outbox (in
  // wire form).
  std::vector<std::string> order;
  std::unordered_map<std::string, std::string> outboxes;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const Effect& effect = pending_[i];
    const std::string* group_id = groupOf(effect);
    if (group_id == nullptr) continue;
    auto [it, inserted] = outboxes.try_emplace(*group_id);
    if (inserted) order.push_back(*group_id);
    std::string& bytes = encoded_[i];
    if (const auto* e = std::get_if<PublishEvent>(&effect)) {
      if (bytes.empty()) bytes = e->event.SerializeAsString();
      appendOutboxEvent(bytes, &it->second);
    } else if (const auto* a = std::get_if<PublishAssignment>(&effect)) {
      if (bytes.empty()) bytes = a->record.SerializeAsString();
      appendOutboxAssignment(bytes, &it->second);
    }
  }
  for (const auto& group_id : order) {
    auto value = core_.encodeState(group_id, now, outboxes.at(group_id));
    if (!value) continue;   // forgotten in this cycle: its forgotten-group record follows
    if (value->size() > kMaxStateRecordBytes) {
      std::string assignments_only;
      for (std::size_t i = 0; i < pending_.size(); ++i) {
        const auto* a = std::get_if<PublishAssignment>(&pending_[i]);
        if (a != nullptr && a->group_id == group_id) {
          appendOutboxAssignment(encoded_[i], &assignments_only);
        }
      }
      value = core_.encodeState(group_id, now, assignments_only);
      log_->warn("group {}: snapshot over {} KiB; its outbox keeps assignments only", group_id,
                 kMaxStateRecordBytes / 1024);
    }
    probe_.snapshots.fetch_add(1);
    produce(topic, *core_.partitionOf(group_id), group_id, *value);
  }
  for (auto& forgotten : core_.takeForgotten()) {
    td::v1::StateRecord record;
    record.set_protocol_version(td::v1::PROTOCOL_VERSION_1);
    const std::string group_id = forgotten.group_id();
    const std::int32_t partition = forgotten.partition();
    forgetAssignTopic(group_id);   // no more output to it; its last was acknowledged
    port_->retireAssignTopic(group_id, now.mono);
    *record.mutable_forgotten() = std::move(forgotten);
    produce(topic, partition, group_id, record.SerializeAsString());
  }
  for (const auto& [group_id, partition] : core_.takeExpired()) {
    produce(topic, partition, group_id, "");   // null: compaction deletes the key
  }
}

td::Status Service::writeCycle(const std::vector<kafka::TopicPartitionOffset>& offsets) {
  if (options_.exactly_once) return writeTransaction(offsets);
  // 1. Durable state first (with the output as each group's outbox; also the records of
  //    groups forgotten, or whose refusals ended, in a cycle without output).
  writeSnapshots();
  TD_RETURN_IF_ERROR(awaitAcknowledgements());
  if (rejoin_needed_) return {};   // nothing more of this cycle: the rejoin replays it
  // 2. The output.
  if (!pending_.empty() || !dead_letters_.empty()) {
    ensureAssignTopics();
    produceOutput();
    TD_RETURN_IF_ERROR(awaitAcknowledgements());
    if (rejoin_needed_) return {};
  }
  observeDispatch();
  // Duration history: advisory, so produced only now and not waited for (the next cycle's
  // flush, or the final one, delivers it).
  produceStepStats();
  // 3. Only now is the input done with (committed within 200 ms by librdkafka's timer).
  if (offsets.empty()) return {};
  auto stored = port_->storeOffsets(offsets);
  if (!stored) log_->warn("storing offsets failed: {}", stored.error().message());
  return {};
}

td::Status Service::writeTransaction(const std::vector<kafka::TopicPartitionOffset>& offsets) {
  const auto timeout = std::chrono::seconds(60);
  if (rejoin_needed_) {   // this state is dropped at the rejoin: write nothing of it
    dropCycle();
    return {};
  }
  // The transaction begins with the cycle's first record (produce()); a cycle with neither
  // output nor input (most ticks) costs nothing.
  writeSnapshots();
  ensureAssignTopics();
  produceOutput();
  produceStepStats();
  if (!in_transaction_ && offsets.empty()) {
    if (delivery_failures_.load() == 0) return {};
    return makeError(td::Errc::kUnavailable, "a transaction could not begin");
  }
  if (!in_transaction_) TD_RETURN_IF_ERROR(port_->beginTransaction());
  in_transaction_ = false;
  // Every transaction carries offsets, even a cycle with no input (a tick's retry or lease):
  // the batch's, and the position of every other assigned partition. The group coordinator
  // checks the consumer group's generation when it takes them, so a zombie (a coordinator
  // that stalled past its session timeout and lost its partitions) cannot commit a cycle:
  // its transaction aborts and read_committed readers (workers, td-audit, the next owner)
  // never see its records.
  auto fenced = offsets;
  for (auto& position : port_->positions()) {
    const bool in_batch = std::any_of(fenced.begin(), fenced.end(), [&](const auto& o) {
      return o.topic == position.topic && o.partition == position.partition;
    });
    if (!in_batch) fenced.push_back(std::move(position));
  }
  auto status = port_->sendOffsetsToTransaction(fenced, timeout);
  if (status) status = port_->commitTransaction(timeout);
  if (!status) {
    // Nothing of this cycle is visible, but the core applied its input. A transaction that
    // can be aborted (a rebalance changed the group's generation under it, a timeout) is
    // aborted and the coordinator joins the group again (run(): rejoin()); a fatal error
    // (fenced) stops it. Either way the input is replayed from the committed offsets.
    log_->error("transaction failed: {}; aborting", status.error().message());
    if (failedTransaction(status.error())) return {};
    return status;
  }
  if (delivery_failures_.load() != 0) {
    return makeError(td::Errc::kUnavailable, "output records could not be delivered");
  }
  observeDispatch();
  return {};
}

void Service::ensureAssignTopics() {
  if (!options_.assign_topics.create) return;
  std::vector<std::string> groups;
  for (const auto& effect : pending_) {
    if (const auto* a = std::get_if<PublishAssignment>(&effect)) groups.push_back(a->group_id);
  }
  port_->ensureAssignTopics(groups);
}

void Service::observeDispatch() {
  if (dispatch_started_.empty()) return;
  const Millis now = clock_.now().mono;
  probe_.updateStats([&](ProbeStats& stats) {
    for (Millis started : dispatch_started_) {
      stats.dispatch.observe(std::chrono::duration<double>(now - started).count());
    }
  });
  dispatch_started_.clear();
}

void Service::publishStats() {
  const Millis now = clock_.now().mono;
  std::optional<std::vector<Port::PartitionLag>> lag;
  if (now >= next_slow_stats_) {
    next_slow_stats_ = now + Millis(1000);
    lag = port_->lag();
    // Output acknowledged within the last second shows the broker answers; only a quiet
    // coordinator pays for a metadata round trip (the cheapest request that shows it).
    if (now - acknowledged_at_ > Millis(1000)) {
      auto count = port_->partitionCount(options_.core.topics.registrations(), Millis(1000));
      probe_.broker_reachable.store(count.has_value());
      turned();
    }
  }
  probe_.updateStats([&](ProbeStats& stats) {
    stats.census = core_.census();
    if (lag) stats.lag = std::move(*lag);
  });
}

void Service::produceOutput() {
  const auto& topics = options_.core.topics;
  // Bytes writeSnapshots() already made (empty: not made; exactly_once writes everything in one
  // transaction, but through writeSnapshots() too).
  auto bytesOf = [this](std::size_t i, const auto& message) {
    return i < encoded_.size() && !encoded_[i].empty() ? std::move(encoded_[i])
                                                       : message.SerializeAsString();
  };
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const Effect& effect = pending_[i];
    if (const auto* join = std::get_if<PublishJoin>(&effect)) {
      produce(topics.joins(), join->partition, join->key, join->record.SerializeAsString());
      if (join->record.has_rejected()) {
        log_->warn("rejected registration peer={} reason={}", join->record.rejected().peer_id(),
                   join->record.rejected().reason());
      }
    } else if (const auto* assignment = std::get_if<PublishAssignment>(&effect)) {
      produceAssignment(*assignment, bytesOf(i, assignment->record));
    } else if (const auto* event = std::get_if<PublishEvent>(&effect)) {
      // Group-level transitions at info, step-level ones at debug (docs/operations.md, "Logs"):
      // one info line per step event cost about 20 % of w1_g1000's throughput.
      const auto level = eventLogLevel(event->event);
      if (log_->should_log(level)) {
        log_->log(level, "group={} seq={} {}", event->event.group_id(), event->event.sequence(),
                  protocol::describe(event->event));
      }
      produce(topics.events(), -1, event->event.group_id(), bytesOf(i, event->event));
    }
  }
  for (const auto& dead : dead_letters_) produce(topics.dlq(), -1, dead.key, dead.value);
  pending_.clear();
  encoded_.clear();
  dead_letters_.clear();
  publishAssignProbe();
}

Port::Delivery Service::tracked(const std::string& topic, Port::Delivery on_delivery) {
  return [this, topic, on_delivery = std::move(on_delivery)](
             const td::Status& result, std::int32_t p, std::int64_t offset) {
    if (!result) {
      delivery_failures_.fetch_add(1);
      last_delivery_error_ = result.error();
      log_->error("delivery to {} failed: {}", topic, result.error().message());
    }
    if (on_delivery) on_delivery(result, p, offset);
  };
}

void Service::produceFailed(const std::string& topic, const td::Error& error) {
  delivery_failures_.fetch_add(1);
  last_delivery_error_ = error;
  log_->error("produce to {} failed: {}", topic, error.message());
}

void Service::produce(const std::string& topic, std::int32_t partition, const std::string& key,
                      const std::string& value, Port::Delivery on_delivery) {
  if (rejoin_needed_) return;   // the state it comes from is dropped at the rejoin
  if (options_.exactly_once && !in_transaction_) {
    auto begun = port_->beginTransaction();
    if (!begun) {
      produceFailed(topic, begun.error());
      return;
    }
    in_transaction_ = true;
  }
  probe_.records_out.fetch_add(1);
  auto status = port_->produce(topic, partition, key, value, tracked(topic, std::move(on_delivery)));
  if (!status) produceFailed(topic, status.error());
}

void Service::produceAssignment(const PublishAssignment& assignment, const std::string& bytes) {
  // A step handed out may be reported done soon.
  port_->heat();
  const std::string topic = options_.core.topics.assign(assignment.group_id);
  if (options_.exactly_once) {   // inside the cycle's transaction
    produce(topic, 0, assignment.group_id, bytes);
    return;
  }
  probe_.records_out.fetch_add(1);
  auto status = port_->produceAssignment(topic, assignment.group_id, bytes, tracked(topic, {}));
  if (!status) produceFailed(topic, status.error());
}

void Service::forgetAssignTopic(const std::string& group_id) {
  port_->forgetAssignTopic(options_.core.topics.assign(group_id));
  publishAssignProbe();
}

void Service::publishAssignProbe() {
  if (options_.exactly_once) return;   // no td.assign shards
  const auto [open, closed] = port_->assignProducers();
  probe_.assign_producers_open.store(open);
  probe_.assign_producers_closed.store(closed);
}

td::Status Service::awaitAcknowledgements() {
  const int outstanding = port_->outstanding();
  if (outstanding == 0 && delivery_failures_.load() == 0) return {};
  while (true) {
    auto flushed = port_->flush(std::chrono::seconds(5));
    turned();   // waiting out an outage is the loop doing its job, not a hang
    probe_.broker_reachable.store(flushed.has_value());
    if (flushed) {
      acknowledged_at_ = clock_.now().mono;
      break;
    }
    if (stopping_.load()) return flushed;
    // Once, then every 30 s while the outage lasts.
    if (const Millis now = clock_.now().mono; now >= next_wait_log_) {
      log_->warn("waiting for the broker at {} to acknowledge output: {}",
                 options_.bootstrap_servers, flushed.error().message());
      next_wait_log_ = now + Millis(30000);
    }
  }
  next_wait_log_ = Millis(0);
  if (auto failures = delivery_failures_.load(); failures != 0) {
    // Something this cycle decided was not written: nothing more of it is, and its input is
    // not committed. With its own producers failed for good (a fatal error such as an
    // idempotence sequence desynchronisation after a leader change) or records timed out,
    // the coordinator makes new producers and rejoins, which replays the input from the
    // committed offsets onto groups restored from td.state, as a restart would. A refusal
    // (an ACL) cannot be cured that way: it stops.
    const std::string what =
        fmt::format("{} output records could not be delivered{}", failures,
                    last_delivery_error_ ? " (" + last_delivery_error_->message() + ")" : "");
    if (!options_.exactly_once && last_delivery_error_ &&
        !kafka::isAccessDenied(last_delivery_error_->code())) {
      rejoin_needed_ = true;
      renew_producers_ = true;
      rejoin_reason_ = what;
      dropCycle();
      return {};
    }
    return makeError(td::Errc::kUnavailable, what);
  }
  return {};
}

}  // namespace td::coordinator
