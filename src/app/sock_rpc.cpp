// SPDK's sock RPCs. sock_set_default_impl picks the socket implementation new
// NVMe/TCP connections use: "posix" (the default: epoll with recv/sendmsg) or
// "uring" (the reactor's io_uring, SocketRing; a kernel without the io_uring
// features it needs falls back to posix with a notice).
// sock_impl_set_options / sock_impl_get_options hold each implementation's
// options (reactor/sock_opts.h says which take effect). As in SPDK, the
// setters run only before framework_start_init.
#include <fmt/format.h>

#include "app/config.h"
#include "reactor/sock_opts.h"
#include "reactor/socket_ring.h"
#include "rpc/registry.h"

namespace nvemu::app {
namespace {

using nlohmann::json;

SockImplOpts& impl_opts(rpc::Params& p) {
  std::string name = p.str("impl_name");
  if (SockImplOpts* o = sock_impl_opts(name)) return *o;
  throw rpc::invalid_params(
      fmt::format("impl_name '{}' is not a socket implementation (posix, uring or ssl)", name));
}

json set_options(rpc::Params& p) {
  SockImplOpts& live = impl_opts(p);
  SockImplOpts o = live;  // all or nothing: a bad parameter changes none
  if (auto v = p.opt_u32("recv_buf_size")) o.recv_buf_size = *v;
  if (auto v = p.opt_u32("send_buf_size")) o.send_buf_size = *v;
  if (auto v = p.opt_bool("enable_recv_pipe")) o.enable_recv_pipe = *v;
  if (auto v = p.opt_bool("enable_quickack")) o.enable_quickack = *v;
  if (auto v = p.opt_u32("enable_placement_id")) o.enable_placement_id = *v;
  if (auto v = p.opt_bool("enable_zerocopy_send_server")) o.enable_zerocopy_send_server = *v;
  if (auto v = p.opt_bool("enable_zerocopy_send_client")) o.enable_zerocopy_send_client = *v;
  if (auto v = p.opt_u32("zerocopy_threshold")) o.zerocopy_threshold = *v;
  if (auto v = p.opt_u32("tls_version")) o.tls_version = *v;
  if (auto v = p.opt_bool("enable_ktls")) o.enable_ktls = *v;
  if (auto v = p.opt_str("psk_key")) o.psk_key = *v;
  if (auto v = p.opt_str("psk_identity")) o.psk_identity = *v;
  p.done();
  // SPDK's placement modes: 0 none, 1 NAPI ID, 2 CPU.
  if (o.enable_placement_id > 2)
    throw rpc::invalid_params(fmt::format(
        "enable_placement_id {} must be 0 (none), 1 (NAPI ID) or 2 (CPU)", o.enable_placement_id));
  if (o.tls_version != 0 && o.tls_version != 12 && o.tls_version != 13)
    throw rpc::invalid_params(
        fmt::format("tls_version {} must be 0 (any), 12 or 13", o.tls_version));
  live = o;
  return true;
}

}  // namespace

json sock_config_json() {
  json cfg = json::array();
  cfg.push_back({{"method", "sock_set_default_impl"},
                 {"params", {{"impl_name", SocketRing::default_impl()}}}});
  for (const std::string& name : sock_impl_names()) {
    json params = sock_impl_opts(name)->to_json();
    params["impl_name"] = name;
    cfg.push_back({{"method", "sock_impl_set_options"}, {"params", params}});
  }
  return {{"subsystem", "sock"}, {"config", cfg}};
}

namespace {
json set_default_impl(rpc::Params& p) {
  std::string name = p.str("impl_name");
  p.done();
  if (name == "ssl")
    throw rpc::invalid_params(
        "impl_name 'ssl': nvemu has no TLS sockets; use posix or uring (ssl options are "
        "kept only so that SPDK's configs replay)");
  if (!SocketRing::set_default_impl(name))
    throw rpc::invalid_params(
        fmt::format("impl_name '{}' is not a socket implementation (uring or posix)", name));
  return true;
}

json get_options(rpc::Params& p) {
  const SockImplOpts& o = impl_opts(p);
  p.done();
  return o.to_json();
}

const rpc::MethodDoc kSetDefaultImpl{
    "Picks the socket implementation new NVMe/TCP connections use: posix or uring.",
    "true",
    {{rpc::kInvalidParams, "impl_name missing, \"ssl\" (no TLS sockets) or not posix/uring"}}};
const rpc::MethodDoc kSetOptions{
    "Sets options of one socket implementation; all or nothing.",
    "true",
    {{rpc::kInvalidParams,
      "impl_name not posix, uring or ssl; enable_placement_id > 2; tls_version not 0, 12 or 13"}}};
const rpc::MethodDoc kGetOptions{
    "The options of one socket implementation.",
    "{recv_buf_size, send_buf_size, enable_recv_pipe, enable_quickack, enable_placement_id, "
    "enable_zerocopy_send_server, enable_zerocopy_send_client, zerocopy_threshold, tls_version, "
    "enable_ktls, ...}",
    {{rpc::kInvalidParams, "impl_name missing or not posix, uring or ssl"}}};
}  // namespace

void register_sock_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("sock_set_default_impl", rpc::kStartup, set_default_impl, kSetDefaultImpl);
  r.add("sock_impl_set_options", rpc::kStartup, set_options, kSetOptions);
  r.add("sock_impl_get_options", rpc::kAnyState, get_options, kGetOptions);
}

}  // namespace nvemu::app
