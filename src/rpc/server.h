// The JSON-RPC 2.0 server on a Unix socket, run by the main reactor. Many
// clients at once; requests may arrive split or back to back; every reply
// is one line of JSON ending in '\n' (the record's client reads to the first
// newline). A parse error is answered, then that connection is closed, as
// SPDK does: a JSON stream has no point to resynchronise at.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

namespace nvemu {
class Reactor;
}

namespace nvemu::rpc {

class Connection;

class Server {
 public:
  explicit Server(Reactor& reactor);
  ~Server();

  // Binds and listens; returns "" or why not. The caller has already
  // checked for a live owner (see socket_guard.h).
  std::string listen(const std::string& path);
  void close_all();
  const std::string& path() const { return path_; }

 private:
  void on_accept();
  void drop(int fd);

  Reactor& reactor_;
  std::string path_;
  int listen_fd_ = -1;
  std::unordered_map<int, std::shared_ptr<Connection>> conns_;
  friend class Connection;
};

}  // namespace nvemu::rpc
