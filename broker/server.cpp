#include "broker/server.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "common/log.h"

namespace td::broker {

namespace {

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

bool parseInt(const std::string& word, int* out) {
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), *out);
  return ec == std::errc() && end == word.data() + word.size();
}

std::string reply(const td::Status& status) {
  return status ? "ok" : "error: " + status.error().message();
}

struct Client {
  int fd;
  std::string buffer;
};

constexpr std::size_t kMaxLine = 4096;

}  // namespace

std::string executeControl(kafka::EmbeddedBroker& broker, std::string_view line) {
  std::istringstream in{std::string(line)};
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  if (words.empty()) return "error: empty command";
  const std::string& cmd = words[0];
  std::vector<int> numbers;
  auto numeric = [&](std::size_t from, std::size_t count_min, std::size_t count_max) {
    if (words.size() < from + count_min || words.size() > from + count_max) return false;
    numbers.clear();
    for (std::size_t i = from; i < words.size(); ++i) {
      int v = 0;
      if (!parseInt(words[i], &v)) return false;
      numbers.push_back(v);
    }
    return true;
  };
  if (cmd == "ping" && words.size() == 1) return "ok";
  if (cmd == "bootstrap" && words.size() == 1) return "ok " + broker.bootstrapServers();
  if (cmd == "down" && numeric(1, 1, 1)) return reply(broker.setBrokerDown(numbers[0]));
  if (cmd == "up" && numeric(1, 1, 1)) return reply(broker.setBrokerUp(numbers[0]));
  if (cmd == "rtt" && numeric(1, 2, 2)) return reply(broker.setRtt(numbers[0], numbers[1]));
  if (cmd == "errors" && numeric(1, 2, 1000)) {
    broker.pushRequestErrors(numbers[0], std::vector<int>(numbers.begin() + 1, numbers.end()));
    return "ok";
  }
  if (cmd == "leader" && words.size() == 4 && numeric(2, 2, 2)) {
    return reply(broker.setPartitionLeader(words[1], numbers[0], numbers[1]));
  }
  if (cmd == "topic" && words.size() == 3 && numeric(2, 1, 1)) {
    return reply(broker.createTopic(words[1], numbers[0]));
  }
  return "error: unknown or malformed command '" + std::string(line) +
         "' (ping, bootstrap, down ID, up ID, rtt ID MS, errors API_KEY ERR..., "
         "leader TOPIC PARTITION ID, topic NAME PARTITIONS)";
}

td::Status writeFileAtomically(const std::string& path, std::string_view content) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(temp.c_str(), "w");
  if (f == nullptr) return makeError(td::Errc::kIo, errnoText("cannot write " + temp));
  const bool written = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed || std::rename(temp.c_str(), path.c_str()) != 0) {
    auto error = errnoText("cannot write " + path);
    std::remove(temp.c_str());
    return makeError(td::Errc::kIo, error);
  }
  return {};
}

td::Result<int> blockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) {
    return makeError(td::Errc::kInternal, "pthread_sigmask failed");
  }
  int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) return makeError(td::Errc::kIo, errnoText("signalfd"));
  return fd;
}

td::Result<std::unique_ptr<Server>> Server::start(const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server());
  kafka::EmbeddedBroker::Options broker_options;
  broker_options.brokers = options.brokers;
  for (const auto& topic : kTopics) broker_options.topics.emplace_back(topic, options.partitions);
  auto broker = kafka::EmbeddedBroker::start(broker_options);
  if (!broker) return td::unexpected(broker.error());
  server->broker_ = std::move(*broker);

  if (!options.control_path.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (options.control_path.size() >= sizeof addr.sun_path) {
      return makeError(td::Errc::kInvalidArgument,
                       "--control: path too long for a Unix socket: " + options.control_path);
    }
    std::strncpy(addr.sun_path, options.control_path.c_str(), sizeof addr.sun_path - 1);
    std::error_code ec;
    if (std::filesystem::is_socket(options.control_path, ec)) {
      ::unlink(options.control_path.c_str());  // stale socket of an earlier run
    }
    server->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (server->listen_fd_ < 0) return makeError(td::Errc::kIo, errnoText("socket"));
    const mode_t old_mask = ::umask(0077);
    const int bound = ::bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old_mask);
    if (bound != 0 || ::listen(server->listen_fd_, 16) != 0) {
      return makeError(td::Errc::kIo, errnoText("--control " + options.control_path));
    }
    server->control_path_ = options.control_path;
  }
  TD_RETURN_IF_ERROR(
      writeFileAtomically(options.bootstrap_file, server->bootstrapServers() + "\n"));
  return server;
}

Server::~Server() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (!control_path_.empty()) ::unlink(control_path_.c_str());
}

td::Status Server::run(int stop_fd) {
  auto log = td::log::get("broker");
  std::vector<Client> clients;
  while (true) {
    std::vector<pollfd> fds{{stop_fd, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const auto& c : clients) fds.push_back({c.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return makeError(td::Errc::kIo, errnoText("poll"));
    }
    if (fds[0].revents != 0) break;
    if (fds[1].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) clients.push_back({fd, {}});
    }
    // Serve clients (fds[2 + i] is clients[i]); iterate backwards so erasing is safe.
    for (std::size_t i = clients.size(); i-- > 0;) {
      if (fds[2 + i].revents == 0) continue;
      auto& client = clients[i];
      char buf[1024];
      ssize_t n = ::read(client.fd, buf, sizeof buf);
      bool keep = n > 0;
      if (keep) client.buffer.append(buf, static_cast<std::size_t>(n));
      // At end of input, a last line without '\n' still counts (the reply may still go out).
      if (n == 0 && !client.buffer.empty() && client.buffer.back() != '\n') {
        client.buffer.push_back('\n');
        keep = true;
      }
      for (auto eol = client.buffer.find('\n'); keep && eol != std::string::npos;
           eol = client.buffer.find('\n')) {
        std::string line = client.buffer.substr(0, eol);
        client.buffer.erase(0, eol + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::string answer = executeControl(*broker_, line) + "\n";
        log->info("control: {} -> {}", line, answer.substr(0, answer.size() - 1));
        keep = ::send(client.fd, answer.data(), answer.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(answer.size());
      }
      if (client.buffer.size() > kMaxLine || n == 0) keep = false;
      if (!keep) {
        ::close(client.fd);
        clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  }
  for (const auto& c : clients) ::close(c.fd);
  return {};
}

}  // namespace td::broker
