#include "coordinator/kafka/metrics_server.h"

#include <CivetServer.h>
#include <fmt/format.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <charconv>
#include <limits>
#include <vector>

namespace td::coordinator {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

MetricFamily& family(std::vector<MetricFamily>& out, std::string name, std::string help,
                     MetricType type) {
  out.push_back(MetricFamily{.name = std::move(name), .help = std::move(help), .type = type});
  return out.back();
}

void sample(MetricFamily& f, double value, Labels labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) m.counter.value = value;
  if (f.type == MetricType::Gauge) m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

void counter(std::vector<MetricFamily>& out, std::string name, std::string help, double value) {
  sample(family(out, std::move(name), std::move(help), MetricType::Counter), value);
}

// Everything the probe holds, as metric families (docs/operations.md lists them).
std::vector<MetricFamily> collect(const ServiceProbe& probe, bool ready) {
  const ProbeStats stats = probe.stats();
  const Census& c = stats.census;
  std::vector<MetricFamily> out;
  auto& groups = family(out, "td_coordinator_groups",
                        "Groups this coordinator holds, by state (finished ones until forgotten)",
                        MetricType::Gauge);
  sample(groups, static_cast<double>(c.groups_running), {{"state", "open"}});
  sample(groups, static_cast<double>(c.groups_completed), {{"state", "completed"}});
  sample(groups, static_cast<double>(c.groups_failed), {{"state", "failed"}});
  sample(groups, static_cast<double>(c.groups_abandoned), {{"state", "abandoned"}});
  sample(groups, static_cast<double>(c.groups_cancelled), {{"state", "cancelled"}});
  auto& steps = family(out, "td_coordinator_steps", "Steps of the groups held, by state",
                       MetricType::Gauge);
  sample(steps, static_cast<double>(c.steps_waiting), {{"state", "waiting"}});
  sample(steps, static_cast<double>(c.steps_queued), {{"state", "queued"}});
  sample(steps, static_cast<double>(c.steps_running), {{"state", "running"}});
  sample(steps, static_cast<double>(c.steps_succeeded), {{"state", "succeeded"}});
  sample(steps, static_cast<double>(c.steps_failed), {{"state", "failed"}});
  counter(out, "td_coordinator_groups_created_total",
          "Groups founded by a registration on this coordinator",
          static_cast<double>(c.groups_created_total));
  auto& finished = family(out, "td_coordinator_groups_finished_total",
                          "Groups that finished on this coordinator, by outcome",
                          MetricType::Counter);
  sample(finished, static_cast<double>(c.groups_completed_total), {{"outcome", "completed"}});
  sample(finished, static_cast<double>(c.groups_failed_total), {{"outcome", "failed"}});
  counter(out, "td_coordinator_groups_abandoned_total",
          "Groups ended as abandoned: no member for --abandoned-group-timeout",
          static_cast<double>(c.groups_abandoned_total));
  counter(out, "td_coordinator_groups_cancelled_total",
          "Groups cancelled by an operator (td-ctl cancel) on this coordinator",
          static_cast<double>(c.groups_cancelled_total));
  counter(out, "td_coordinator_steps_assigned_total", "Step attempts handed out to peers",
          static_cast<double>(c.steps_assigned_total));
  auto& retries = family(out, "td_coordinator_step_retries_total",
                         "Steps queued again after an attempt, by why the attempt ended",
                         MetricType::Counter);
  for (std::size_t i = 0; i < kRetryReasonCount; ++i) {
    sample(retries, static_cast<double>(c.retries_total[i]),
           {{"reason", std::string(retryReasonName(static_cast<RetryReason>(i)))}});
  }
  counter(out, "td_coordinator_peers_lost_total", "Peers declared lost (missed their lease)",
          static_cast<double>(c.peers_lost_total));
  auto& speculative = family(out, "td_coordinator_speculative_attempts_total",
                             "Speculative attempts of straggling steps, by what became of them: "
                             "handed out, won the race, lost it",
                             MetricType::Counter);
  sample(speculative, static_cast<double>(c.speculative_started_total), {{"result", "started"}});
  sample(speculative, static_cast<double>(c.speculative_won_total), {{"result", "won"}});
  sample(speculative, static_cast<double>(c.speculative_lost_total), {{"result", "lost"}});
  auto& universes = family(out, "td_coordinator_universe_runs_total",
                           "Universe runs of completed groups' peers recorded finished, by outcome",
                           MetricType::Counter);
  for (std::size_t i = 0; i < kUniverseOutcomeCount; ++i) {
    sample(universes, static_cast<double>(c.universe_runs_total[i]),
           {{"outcome", std::string(protocol::outcomeName(kUniverseOutcomes[i]))}});
  }

  counter(out, "td_coordinator_dead_letters_total", "Records written to td.dlq",
          static_cast<double>(probe.dead_letters.load()));
  auto& flow = family(out, "td_coordinator_flow_probes_total",
                      "Probes of td.registrations partitions that carried nothing for a quarter "
                      "of a lease while their peers were due to be heard, by answer",
                      MetricType::Counter);
  sample(flow, static_cast<double>(probe.flow_probes_caught_up.load()),
         {{"result", "caught_up"}});
  sample(flow, static_cast<double>(probe.flow_probes_behind.load()), {{"result", "behind"}});
  sample(flow, static_cast<double>(probe.flow_probes_failed.load()), {{"result", "failed"}});
  counter(out, "td_coordinator_records_consumed_total",
          "Input records read from td.registrations and td.completions",
          static_cast<double>(probe.records_in.load()));
  counter(out, "td_coordinator_records_produced_total",
          "Records produced (td.state, td.joins, td.assign.*, td.events, td.dlq)",
          static_cast<double>(probe.records_out.load()));
  auto& cycles = family(out, "td_coordinator_cycles_total",
                        "Cycles run, by what started them (a batch of input, or the timer)",
                        MetricType::Counter);
  sample(cycles, static_cast<double>(probe.batches.load()), {{"trigger", "input"}});
  sample(cycles, static_cast<double>(probe.ticks.load()), {{"trigger", "tick"}});
  counter(out, "td_coordinator_snapshots_total", "Group snapshots written to td.state",
          static_cast<double>(probe.snapshots.load()));
  counter(out, "td_coordinator_partitions_restored_total",
          "Input partitions claimed and restored from td.state",
          static_cast<double>(probe.partitions_restored.load()));
  counter(out, "td_coordinator_groups_restored_total", "Groups restored from td.state",
          static_cast<double>(probe.groups_restored.load()));
  auto& stats_records = family(out, "td_coordinator_step_stats_records_total",
                               "td.step-stats records read, written, and not delivered",
                               MetricType::Counter);
  sample(stats_records, static_cast<double>(probe.step_stats_read.load()), {{"op", "read"}});
  sample(stats_records, static_cast<double>(probe.step_stats_written.load()),
         {{"op", "written"}});
  sample(stats_records, static_cast<double>(probe.step_stats_failures.load()),
         {{"op", "failed"}});
  const auto& assign = probe.assign_topics;
  auto& assign_ops = family(out, "td_coordinator_assign_topics_total",
                            "td.assign topics handled through the Admin API "
                            "(--assign-topics admin), by outcome",
                            MetricType::Counter);
  sample(assign_ops, static_cast<double>(assign.created.load()), {{"op", "created"}});
  sample(assign_ops, static_cast<double>(assign.create_failures.load()),
         {{"op", "create_failed"}});
  sample(assign_ops, static_cast<double>(assign.deleted.load()), {{"op", "deleted"}});
  sample(assign_ops, static_cast<double>(assign.delete_failures.load()),
         {{"op", "delete_failed"}});
  sample(family(out, "td_coordinator_assign_topic_deletes_pending",
                "td.assign topics of forgotten groups not deleted yet", MetricType::Gauge),
         static_cast<double>(assign.deletes_pending.load()));
  auto& rebalances = family(out, "td_coordinator_rebalances_total",
                            "Consumer-group rebalance callbacks, by kind", MetricType::Counter);
  sample(rebalances, static_cast<double>(probe.rebalances_assigned.load()),
         {{"kind", "assigned"}});
  sample(rebalances, static_cast<double>(probe.rebalances_revoked.load()),
         {{"kind", "revoked"}});
  sample(family(out, "td_coordinator_rejoins_total",
                "Consumer-group rejoins: an aborted transaction (--exactly-once), output that "
                "could not be delivered, a partition claimed by another coordinator at once",
                MetricType::Counter),
         static_cast<double>(probe.rejoins.load()));
  sample(family(out, "td_coordinator_partitions_owned",
                "td.registrations partitions this coordinator owns now", MetricType::Gauge),
         static_cast<double>(probe.partitions_owned.load()));
  sample(family(out, "td_coordinator_assign_producers",
                "Producers open now for td.assign topics (shards of up to N groups each)",
                MetricType::Gauge),
         static_cast<double>(probe.assign_producers_open.load()));
  counter(out, "td_coordinator_assign_producers_closed_total",
          "td.assign producers closed once every group they served was gone",
          static_cast<double>(probe.assign_producers_closed.load()));
  auto& lag = family(out, "td_coordinator_consumer_lag_records",
                     "Per input partition: high watermark minus the consumer's position",
                     MetricType::Gauge);
  for (const auto& p : stats.lag) {
    sample(lag, static_cast<double>(p.lag),
           {{"partition", std::to_string(p.partition)}, {"topic", p.topic}});
  }
  auto& dispatch = family(out, "td_coordinator_dispatch_latency_seconds",
                          "From polling a StepFinished to the acknowledgement of the "
                          "StepAssigned it caused for the same peer",
                          MetricType::Histogram);
  ClientMetric h;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i) {
    cumulative += stats.dispatch.buckets[i];
    h.histogram.bucket.push_back({cumulative, LatencyHistogram::kBounds[i]});
  }
  h.histogram.bucket.push_back({stats.dispatch.count, std::numeric_limits<double>::infinity()});
  h.histogram.sample_count = stats.dispatch.count;
  h.histogram.sample_sum = stats.dispatch.sum;
  dispatch.metric.push_back(std::move(h));
  sample(family(out, "td_coordinator_ready", "1 while /readyz answers 200", MetricType::Gauge),
         ready ? 1 : 0);
  return out;
}

void respond(mg_connection* conn, int status, const std::string& content_type,
             const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Service Unavailable", content_type.c_str(),
            body.size());
  mg_write(conn, body.data(), body.size());
}

// civetweb's "listening_ports" form of HOST:PORT: "1.2.3.4:P" or "[v6]:P" pass as they are.
td::Result<std::string> civetPort(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    return makeError(td::Errc::kInvalidArgument,
                     fmt::format("--metrics-listen '{}': expected HOST:PORT", listen));
  }
  int port = -1;
  const char* first = listen.data() + colon + 1;
  const char* last = listen.data() + listen.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port < 0 || port > 65535) {
    return makeError(td::Errc::kInvalidArgument,
                     fmt::format("--metrics-listen '{}': bad port", listen));
  }
  return listen;
}

}  // namespace

struct MetricsServer::Impl {
  const ServiceProbe& probe;
  const Clock& clock;
  Millis stall_after;

  struct Handler : CivetHandler {
    Impl* impl = nullptr;
    enum class Kind { kMetrics, kHealth, kReady } kind = Kind::kMetrics;
    bool handleGet(CivetServer*, mg_connection* conn) override {
      switch (kind) {
        case Kind::kMetrics:
          respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", impl->render());
          break;
        case Kind::kHealth: {
          const bool alive = impl->probe.alive(impl->clock.now().mono, impl->stall_after);
          respond(conn, alive ? 200 : 503, "text/plain", alive ? "ok\n" : "loop stalled\n");
          break;
        }
        case Kind::kReady: {
          const bool ready = impl->ready();
          respond(conn, ready ? 200 : 503, "text/plain", ready ? "ready\n" : impl->whyNot());
          break;
        }
      }
      return true;
    }
  };
  Handler metrics, health, readiness;
  std::unique_ptr<CivetServer> server;   // last: stopped (threads joined) before the handlers go

  bool ready() const { return probe.ready() && probe.alive(clock.now().mono, stall_after); }
  std::string whyNot() const {
    std::string why;
    if (!probe.joined.load()) why += "not joined to the consumer group yet\n";
    if (probe.restoring.load()) why += "restoring assigned partitions\n";
    if (!probe.broker_reachable.load()) why += "broker unreachable\n";
    if (!probe.alive(clock.now().mono, stall_after)) why += "loop stalled\n";
    return why;
  }
  std::string render() const {
    return prometheus::TextSerializer().Serialize(collect(probe, ready()));
  }
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() {
  if (impl_) impl_->server.reset();
}

td::Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& listen,
                                                               const ServiceProbe& probe,
                                                               const Clock& clock,
                                                               Millis stall_after) {
  auto ports = civetPort(listen);
  if (!ports) return td::unexpected(ports.error());
  auto impl = std::unique_ptr<Impl>(new Impl{.probe = probe, .clock = clock,
                                             .stall_after = stall_after});
  impl->metrics.impl = impl->health.impl = impl->readiness.impl = impl.get();
  impl->health.kind = Impl::Handler::Kind::kHealth;
  impl->readiness.kind = Impl::Handler::Kind::kReady;
  // Exceptions stop here: CivetServer throws when it cannot listen.
  try {
    impl->server = std::make_unique<CivetServer>(std::vector<std::string>{
        "listening_ports", *ports, "num_threads", "2", "enable_keep_alive", "no"});
  } catch (const std::exception& e) {
    return makeError(td::Errc::kUnavailable,
                     fmt::format("--metrics-listen {}: cannot listen: {}", listen, e.what()));
  }
  impl->server->addHandler("/metrics", impl->metrics);
  impl->server->addHandler("/healthz", impl->health);
  impl->server->addHandler("/readyz", impl->readiness);
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

td::Status MetricsServer::checkAddress(const std::string& listen) {
  auto ports = civetPort(listen);
  if (!ports) return td::unexpected(ports.error());
  return {};
}

int MetricsServer::port() const {
  auto ports = impl_->server->getListeningPorts();
  return ports.empty() ? -1 : ports.front();
}

std::string MetricsServer::renderForTest() const { return impl_->render(); }

}  // namespace td::coordinator
