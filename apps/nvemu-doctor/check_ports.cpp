// NVMe/TCP listener ports (4420 by default): who holds one, so an
// nvmf_subsystem_add_listener that fails with "Address already in use" has
// a name behind it.
#include <fmt/format.h>

#include "checks.h"
#include "procfs.h"

namespace nvemu::doctor {

void check_ports(const Options& o, Findings* out) {
  std::vector<TcpListener> all = tcp_listeners();
  for (uint16_t port : o.ports) {
    nlohmann::json holders = nlohmann::json::array();
    std::string who;
    for (const TcpListener& l : all) {
      if (l.port != port) continue;
      for (int pid : socket_owners(l.inode)) {
        std::string cmd = cmdline(pid);
        holders.push_back({{"addr", l.addr}, {"pid", pid}, {"cmdline", cmd}});
        who += fmt::format("{}{} by pid {} ({})", who.empty() ? "" : "; ", l.addr, pid, cmd);
      }
      if (socket_owners(l.inode).empty()) {
        holders.push_back({{"addr", l.addr}, {"pid", nullptr}});
        who += fmt::format("{}{} by a process not visible here", who.empty() ? "" : "; ", l.addr);
      }
    }
    nlohmann::json detail = {{"port", port}, {"listeners", holders}};
    if (holders.empty()) {
      out->push_back({"ports", Status::kOk, fmt::format("TCP port {}: free", port), "", detail});
      continue;
    }
    // A running nvemu-tgt on its own port is fine, unless another is to start there.
    bool ours = who.find("nvemu-tgt") != std::string::npos && !o.before_start;
    out->push_back({"ports",
                    ours             ? Status::kOk
                    : o.before_start ? Status::kProblem
                                     : Status::kWarn,
                    fmt::format("TCP port {}: listening on {}", port, who),
                    ours ? ""
                         : fmt::format("a listener on {} needs another port (-s {}) or that "
                                       "process stopped",
                                       port, port + 1),
                    detail});
  }
}

}  // namespace nvemu::doctor
