#include "rpc/server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "reactor/reactor.h"
#include "rpc/json_stream.h"
#include "rpc/registry.h"

namespace nvemu::rpc {

namespace {
uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
}  // namespace

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server& server, int fd) : server_(server), fd_(fd) {}
  ~Connection() { ::close(fd_); }

  void on_events(uint32_t events) {
    if (events & EPOLLIN) read_some();
    if (!closing_ && (events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) closing_ = true;
    if (events & EPOLLOUT) flush();
    maybe_finish();
  }

  void send(const nlohmann::json& reply) {
    if (dead_) return;
    // Compact JSON on one line: a reply never contains a raw newline, so a
    // client that reads to '\n' always gets the whole reply.
    out_ += reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out_ += '\n';
    flush();
    maybe_finish();
  }

 private:
  void read_some() {
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        if (in_.empty()) started_ms_ = now_ms();
        received_ += static_cast<size_t>(n);
        in_.append(buf, static_cast<size_t>(n));
        if (!process()) return;
        continue;
      }
      if (n == 0) {
        peer_closed_ = true;
        return;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) peer_closed_ = true;
      return;
    }
  }

  // Returns false once the connection must stop reading.
  bool process() {
    while (!closing_) {
      size_t end = 0;
      auto r = scanner_.scan(in_, &end);
      size_t limit = server_.limits_.max_request_bytes;
      bool whole = r == JsonStreamScanner::Result::kComplete;
      if ((whole && end > limit) ||
          (r == JsonStreamScanner::Result::kNeedMore && in_.size() > limit)) {
        LOG_ERROR("rpc", "request larger than {} bytes; closing the connection", limit);
        fail(kParseError, fmt::format("Parse error: request larger than {} bytes (nvemu-tgt "
                                      "--rpc-max-request-bytes raises the limit)",
                                      limit)
                              .c_str());
        return false;
      }
      if (r == JsonStreamScanner::Result::kNeedMore) return true;
      if (r == JsonStreamScanner::Result::kInvalid) {
        fail(kParseError, "Parse error");
        return false;
      }
      std::string text = in_.substr(0, end);
      in_.erase(0, end);
      // The next request's clock starts with its first byte.
      started_ms_ = now_ms();
      received_ = in_.size();
      nlohmann::json req = nlohmann::json::parse(text, nullptr, false);
      if (req.is_discarded()) {
        fail(kParseError, "Parse error");
        return false;
      }
      handle(req);
    }
    return false;
  }

  void handle(const nlohmann::json& req) {
    nlohmann::json id = nullptr;
    if (req.is_object() && req.contains("id")) id = req["id"];
    bool valid =
        req.is_object() && req.value("jsonrpc", "") == "2.0" && req.contains("method") &&
        req["method"].is_string() &&
        (!req.contains("params") || req["params"].is_object() || req["params"].is_array()) &&
        (id.is_null() || id.is_number() || id.is_string());
    if (!valid) {
      send({{"jsonrpc", "2.0"},
            {"id", id},
            {"error", {{"code", kInvalidRequest}, {"message", "Invalid request"}}}});
      return;
    }
    std::weak_ptr<Connection> weak = shared_from_this();
    Responder r(req.contains("id") ? id : nlohmann::json(nullptr),
                [weak](const nlohmann::json& reply) {
                  if (auto c = weak.lock()) c->send(reply);
                });
    const std::string method = req["method"];
    LOG_DEBUG("rpc", "request {}", method);
    Registry::instance().dispatch_request(method, req.value("params", nlohmann::json()), r);
  }

  // Whether a started request has taken longer than its size allows.
  bool too_slow(uint64_t now) const {
    if (in_.empty() || closing_) return false;
    uint64_t allowed =
        ServerLimits::kGraceMs + received_ * 1000 / ServerLimits::kMinRateBytesPerSec;
    return now - started_ms_ > allowed;
  }
  void drop_slow() {
    LOG_ERROR("rpc",
              "client sent {} bytes of a request in {} ms, slower than {} bytes/s after a "
              "{} ms grace; dropping it",
              received_, now_ms() - started_ms_, ServerLimits::kMinRateBytesPerSec,
              ServerLimits::kGraceMs);
    fail(kInvalidRequest, "Invalid request: the request arrived too slowly; send it whole");
    maybe_finish();
  }

  void fail(int code, const char* message) {
    send({{"jsonrpc", "2.0"}, {"id", nullptr}, {"error", {{"code", code}, {"message", message}}}});
    closing_ = true;
  }

  void flush() {
    while (!out_.empty()) {
      ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        out_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      dead_ = true;  // peer gone; drop what is queued
      out_.clear();
      break;
    }
    bool want_out = !out_.empty();
    if (want_out != polling_out_ && !dead_) {
      polling_out_ = want_out;
      server_.reactor_.modify_fd(fd_, EPOLLIN | EPOLLRDHUP | (want_out ? uint32_t{EPOLLOUT} : 0u));
    }
  }

  void maybe_finish() {
    if (dead_ || ((closing_ || peer_closed_) && out_.empty())) {
      if (!finished_) {
        finished_ = true;
        int fd = fd_;
        Server& s = server_;
        // Defer: we may be inside our own event handler.
        s.reactor_.send([&s, fd] { s.drop(fd); });
      }
    }
  }

  friend class Server;
  Server& server_;
  int fd_;
  std::string in_, out_;
  JsonStreamScanner scanner_;
  uint64_t started_ms_ = 0;  // first byte of the request being received
  size_t received_ = 0;      // its bytes so far
  bool closing_ = false, peer_closed_ = false, dead_ = false, finished_ = false;
  bool polling_out_ = false;
};

Server::Server(Reactor& reactor, ServerLimits limits)
    : reactor_(reactor), limits_(std::move(limits)) {}

void Server::check_slow_clients() {
  uint64_t now = now_ms();
  std::vector<std::shared_ptr<Connection>> slow;
  for (auto& [fd, c] : conns_)
    if (c->too_slow(now)) slow.push_back(c);
  for (auto& c : slow) c->drop_slow();
}

Server::~Server() {
  close_all();
}

std::string Server::listen(const std::string& path) {
  struct sockaddr_un addr {};
  if (path.size() >= sizeof addr.sun_path)
    return fmt::format("socket path {} is longer than {} bytes; choose a shorter -r path", path,
                       sizeof addr.sun_path - 1);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fmt::format("socket(): {}", strerror(errno));
  gid_t gid = static_cast<gid_t>(-1);
  if (!limits_.socket_group.empty()) {
    struct group* g = ::getgrnam(limits_.socket_group.c_str());
    if (!g) {
      ::close(fd);
      return fmt::format("no group '{}' for --rpc-socket-group (getent group lists them)",
                         limits_.socket_group);
    }
    gid = g->gr_gid;
  }
  // Created owner-only from the start (no window with the umask's mode),
  // then widened to the group when one is given.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int bind_errno = errno;
  ::umask(old);
  if (rc != 0) {
    std::string err = fmt::format("cannot bind {}: {}", path, strerror(bind_errno));
    ::close(fd);
    return err;
  }
  if (gid != static_cast<gid_t>(-1) && (::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0 ||
                                        ::chmod(path.c_str(), 0660) != 0)) {
    std::string err = fmt::format("cannot give {} to group '{}': {}", path, limits_.socket_group,
                                  strerror(errno));
    ::close(fd);
    ::unlink(path.c_str());
    return err;
  }
  if (::listen(fd, 512) != 0) {
    std::string err = fmt::format("cannot listen on {}: {}", path, strerror(errno));
    ::close(fd);
    return err;
  }
  listen_fd_ = fd;
  path_ = path;
  reactor_.add_fd(fd, EPOLLIN, [this](uint32_t) { on_accept(); });
  timer_ = reactor_.add_timer(
      std::chrono::milliseconds(250), [this] { check_slow_clients(); },
      std::chrono::milliseconds(250));
  return "";
}

void Server::on_accept() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        LOG_WARN("rpc", "accept on {}: {}", path_, strerror(errno));
      return;
    }
    auto conn = std::make_shared<Connection>(*this, fd);
    conns_[fd] = conn;
    reactor_.add_fd(fd, EPOLLIN | EPOLLRDHUP,
                    [weak = std::weak_ptr<Connection>(conn)](uint32_t ev) {
                      if (auto c = weak.lock()) c->on_events(ev);
                    });
  }
}

void Server::drop(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  reactor_.remove_fd(fd);
  conns_.erase(it);
}

void Server::close_all() {
  if (timer_) {
    reactor_.cancel_timer(timer_);
    timer_ = 0;
  }
  for (auto& [fd, c] : conns_) reactor_.remove_fd(fd);
  conns_.clear();
  if (listen_fd_ >= 0) {
    reactor_.remove_fd(listen_fd_);
    ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(path_.c_str());
  }
}

}  // namespace nvemu::rpc
