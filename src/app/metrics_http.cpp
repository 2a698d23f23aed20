#include "app/metrics_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "app/metrics.h"
#include "common/log.h"
#include "reactor/reactor.h"

namespace nvemu::app {
namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(10);

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
  }
  return "Error";
}

}  // namespace

struct MetricsHttp::Conn {
  std::string in, out;
  bool responding = false;  // a reply is being gathered or sent: stop reading
  // After an error reply to a request not read whole: closing with unread
  // data would reset the connection before the client reads the reply, so
  // the write side is shut and the rest read and dropped (bounded by the
  // idle timer).
  bool draining = false;
  Reactor::TimerId timer = 0;
};

MetricsHttp::MetricsHttp(Reactor& reactor) : reactor_(reactor) {}
MetricsHttp::~MetricsHttp() {
  close();
}

std::string MetricsHttp::listen(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return "expected IP:PORT, e.g. 127.0.0.1:9464";
  std::string host = addr.substr(0, colon), port_s = addr.substr(colon + 1);
  char* end = nullptr;
  unsigned long port = std::strtoul(port_s.c_str(), &end, 10);
  if (port_s.empty() || *end || port == 0 || port > 65535)
    return fmt::format("port '{}' must be 1..65535, e.g. 127.0.0.1:9464", port_s);
  sockaddr_storage ss{};
  socklen_t len;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6->sin6_addr) != 1)
      return fmt::format("'{}' is not an IPv6 address", host);
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1)
      return fmt::format("'{}' is not an IPv4 address (use [::1]:PORT for IPv6)", host);
    len = sizeof *a4;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fmt::format("socket: {}", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) {
    std::string why = fmt::format(
        "cannot listen: {}{}", strerror(errno),
        errno == EADDRINUSE ? " (another process has the port: nvemu-doctor names it; pick "
                              "another port)"
                            : "");
    ::close(fd);
    return why;
  }
  listen_fd_ = fd;
  reactor_.add_fd(fd, EPOLLIN, [this](uint32_t) { accept_all(); });
  return "";
}

void MetricsHttp::close() {
  *alive_ = false;
  while (!conns_.empty()) drop(conns_.begin()->first);
  if (listen_fd_ >= 0) {
    reactor_.remove_fd(listen_fd_);
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void MetricsHttp::accept_all() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error: the next event retries
    auto conn = std::make_unique<Conn>();
    std::weak_ptr<bool> alive = alive_;
    conn->timer = reactor_.add_timer(kIdleTimeout, [this, fd, alive] {
      auto a = alive.lock();
      if (!a || !*a) return;
      if (auto it = conns_.find(fd); it != conns_.end()) {
        it->second->timer = 0;
        drop(fd);
      }
    });
    conns_[fd] = std::move(conn);
    reactor_.add_fd(fd, EPOLLIN | EPOLLRDHUP, [this, fd](uint32_t ev) { on_conn(fd, ev); });
  }
}

void MetricsHttp::on_conn(int fd, uint32_t events) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Conn& c = *it->second;
  if (events & EPOLLOUT) {
    flush(fd);
    return;
  }
  if (c.draining) {
    char sink[4096];
    ssize_t n;
    while ((n = recv(fd, sink, sizeof sink, 0)) > 0) {
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) drop(fd);
    return;
  }
  if (c.responding) return;
  char buf[4096];
  bool peer_closed = false;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      if (c.in.size() > kMaxRequest) {
        respond(fd, 431, "text/plain", "request larger than 8192 bytes\n");
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // A client may shut its side after the request and still read the reply.
    peer_closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    break;
  }
  if (c.in.find("\r\n\r\n") == std::string::npos && c.in.find("\n\n") == std::string::npos) {
    if (peer_closed) drop(fd);
    return;  // headers not complete yet
  }
  std::string line = c.in.substr(0, c.in.find_first_of("\r\n"));
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1 || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    respond(fd, 400, "text/plain", "malformed request line\n");
    return;
  }
  std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string path = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") {
    respond(fd, 405, "text/plain", "only GET /metrics is served\n");
    return;
  }
  if (path != "/metrics") {
    respond(fd, 404, "text/plain", "not found; metrics are at /metrics\n");
    return;
  }
  c.responding = true;
  // Nothing more is read: stop EPOLLIN/RDHUP from waking the loop meanwhile.
  reactor_.modify_fd(fd, 0);
  bool head = method == "HEAD";
  std::weak_ptr<bool> alive = alive_;
  collect_metrics([this, fd, head, alive](std::string text) {
    auto a = alive.lock();
    if (!a || !*a || !conns_.count(fd)) return;
    if (head) {
      respond(fd, 200, "text/plain; version=0.0.4; charset=utf-8", "");
      return;
    }
    respond(fd, 200, "text/plain; version=0.0.4; charset=utf-8", text);
  });
}

void MetricsHttp::respond(int fd, int status, const std::string& type, const std::string& body) {
  Conn& c = *conns_.at(fd);
  c.responding = true;
  c.draining = status != 200;
  c.out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
      status, reason(status), type, body.size(), body);
  flush(fd);
}

void MetricsHttp::flush(int fd) {
  Conn& c = *conns_.at(fd);
  while (!c.out.empty()) {
    ssize_t n = send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      reactor_.modify_fd(fd, EPOLLOUT | EPOLLRDHUP);
      return;
    }
    break;  // the client went away
  }
  if (c.out.empty() && c.draining) {
    shutdown(fd, SHUT_WR);
    reactor_.modify_fd(fd, EPOLLIN | EPOLLRDHUP);
    return;
  }
  drop(fd);
}

void MetricsHttp::drop(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  if (it->second->timer) reactor_.cancel_timer(it->second->timer);
  reactor_.remove_fd(fd);
  ::close(fd);
  conns_.erase(it);
}

}  // namespace nvemu::app
