// DOCA emulation functions of each running target: their states and who
// holds them. A function a host driver holds is the record's last failure:
// on a BlueField the firmware answered BAD_RES_STATE_ERR (0x9) to the PRM
// command that reconfigures it; nvemu refuses with the holder's pid.
#include <fmt/format.h>

#include "checks.h"
#include "procfs.h"
#include "rpc_client.h"

namespace nvemu::doctor {

void check_doca(const std::vector<std::string>& live, Findings* out) {
  for (const std::string& sock : live) {
    std::string err;
    nlohmann::json managers = rpc_call(sock, "nvmf_doca_get_managers", nullptr, &err);
    if (managers.is_null()) {
      out->push_back({"doca", Status::kUnknown, fmt::format("cannot ask {}: {}", sock, err), ""});
      continue;
    }
    if (managers.contains("error")) {
      // Not nvemu (SPDK without DOCA), or still waiting for framework_start_init.
      out->push_back({"doca", Status::kOk,
                      fmt::format("{}: no DOCA functions to check ({})", sock,
                                  managers["error"].value("message", "")),
                      ""});
      continue;
    }
    size_t count = 0;
    for (const auto& m : managers["result"]) {
      std::string name = m.value("name", "");
      nlohmann::json fns = rpc_call(sock, "nvmf_doca_list_functions", {{"dev_name", name}}, &err);
      if (fns.is_null() || fns.contains("error")) {
        out->push_back({"doca", Status::kUnknown,
                        fmt::format("{}: nvmf_doca_list_functions -d {} failed: {}", sock, name,
                                    fns.is_null() ? err : fns["error"].value("message", "")),
                        ""});
        continue;
      }
      for (const auto& f : fns["result"]) {
        ++count;
        std::string vuid = f.value("vuid", ""), state = f.value("state", "");
        if (f.contains("host_pid") && f["host_pid"].is_number()) {
          int pid = f["host_pid"].get<int>();
          std::string cmd = cmdline(pid);
          std::string subnqn = f.value("subnqn", "");
          out->push_back(
              {"doca", Status::kWarn,
               fmt::format("function {} of {} is '{}', held by host pid {} ({}) through {}: "
                           "destroying it or removing its listener is refused until the host "
                           "lets go (on a BlueField: BAD_RES_STATE_ERR (0x9) from the firmware)",
                           vuid, name, state, pid, cmd.empty() ? "gone" : cmd,
                           f.value("socket", "")),
               fmt::format("detach the host (unbind its nvme driver or close the vfio-user "
                           "client, pid {}), then nvmf_subsystem_remove_listener {} -t DOCA -a {}",
                           pid, subnqn, vuid),
               f});
        } else {
          out->push_back(
              {"doca", Status::kOk,
               fmt::format("function {} of {} is '{}', no host holds it", vuid, name, state), "",
               f});
        }
      }
    }
    if (count == 0)
      out->push_back({"doca", Status::kOk, fmt::format("{}: no DOCA functions created", sock), ""});
  }
}

}  // namespace nvemu::doctor
