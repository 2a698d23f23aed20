// RPC sockets: the record's "RPC Unix domain socket path ... in use" was a
// live daemon; a socket file left by a dead one (stale) stops SPDK just the
// same. Live or stale is told by a connect, as nvemu-tgt's preflight does.
#include <fmt/format.h>

#include "app/preflight.h"
#include "checks.h"
#include "procfs.h"

namespace nvemu::doctor {

std::vector<std::string> check_sockets(const Options& o, Findings* out) {
  std::vector<std::string> live;
  std::vector<std::string> paths = o.sockets;
  if (paths.empty()) paths = {"/var/tmp/spdk.sock", "/run/nvemu/spdk.sock"};
  for (const std::string& path : paths) {
    app::SocketProbe p = app::probe_socket(path);
    nlohmann::json detail = {{"path", path}, {"exists", p.exists}, {"live", p.live}};
    if (!p.exists) {
      out->push_back({"rpc-socket", Status::kOk, fmt::format("{}: free (no daemon uses it)", path),
                      "", detail});
    } else if (!p.is_socket) {
      out->push_back(
          {"rpc-socket", Status::kProblem,
           fmt::format("{} exists and is not a socket: no daemon can listen there", path),
           fmt::format("rm {}   (or start nvemu-tgt with another -r PATH)", path), detail});
    } else if (p.live) {
      std::string cmd = p.owner_pid ? cmdline(p.owner_pid) : "";
      detail["pid"] = p.owner_pid;
      detail["cmdline"] = cmd;
      live.push_back(path);
      out->push_back(
          {"rpc-socket", o.before_start ? Status::kProblem : Status::kWarn,
           fmt::format("{}: live, served by pid {} ({}); a second target on this path fails "
                       "with \"RPC Unix domain socket path {} in use\"",
                       path, p.owner_pid, cmd.empty() ? "command line unknown" : cmd, path),
           fmt::format("talk to the running one (nvemu-rpc -s {} ...), stop it (kill {}), or "
                       "start the new one with -r /var/tmp/spdk2.sock",
                       path, p.owner_pid),
           detail});
    } else {
      out->push_back(
          {"rpc-socket", Status::kProblem,
           fmt::format("{}: stale (a socket file nobody listens on; its daemon died). SPDK "
                       "refuses to start on it; nvemu-tgt removes it itself",
                       path),
           fmt::format("rm {}", path), detail});
    }
  }
  return live;
}

}  // namespace nvemu::doctor
