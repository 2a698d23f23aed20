// The JSON-RPC 2.0 server on a Unix socket, run by the main reactor. Many
// clients at once; requests may arrive split or back to back; every reply
// is one line of JSON ending in '\n' (the record's client reads to the first
// newline). A parse error is answered, then that connection is closed, as
// SPDK does: a JSON stream has no point to resynchronise at.
//
// Hardening (nvemu's own; SPDK leaves the socket to the umask): the socket
// is created 0600, or 0660 for a group given with --rpc-socket-group; a
// request larger than max_request_bytes is answered with a Parse error and
// the connection closed; a request that has begun must arrive whole within
// kGraceMs plus one second per kMinRateBytesPerSec bytes received, else the
// connection is dropped. A client waiting between requests is not dropped.
// Nothing a client does blocks the others: the socket is non-blocking and
// served by the reactor's event loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

namespace nvemu {
class Reactor;
}

namespace nvemu::rpc {

class Connection;

struct ServerLimits {
  static constexpr uint64_t kGraceMs = 5000;
  static constexpr uint64_t kMinRateBytesPerSec = 64 * 1024;
  size_t max_request_bytes = 4u << 20;  // --rpc-max-request-bytes
  std::string socket_group;             // --rpc-socket-group: "" = owner only
};

class Server {
 public:
  explicit Server(Reactor& reactor, ServerLimits limits = {});
  ~Server();

  // Binds and listens; returns "" or why not. The caller has already
  // checked for a live owner (see socket_guard.h).
  std::string listen(const std::string& path);
  void close_all();
  const std::string& path() const { return path_; }

 private:
  void on_accept();
  void drop(int fd);
  void check_slow_clients();

  Reactor& reactor_;
  ServerLimits limits_;
  uint64_t timer_ = 0;
  std::string path_;
  int listen_fd_ = -1;
  std::unordered_map<int, std::shared_ptr<Connection>> conns_;
  friend class Connection;
};

}  // namespace nvemu::rpc
