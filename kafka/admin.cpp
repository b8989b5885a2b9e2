#include "kafka/admin.h"

#include <algorithm>

#include "kafka/internal/rdkafka.h"

namespace td::kafka {

using namespace internal;

namespace {

using AdminOptionsPtr =
    std::unique_ptr<rd_kafka_AdminOptions_t,
                    Deleter<rd_kafka_AdminOptions_t, rd_kafka_AdminOptions_destroy>>;
using EventPtr =
    std::unique_ptr<rd_kafka_event_t, Deleter<rd_kafka_event_t, rd_kafka_event_destroy>>;

struct NewTopicsDeleter {
  std::size_t count = 0;
  void operator()(rd_kafka_NewTopic_t** p) const {
    rd_kafka_NewTopic_destroy_array(p, count);
    delete[] p;
  }
};

// Options for one request: the local request timeout, and how long the controller may take
// to finish the operation on every broker (a little less, so its answer arrives in time).
td::Result<AdminOptionsPtr> adminOptions(rd_kafka_t* rk, rd_kafka_admin_op_t op,
                                         std::chrono::milliseconds timeout, void* opaque) {
  AdminOptionsPtr options(rd_kafka_AdminOptions_new(rk, op));
  char errstr[256] = "";
  const int request_ms = static_cast<int>(std::max<std::int64_t>(timeout.count(), 1));
  const int operation_ms = std::max(request_ms * 3 / 4, 1);
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), request_ms, errstr,
                                                sizeof errstr) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_AdminOptions_set_operation_timeout(options.get(), operation_ms, errstr,
                                                  sizeof errstr) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return td::unexpected(
        td::Error(make_error_code(Errc::kInvalidArg), std::string("admin options: ") + errstr));
  }
  rd_kafka_AdminOptions_set_opaque(options.get(), opaque);
  return options;
}

// The outcome of one topic of a CreateTopics or DeleteTopics result; `benign` is the error
// that means the request's aim already holds (the topic exists / is gone).
td::Status topicStatus(const rd_kafka_topic_result_t* result, rd_kafka_resp_err_t benign,
                       const char* what) {
  const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(result);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == benign) return {};
  const char* message = rd_kafka_topic_result_error_string(result);
  return td::unexpected(td::Error(
      make_error_code(static_cast<Errc>(err)),
      std::string(what) + " " + rd_kafka_topic_result_name(result) + ": " +
          (message != nullptr && *message != '\0' ? message : rd_kafka_err2str(err))));
}

// Outcomes for every topic in `names` from `event`'s per-topic results (or its request-level
// error). Topics missing from the result get a "no answer" error.
std::vector<TopicOutcome> outcomes(const std::vector<std::string>& names,
                                   rd_kafka_event_t* event,
                                   const rd_kafka_topic_result_t** results, std::size_t count,
                                   rd_kafka_resp_err_t benign, const char* what) {
  std::vector<TopicOutcome> out;
  out.reserve(names.size());
  const rd_kafka_resp_err_t request_err = rd_kafka_event_error(event);
  for (const auto& name : names) {
    TopicOutcome outcome{name, {}};
    if (request_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* message = rd_kafka_event_error_string(event);
      outcome.status = td::unexpected(td::Error(
          make_error_code(static_cast<Errc>(request_err)),
          std::string(what) + " " + name + ": " + (message != nullptr ? message : "")));
    } else {
      const auto* it = std::find_if(results, results + count, [&](const auto* r) {
        return name == rd_kafka_topic_result_name(r);
      });
      outcome.status = it == results + count
                           ? td::unexpected(td::Error(make_error_code(Errc::kFail),
                                                       std::string(what) + " " + name +
                                                           ": not in the broker's answer"))
                           : topicStatus(*it, benign, what);
    }
    out.push_back(std::move(outcome));
  }
  return out;
}

}  // namespace

struct Admin::Impl {
  HandlePtr rk;
  QueuePtr deletes;                    // answers of deleteTopics() requests
  std::vector<TopicOutcome> refused;   // deleteTopics() requests that could not be sent
};

Admin::Admin(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Admin::~Admin() {
  // Answers still due are dropped with the queue; their opaques are freed here.
  if (impl_ && impl_->deletes) {
    while (EventPtr event{rd_kafka_queue_poll(impl_->deletes.get(), 0)}) {
      delete static_cast<std::vector<std::string>*>(rd_kafka_event_opaque(event.get()));
    }
  }
}

td::Result<std::unique_ptr<Admin>> Admin::create(const Properties& props) {
  auto impl = std::make_unique<Impl>();
  auto conf = makeConf({}, props, impl.get());
  if (!conf) return td::unexpected(conf.error());
  auto rk = makeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!rk) return td::unexpected(rk.error());
  impl->rk = std::move(*rk);
  impl->deletes.reset(rd_kafka_queue_new(impl->rk.get()));
  return std::unique_ptr<Admin>(new Admin(std::move(impl)));
}

std::vector<TopicOutcome> Admin::createTopics(const std::vector<NewTopic>& topics,
                                              std::chrono::milliseconds timeout) {
  std::vector<std::string> names;
  for (const auto& t : topics) names.push_back(t.name);
  auto fail = [&](const td::Error& error) {
    std::vector<TopicOutcome> out;
    for (const auto& name : names) out.push_back({name, td::unexpected(error)});
    return out;
  };
  if (topics.empty()) return {};
  std::unique_ptr<rd_kafka_NewTopic_t*[], NewTopicsDeleter> array(
      new rd_kafka_NewTopic_t*[topics.size()](), NewTopicsDeleter{0});
  for (const auto& topic : topics) {
    char errstr[256] = "";
    rd_kafka_NewTopic_t* t = rd_kafka_NewTopic_new(topic.name.c_str(), topic.partitions,
                                                   topic.replication, errstr, sizeof errstr);
    if (t == nullptr) {
      return fail(td::Error(make_error_code(Errc::kInvalidArg),
                            "create topic " + topic.name + ": " + errstr));
    }
    array[array.get_deleter().count++] = t;
    for (const auto& [key, value] : topic.config) {
      if (auto err = rd_kafka_NewTopic_set_config(t, key.c_str(), value.c_str()); err) {
        return fail(fromRdKafka(err, "create topic " + topic.name + ": config " + key));
      }
    }
  }
  auto options = adminOptions(impl_->rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout, nullptr);
  if (!options) return fail(options.error());
  QueuePtr queue(rd_kafka_queue_new(impl_->rk.get()));
  rd_kafka_CreateTopics(impl_->rk.get(), array.get(), topics.size(), options->get(),
                        queue.get());
  // librdkafka answers every request by its request timeout; the margin covers its timer.
  EventPtr event{rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 1000)};
  if (!event) {
    return fail(td::Error(make_error_code(Errc::kTimedOut), "CreateTopics: no answer"));
  }
  std::size_t count = 0;
  const rd_kafka_topic_result_t** results = nullptr;
  if (const auto* result = rd_kafka_event_CreateTopics_result(event.get())) {
    results = rd_kafka_CreateTopics_result_topics(result, &count);
  }
  return outcomes(names, event.get(), results, count, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
                  "create topic");
}

void Admin::deleteTopics(const std::vector<std::string>& topics,
                         std::chrono::milliseconds timeout) {
  if (topics.empty()) return;
  auto names = std::make_unique<std::vector<std::string>>(topics);
  std::vector<rd_kafka_DeleteTopic_t*> array;
  array.reserve(topics.size());
  for (const auto& name : topics) array.push_back(rd_kafka_DeleteTopic_new(name.c_str()));
  auto options =
      adminOptions(impl_->rk.get(), RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout, names.get());
  if (options) {
    rd_kafka_DeleteTopics(impl_->rk.get(), array.data(), array.size(), options->get(),
                          impl_->deletes.get());
    deletes_in_flight_ += names->size();
    names.release();  // freed by takeDeleted() (or the destructor) with its answer
  } else {
    for (const auto& name : topics)
      impl_->refused.push_back({name, td::unexpected(options.error())});
  }
  rd_kafka_DeleteTopic_destroy_array(array.data(), array.size());
}

std::vector<TopicOutcome> Admin::takeDeleted() {
  std::vector<TopicOutcome> out = std::move(impl_->refused);
  impl_->refused.clear();
  while (EventPtr event{rd_kafka_queue_poll(impl_->deletes.get(), 0)}) {
    std::unique_ptr<std::vector<std::string>> names(
        static_cast<std::vector<std::string>*>(rd_kafka_event_opaque(event.get())));
    if (!names) continue;
    std::size_t count = 0;
    const rd_kafka_topic_result_t** results = nullptr;
    if (const auto* result = rd_kafka_event_DeleteTopics_result(event.get())) {
      results = rd_kafka_DeleteTopics_result_topics(result, &count);
    }
    auto answered = outcomes(*names, event.get(), results, count,
                             RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, "delete topic");
    deletes_in_flight_ -= std::min(deletes_in_flight_, names->size());
    std::move(answered.begin(), answered.end(), std::back_inserter(out));
  }
  return out;
}

}  // namespace td::kafka
