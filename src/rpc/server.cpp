#include "rpc/server.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "reactor/reactor.h"
#include "rpc/json_stream.h"
#include "rpc/registry.h"

namespace nvemu::rpc {

namespace {
constexpr size_t kMaxRequestBytes = 32u << 20;  // as SPDK's receive buffer limit
}

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
      if (r == JsonStreamScanner::Result::kNeedMore) {
        if (in_.size() > kMaxRequestBytes) {
          LOG_ERROR("rpc", "request larger than {} bytes; closing the connection",
                    kMaxRequestBytes);
          fail(kParseError, "Parse error");
          return false;
        }
        return true;
      }
      if (r == JsonStreamScanner::Result::kInvalid) {
        fail(kParseError, "Parse error");
        return false;
      }
      std::string text = in_.substr(0, end);
      in_.erase(0, end);
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
    Registry::instance().dispatch(method, req.value("params", nlohmann::json()), r);
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

  Server& server_;
  int fd_;
  std::string in_, out_;
  JsonStreamScanner scanner_;
  bool closing_ = false, peer_closed_ = false, dead_ = false, finished_ = false;
  bool polling_out_ = false;
};

Server::Server(Reactor& reactor) : reactor_(reactor) {}

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
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string err = fmt::format("cannot bind {}: {}", path, strerror(errno));
    ::close(fd);
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
