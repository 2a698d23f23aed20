// Configuration as SPDK's JSON: {"subsystems":[{"subsystem":NAME,
// "config":[{"method":...,"params":{...}}, ...]}]}. framework_get_config
// serves rpc.py's client-side save_config; save_config/load_config are the
// same operations done in the target, and -c FILE replays a file at start.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "app/app.h"
#include "app/config.h"
#include "bdev/bdev_rpc.h"
#include "common/log.h"
#include "nvmf/nvmf_rpc.h"
#include "rpc/registry.h"

namespace nvemu::app {
namespace {

using nlohmann::json;
using rpc::Params;

// nvemu's subsystems in SPDK's nvmf_tgt order: framework_get_subsystems
// lists them, save_config writes them, framework_get_config serves each.
struct SubsystemEntry {
  const char* name;
  std::vector<const char*> depends_on;
  json (*config)();
};

const std::vector<SubsystemEntry>& subsystem_table() {
  static const std::vector<SubsystemEntry> table{
      {"sock", {}, sock_config_json},
      {"bdev", {}, bdev::config_json},
      {"scheduler", {}, scheduler_config_json},
      {"nvmf", {"bdev", "sock"}, nvmf::config_json},
  };
  return table;
}

json subsystem_config(const std::string& name) {
  for (const auto& e : subsystem_table())
    if (name == e.name) return e.config();
  return nullptr;
}

// Runs one method synchronously (every config method completes at once).
std::string call(const std::string& method, const json& params) {
  std::string error;
  rpc::Responder r(1, [&](const json& reply) {
    if (reply.contains("error"))
      error = fmt::format("{} ({})", reply["error"]["message"].get<std::string>(),
                          reply["error"]["code"].get<int>());
  });
  auto& reg = rpc::Registry::instance();
  bool was = reg.replaying();
  reg.set_replaying(true);
  reg.dispatch(method, params, r);
  reg.set_replaying(was);
  return error;
}

}  // namespace

json full_config() {
  json subsystems = json::array();
  for (const auto& e : subsystem_table()) subsystems.push_back(e.config());
  return {{"subsystems", subsystems}};
}

json subsystem_list() {
  json out = json::array();
  for (const auto& e : subsystem_table())
    out.push_back({{"subsystem", e.name}, {"depends_on", e.depends_on}});
  return out;
}

std::string apply_config(const json& cfg) {
  if (!cfg.is_object() || !cfg.contains("subsystems") || !cfg["subsystems"].is_array())
    return "a configuration must be an object with a \"subsystems\" array (what save_config "
           "writes)";
  auto& reg = rpc::Registry::instance();
  std::vector<std::pair<std::string, json>> runtime;
  for (const auto& sub : cfg["subsystems"]) {
    if (!sub.is_object() || !sub.contains("config")) continue;
    if (sub["config"].is_null()) continue;
    if (!sub["config"].is_array())
      return fmt::format("subsystem {}: \"config\" must be an array",
                         sub.value("subsystem", std::string("?")));
    for (const auto& entry : sub["config"]) {
      if (!entry.is_object() || !entry.contains("method") || !entry["method"].is_string())
        return fmt::format("config entry {} has no \"method\" string", entry.dump());
      std::string method = entry["method"];
      json params = entry.value("params", json());
      if (!reg.has(method))
        return fmt::format("config entry {}: method not known to nvemu", method);
      bool startup_ok = false;
      for (const auto& n : reg.names(rpc::kStartup))
        if (n == method) startup_ok = true;
      if (reg.state() == rpc::kStartup && startup_ok) {
        std::string err = call(method, params);
        if (!err.empty()) return fmt::format("{}: {}", method, err);
      } else {
        runtime.emplace_back(method, params);
      }
    }
  }
  if (reg.state() == rpc::kStartup) framework_start_init();
  for (const auto& [method, params] : runtime) {
    bool runtime_ok = false;
    for (const auto& n : reg.names(rpc::kRuntime))
      if (n == method) runtime_ok = true;
    if (!runtime_ok) {
      // As rpc.py's load_config: a start-up-only method whose time has passed is skipped.
      LOG_WARN("app", "config: {} skipped: it may only run before framework_start_init", method);
      continue;
    }
    std::string err = call(method, params);
    if (!err.empty()) return fmt::format("{}: {}", method, err);
  }
  return "";
}

std::string load_config_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return fmt::format("cannot read config file {}", path);
  std::stringstream ss;
  ss << f.rdbuf();
  json cfg = json::parse(ss.str(), nullptr, false);
  if (cfg.is_discarded()) return fmt::format("{} is not valid JSON", path);
  std::string err = apply_config(cfg);
  return err.empty() ? "" : fmt::format("{}: {}", path, err);
}

void register_config_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("framework_get_config", rpc::kAnyState, [](Params& p) {
    std::string name = p.str("name");
    p.done();
    json c = subsystem_config(name);
    if (c.is_null()) {
      std::vector<std::string> names;
      for (const auto& e : subsystem_table()) names.emplace_back(e.name);
      throw rpc::invalid_params(fmt::format("no subsystem '{}' (framework_get_subsystems lists {})",
                                            name, fmt::join(names, ", ")));
    }
    return c["config"];
  });
  r.add("save_config", rpc::kAnyState, [](Params& p) {
    p.done();
    return full_config();
  });
  r.add("load_config", rpc::kAnyState, [](Params& p) {
    const json& cfg = p.raw();
    p.opt_value("subsystems");
    p.done();
    std::string err = apply_config(cfg);
    if (!err.empty()) throw rpc::invalid_params(err);
    return json(true);
  });
  // Accepted so that SPDK-written configs replay; nvemu has nothing to tune.
  r.add("iobuf_set_options", rpc::kStartup, [](Params& p) {
    p.opt_u64("small_pool_count");
    p.opt_u64("large_pool_count");
    p.opt_u32("small_bufsize");
    p.opt_u32("large_bufsize");
    p.done();
    return json(true);
  });
  // SPDK's NVMe bdev module writes these into every config; nvemu has no
  // NVMe bdev module, so its options tune nothing. Its keys are SPDK's, left
  // unchecked here (new SPDK versions add more).
  r.add("bdev_nvme_set_options", rpc::kAnyState, [](Params&) { return json(true); });
  r.add("bdev_nvme_set_hotplug", rpc::kAnyState, [](Params& p) {
    bool enable = p.boolean("enable");
    p.opt_u64("period_us");
    p.done();
    if (enable)
      throw rpc::invalid_params(
          "bdev_nvme_set_hotplug enable=true: nvemu has no NVMe bdev module whose PCIe devices "
          "could be hot plugged; use bdev_malloc_create, bdev_null_create or bdev_uring_create");
    return json(true);
  });
  r.add("bdev_set_options", rpc::kStartup, [](Params& p) {
    p.opt_u32("bdev_io_pool_size");
    p.opt_u32("bdev_io_cache_size");
    p.opt_bool("bdev_auto_examine");
    p.opt_u32("small_buf_pool_size");
    p.opt_u32("large_buf_pool_size");
    p.done();
    return json(true);
  });
  r.add("bdev_wait_for_examine", rpc::kRuntime, [](Params& p) {
    p.done();
    return json(true);
  });
}

}  // namespace nvemu::app
