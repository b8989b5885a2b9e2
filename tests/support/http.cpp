#include "tests/support/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <regex>

namespace td::testing {

HttpReply httpGet(int port, const std::string& path) {
  HttpReply reply;
  if (port <= 0) return reply;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return reply;
  }
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return reply;
  }
  std::string raw;
  char buf[8192];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) raw.append(buf, n);
  ::close(fd);
  std::smatch m;
  if (!std::regex_search(raw, m, std::regex("^HTTP/1\\.[01] (\\d{3})"))) return reply;
  reply.status = std::stoi(m[1]);
  if (auto end = raw.find("\r\n\r\n"); end != std::string::npos) reply.body = raw.substr(end + 4);
  return reply;
}

std::optional<double> sampleOf(const std::string& page, const std::string& series) {
  std::size_t at = 0;
  while ((at = page.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || page[at - 1] == '\n') {
      const auto start = at + series.size() + 1;
      return std::stod(page.substr(start, page.find('\n', start) - start));
    }
    at += series.size();
  }
  return std::nullopt;
}

std::optional<int> loggedMetricsPort(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("metrics on http://\\S+:(\\d+)/metrics"))) {
    return std::nullopt;
  }
  return std::stoi(m[1]);
}

}  // namespace td::testing
