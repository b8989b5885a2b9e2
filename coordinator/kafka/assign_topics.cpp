#include "coordinator/kafka/assign_topics.h"

#include <fmt/format.h>

namespace td::coordinator {

AssignTopics::AssignTopics(const AssignTopicOptions& options, protocol::Topics topics,
                           AssignTopicCounters& counters)
    : options_(options),
      topics_(std::move(topics)),
      counters_(counters),
      log_(td::log::get("coordinator")) {}

td::Result<std::unique_ptr<AssignTopics>> AssignTopics::create(const AssignTopicOptions& options,
                                                               const kafka::Properties& client,
                                                               protocol::Topics topics,
                                                               AssignTopicCounters& counters) {
  std::unique_ptr<AssignTopics> self(new AssignTopics(options, std::move(topics), counters));
  kafka::Properties props = client;
  props.insert(props.end(), options.admin_kafka.begin(), options.admin_kafka.end());
  auto admin = kafka::Admin::create(props);
  if (!admin) {
    return makeError(admin.error().code(), "admin client: " + admin.error().message());
  }
  self->admin_ = std::move(*admin);
  return self;
}

void AssignTopics::ensure(const std::vector<std::string>& group_ids) {
  std::vector<kafka::NewTopic> wanted;
  std::vector<std::string> wanted_groups;
  std::unordered_set<std::string> asked;
  for (const auto& group_id : group_ids) {
    if (attempted_.contains(group_id) || !asked.insert(group_id).second) continue;
    wanted_groups.push_back(group_id);
    wanted.push_back({.name = topics_.assign(group_id),
                      .partitions = options_.partitions,
                      .replication = options_.replication,
                      .config = options_.config});
  }
  if (wanted.empty()) return;
  const auto outcomes = admin_->createTopics(wanted, options_.timeout);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const auto& outcome = outcomes[i];
    attempted_.insert(wanted_groups[i]);   // once per group: see ensure()'s comment
    if (outcome.status) {
      counters_.created.fetch_add(1);
      continue;
    }
    counters_.create_failures.fetch_add(1);
    const bool timed_out = outcome.status.error().code() == kafka::Errc::kTimedOut;
    log_->error("{}{}; producing to it anyway (it exists only if the cluster auto-creates "
                "topics)",
                outcome.status.error().message(),
                timed_out ? " (the broker may lack the Admin API, as the embedded broker does: "
                            "run with --assign-topics auto there)"
                          : "");
  }
}

void AssignTopics::retire(const std::string& group_id, Millis now) {
  forget(group_id);
  due_.emplace(now, Deletion{topics_.assign(group_id), 0});
  counters_.deletes_pending.fetch_add(1);
}

void AssignTopics::poll(Millis now) {
  for (const auto& outcome : admin_->takeDeleted()) {
    auto it = in_flight_.find(outcome.topic);
    if (it == in_flight_.end()) continue;
    const int attempts = it->second;
    in_flight_.erase(it);
    if (outcome.status) {
      counters_.deleted.fetch_add(1);
      counters_.deletes_pending.fetch_sub(1);
      log_->debug("deleted {}", outcome.topic);
      continue;
    }
    counters_.delete_failures.fetch_add(1);
    if (attempts >= options_.delete_attempts) {
      counters_.deletes_pending.fetch_sub(1);
      log_->error("{}; gave up after {} attempts: delete it by hand",
                  outcome.status.error().message(), attempts);
      continue;
    }
    log_->warn("{}; trying again in {} ms (attempt {} of {})", outcome.status.error().message(),
               options_.retry_backoff.count(), attempts, options_.delete_attempts);
    due_.emplace(now + options_.retry_backoff, Deletion{outcome.topic, attempts});
  }
  std::vector<std::string> batch;
  while (!due_.empty() && due_.begin()->first <= now && batch.size() < kDeleteBatch) {
    Deletion deletion = std::move(due_.begin()->second);
    due_.erase(due_.begin());
    if (in_flight_.contains(deletion.topic)) {   // retired twice: one request is enough
      counters_.deletes_pending.fetch_sub(1);
      continue;
    }
    in_flight_[deletion.topic] = deletion.attempts + 1;
    batch.push_back(std::move(deletion.topic));
  }
  admin_->deleteTopics(batch, options_.timeout);
}

}  // namespace td::coordinator
