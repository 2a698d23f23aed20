#include "reactor/sock_opts.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "reactor/socket_ring.h"

namespace nvemu {
namespace {

// In the order save_config lists them.
std::vector<std::pair<std::string, SockImplOpts>>& impls() {
  static std::vector<std::pair<std::string, SockImplOpts>> v{
      {"posix", {}}, {"uring", {}}, {"ssl", {}}};
  return v;
}

}  // namespace

nlohmann::json SockImplOpts::to_json() const {
  nlohmann::json j = {{"recv_buf_size", recv_buf_size},
                      {"send_buf_size", send_buf_size},
                      {"enable_recv_pipe", enable_recv_pipe},
                      {"enable_quickack", enable_quickack},
                      {"enable_placement_id", enable_placement_id},
                      {"enable_zerocopy_send_server", enable_zerocopy_send_server},
                      {"enable_zerocopy_send_client", enable_zerocopy_send_client},
                      {"zerocopy_threshold", zerocopy_threshold},
                      {"tls_version", tls_version},
                      {"enable_ktls", enable_ktls}};
  if (!psk_key.empty()) j["psk_key"] = psk_key;
  if (!psk_identity.empty()) j["psk_identity"] = psk_identity;
  return j;
}

SockImplOpts* sock_impl_opts(const std::string& name) {
  for (auto& [n, o] : impls())
    if (n == name) return &o;
  return nullptr;
}

std::vector<std::string> sock_impl_names() {
  std::vector<std::string> names;
  for (const auto& [n, o] : impls()) names.push_back(n);
  return names;
}

void apply_sock_opts(int fd) {
  const SockImplOpts& o = *sock_impl_opts(SocketRing::default_impl());
  // As SPDK's posix sockets: at least 2 MiB each way, so a queue's worth of
  // large reads fits in the send buffer without waiting on autotuning.
  int rcv = static_cast<int>(std::max(o.recv_buf_size, SockImplOpts::kMinBufSize));
  int snd = static_cast<int>(std::max(o.send_buf_size, SockImplOpts::kMinBufSize));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
  if (o.enable_quickack) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
  }
}

}  // namespace nvemu
