// SPDK's per-implementation socket options (sock_impl_set_options /
// sock_impl_get_options), for the implementations nvemu knows: "posix",
// "uring" and "ssl". "ssl" only holds options, so that configs written by
// SPDK replay: nvemu has no TLS, and it cannot be the default.
//
// What takes effect on NVMe/TCP connections (set up at accept, from the
// default implementation's options): recv_buf_size and send_buf_size, as
// SO_RCVBUF/SO_SNDBUF of at least SPDK's 2 MiB minimum, and enable_quickack.
// The others are kept and reported: enable_recv_pipe (every connection reads
// into its own buffer either way), enable_placement_id, the zero-copy send
// switches (nvemu does not send with MSG_ZEROCOPY: loopback copies anyway,
// docs/performance.md) and the TLS fields.
//
// Set before framework_start_init only, as in SPDK, so the reactors read
// them without locks.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nvemu {

struct SockImplOpts {
  static constexpr uint32_t kMinBufSize = 2u << 20;  // SPDK's MIN_SO_RCVBUF/SNDBUF_SIZE
  uint32_t recv_buf_size = kMinBufSize;
  uint32_t send_buf_size = kMinBufSize;
  bool enable_recv_pipe = true;
  bool enable_quickack = false;
  uint32_t enable_placement_id = 0;
  bool enable_zerocopy_send_server = true;
  bool enable_zerocopy_send_client = false;
  uint32_t zerocopy_threshold = 0;
  uint32_t tls_version = 0;
  bool enable_ktls = false;
  std::string psk_key, psk_identity;

  nlohmann::json to_json() const;
};

// The options of implementation `name`, or nullptr when nvemu has none.
SockImplOpts* sock_impl_opts(const std::string& name);
// Every implementation's name, in the order save_config lists them.
std::vector<std::string> sock_impl_names();
// Applies the default implementation's buffer sizes and quick-ack to a new
// connection's socket.
void apply_sock_opts(int fd);

}  // namespace nvemu
