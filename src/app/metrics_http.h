// A minimal HTTP/1.1 endpoint for Prometheus scrapes on the main reactor's
// fd loop: GET /metrics answers the exposition text, anything else 404 (405
// for other methods). Non-blocking sockets, one request per connection
// (Connection: close), requests bounded to kMaxRequest bytes and idle
// connections closed after a timeout, so a slow or hostile client costs the
// main reactor nothing but a little memory and never stalls I/O reactors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace nvemu {
class Reactor;
}

namespace nvemu::app {

class MetricsHttp {
 public:
  static constexpr size_t kMaxRequest = 8192;
  explicit MetricsHttp(Reactor& reactor);
  ~MetricsHttp();
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  // "IP:PORT" (IPv4 or [IPv6]:PORT). Returns "" or why not.
  std::string listen(const std::string& addr);
  void close();

 private:
  struct Conn;
  void accept_all();
  void on_conn(int fd, uint32_t events);
  void respond(int fd, int status, const std::string& type, const std::string& body);
  void flush(int fd);
  void drop(int fd);

  Reactor& reactor_;
  int listen_fd_ = -1;
  std::map<int, std::unique_ptr<Conn>> conns_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace nvemu::app
