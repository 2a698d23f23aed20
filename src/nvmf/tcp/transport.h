// The NVMe/TCP Transport: listening sockets on the main reactor, accepted
// connections spread over the reactors (ReactorSet::next()).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nvmf/tcp/connection.h"
#include "nvmf/transport.h"

namespace nvemu::nvmf::tcp {

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(TcpOptions opts);
  ~TcpTransport() override;

  std::string listen(const ListenAddress& addr) override;
  void stop_listen(const ListenAddress& addr) override;
  void disconnect_subsystem(const std::string& nqn) override;
  nlohmann::json stats_json() const override;

  const TcpOptions& tcp_opts() const { return shared_->opts; }
  size_t connection_count() const { return shared_->count(); }

 private:
  struct Listener {
    ListenAddress addr;
    int fd = -1;
  };
  static void on_accept(const std::shared_ptr<TcpShared>& shared, const ListenAddress& addr,
                        int lfd);

  std::shared_ptr<TcpShared> shared_;
  std::vector<Listener> listeners_;  // main thread only
};

}  // namespace nvemu::nvmf::tcp
