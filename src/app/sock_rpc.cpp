// SPDK's sock_set_default_impl: which socket implementation new NVMe/TCP
// connections use: "posix" (the default: epoll with recv/sendmsg) or "uring"
// (the reactor's io_uring, SocketRing; a kernel without the io_uring features
// it needs falls back to posix with a notice). As in SPDK, only before
// framework_start_init.
#include <fmt/format.h>

#include "app/config.h"
#include "reactor/socket_ring.h"
#include "rpc/registry.h"

namespace nvemu::app {

void register_sock_rpcs() {
  rpc::Registry::instance().add("sock_set_default_impl", rpc::kStartup, [](rpc::Params& p) {
    std::string name = p.str("impl_name");
    p.done();
    if (!SocketRing::set_default_impl(name))
      throw rpc::invalid_params(
          fmt::format("impl_name '{}' is not a socket implementation (uring or posix)", name));
    return nlohmann::json(true);
  });
}

}  // namespace nvemu::app
