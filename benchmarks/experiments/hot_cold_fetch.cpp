// Experiment for issue 16 (not product code, not built by CMake): a ping-pong over a Kafka
// broker where each side reads with a "cold" consumer (fetch.wait.max.ms=W, always fetching)
// and, with MODE hotcold, a "hot" consumer (fetch.wait.max.ms=0) that is sought to the side's
// position and resumed only while a reply is expected (after this side produced), and paused
// otherwise. Records are handed out once, by offset. Reports the round trip's p50/p90/p99, the
// CPU of this process and of the broker process while busy, then while idle.
//
//   g++ -O2 -std=c++20 benchmarks/experiments/hot_cold_fetch.cpp -o /tmp/hot_cold_fetch \
//       -lrdkafka -lpthread
//   build/broker/td-broker --bootstrap-file /tmp/bs &
//   /tmp/hot_cold_fetch "$(cat /tmp/bs)" hotcold 5 0 300 2 "$(pgrep -f td-broker)"
//
// usage: hot_cold_fetch BOOTSTRAP MODE W_MS LINGER_MS ROUNDS IDLE_S [BROKER_PID]
//        MODE = cold | hotcold; NOSEEK=1 resumes the hot consumer without the seek.
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

static rd_kafka_t* make(const std::string& bs, int type, const std::vector<std::pair<std::string, std::string>>& kv) {
  char err[512];
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", bs.c_str(), err, sizeof err);
  for (auto& [k, v] : kv) {
    if (rd_kafka_conf_set(c, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      fprintf(stderr, "%s\n", err);
      exit(2);
    }
  }
  rd_kafka_t* rk = rd_kafka_new((rd_kafka_type_t)type, c, err, sizeof err);
  if (!rk) { fprintf(stderr, "%s\n", err); exit(2); }
  if (type == RD_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(rk);
  return rk;
}

static std::atomic<long> hot_hits{0}, cold_hits{0};
struct Side {
  rd_kafka_t* cold;
  rd_kafka_t* hot = nullptr;
  int cold_fd[2], hot_fd[2];
  std::string topic;
  int64_t next = 0;
  bool hot_on = false;
};

static void assignAt(rd_kafka_t* rk, const std::string& topic, int64_t off) {
  auto* l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic.c_str(), 0)->offset = off;
  rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
}

static void setup(Side& s, const std::string& bs, const std::string& topic, int w, bool hotcold, int64_t start) {
  s.topic = topic;
  s.next = start;
  static int n = 0;
  std::string g = "hc-" + std::to_string(getpid()) + "-" + std::to_string(n++);
  s.cold = make(bs, RD_KAFKA_CONSUMER, {{"group.id", g}, {"fetch.wait.max.ms", std::to_string(w)}, {"enable.auto.commit", "false"}, {"fetch.error.backoff.ms", "10"}});
  pipe(s.cold_fd);
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(s.cold);
  rd_kafka_queue_io_event_enable(q, s.cold_fd[1], "1", 1);
  rd_kafka_queue_destroy(q);
  assignAt(s.cold, topic, start);
  if (hotcold) {
    s.hot = make(bs, RD_KAFKA_CONSUMER, {{"group.id", g + "h"}, {"fetch.wait.max.ms", "0"}, {"enable.auto.commit", "false"}, {"fetch.error.backoff.ms", "10"}});
    pipe(s.hot_fd);
    q = rd_kafka_queue_get_consumer(s.hot);
    rd_kafka_queue_io_event_enable(q, s.hot_fd[1], "1", 1);
    rd_kafka_queue_destroy(q);
    assignAt(s.hot, topic, start);
    auto* l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic.c_str(), 0);
    rd_kafka_pause_partitions(s.hot, l);
    rd_kafka_topic_partition_list_destroy(l);
  }
}

static void hot(Side& s, bool on) {
  if (!s.hot || s.hot_on == on) return;
  s.hot_on = on;
  auto* l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, s.topic.c_str(), 0)->offset = s.next;
  if (on) {
    // Start where this side is, not where the hot reader stopped.
    if (getenv("NOSEEK") == nullptr) {
      rd_kafka_error_t* e = rd_kafka_seek_partitions(s.hot, l, 0);
      if (e) rd_kafka_error_destroy(e);
    }
    rd_kafka_resume_partitions(s.hot, l);
  } else {
    rd_kafka_pause_partitions(s.hot, l);
  }
  rd_kafka_topic_partition_list_destroy(l);
}

// Waits up to `ms` for the next new record; returns its payload (empty on timeout).
static std::string next(Side& s, int ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  while (true) {
    for (rd_kafka_t* rk : {s.cold, s.hot}) {
      if (!rk) continue;
      while (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 0)) {
        std::string out;
        if (!m->err && m->offset >= s.next) {
          s.next = m->offset + 1;
          (rk == s.hot ? hot_hits : cold_hits)++;
          out.assign((const char*)m->payload, m->len);
        }
        rd_kafka_message_destroy(m);
        if (!out.empty()) return out;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return {};
    pollfd fds[2] = {{s.cold_fd[0], POLLIN, 0}, {s.hot ? s.hot_fd[0] : -1, POLLIN, 0}};
    ::poll(fds, 2, (int)std::min<long>(left, 100));
    char buf[64];
    for (auto& f : fds) if (f.fd >= 0 && (f.revents & POLLIN)) (void)!read(f.fd, buf, sizeof buf);
  }
}

static double cpuOf(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "r");
  if (!f) return 0;
  char buf[2048];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  long ut = 0, st = 0;
  int field = 2;
  for (char* tok = strtok(p + 2, " "); tok; tok = strtok(nullptr, " ")) {
    ++field;
    if (field == 14) ut = atol(tok);
    if (field == 15) { st = atol(tok); break; }
  }
  return (ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char** argv) {
  std::string bs = argv[1], mode = argv[2];
  int w = atoi(argv[3]), linger = atoi(argv[4]), rounds = atoi(argv[5]), idle_s = atoi(argv[6]);
  pid_t broker = argc > 7 ? atoi(argv[7]) : 0;
  bool hc = mode == "hotcold";
  std::string tag = std::to_string(getpid());
  std::string ping_t = "hc.ping." + tag, pong_t = "hc.pong." + tag;
  rd_kafka_t* p1 = make(bs, RD_KAFKA_PRODUCER, {{"linger.ms", std::to_string(linger)}});
  rd_kafka_t* p2 = make(bs, RD_KAFKA_PRODUCER, {{"linger.ms", std::to_string(linger)}});
  // create topics by producing one record each
  for (auto* t : {&ping_t, &pong_t}) {
    rd_kafka_producev(p1, RD_KAFKA_V_TOPIC(t->c_str()), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE((void*)"x", 1), RD_KAFKA_V_END);
  }
  rd_kafka_flush(p1, 5000);
  Side a, b;   // a reads pong, b reads ping
  setup(a, bs, pong_t, w, hc, 1);
  setup(b, bs, ping_t, w, hc, 1);
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    auto hot_until = Clock::now();
    while (!stop) {
      if (Clock::now() > hot_until) hot(b, false);
      std::string m = next(b, 20);
      if (m.empty()) continue;
      rd_kafka_producev(p2, RD_KAFKA_V_TOPIC(pong_t.c_str()), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE((void*)m.data(), m.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      rd_kafka_poll(p2, 0);
      hot(b, true);   // a next ping is likely soon
      hot_until = Clock::now() + std::chrono::milliseconds(50);
    }
  });
  // warm up
  std::vector<double> rtt;
  rusage r0;
  getrusage(RUSAGE_SELF, &r0);
  double b0 = broker ? cpuOf(broker) : 0;
  auto t0 = Clock::now();
  for (int i = 0; i < rounds + 50; ++i) {
    std::string payload = "p" + std::to_string(i);
    auto s = Clock::now();
    rd_kafka_producev(p1, RD_KAFKA_V_TOPIC(ping_t.c_str()), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE((void*)payload.data(), payload.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_poll(p1, 0);
    hot(a, true);
    std::string got;
    while (got != payload) {
      got = next(a, 5000);
      if (got.empty()) { fprintf(stderr, "timeout\n"); return 1; }
    }
    hot(a, false);
    if (i >= 50) rtt.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  rusage r1;
  getrusage(RUSAGE_SELF, &r1);
  double b1 = broker ? cpuOf(broker) : 0;
  auto cpu = [](const rusage& r) { return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6; };
  std::sort(rtt.begin(), rtt.end());
  printf("mode=%s W=%d linger=%d rtt p50=%.2f p90=%.2f p99=%.2f ms  busy: clients %.0f%% broker %.0f%% of a core\n", mode.c_str(), w, linger,
         rtt[rtt.size() / 2], rtt[rtt.size() * 9 / 10], rtt[rtt.size() * 99 / 100], 100 * (cpu(r1) - cpu(r0)) / secs, 100 * (b1 - b0) / secs);
  // idle
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  getrusage(RUSAGE_SELF, &r0);
  b0 = broker ? cpuOf(broker) : 0;
  t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(idle_s));
  secs = std::chrono::duration<double>(Clock::now() - t0).count();
  getrusage(RUSAGE_SELF, &r1);
  b1 = broker ? cpuOf(broker) : 0;
  printf("   hits hot=%ld cold=%ld\n", hot_hits.load(), cold_hits.load());
  printf("   idle %ds: clients %.1f%% broker %.1f%% of a core (4 readers)\n", idle_s, 100 * (cpu(r1) - cpu(r0)) / secs, 100 * (b1 - b0) / secs);
  stop = true;
  echo.join();
  fflush(stdout);
  _exit(0);
}
