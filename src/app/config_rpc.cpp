// Configuration as SPDK's JSON: {"subsystems":[{"subsystem":NAME,
// "config":[{"method":...,"params":{...}}, ...]}]}. framework_get_config
// serves rpc.py's client-side save_config; save_config/load_config are the
// same operations done in the target, and -c FILE replays a file at start.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <vector>

#include "app/app.h"
#include "app/config.h"
#include "bdev/bdev_rpc.h"
#include "common/log.h"
#include "keyring/keyring.h"
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
      {"keyring", {}, keyring::config_json},
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

// One configuration replay: its steps in order, each started when the one
// before answered, so an asynchronous method (bdev_nvme_attach_controller
// connects on a worker thread) is done before the next entry needs it.
struct Replay {
  struct Step {
    std::string method;  // empty: framework_start_init
    json params;
  };
  std::vector<Step> steps;
  size_t next = 0;
  std::function<void(const std::string&)> done;

  static void run(const std::shared_ptr<Replay>& r) {
    auto& reg = rpc::Registry::instance();
    while (r->next < r->steps.size()) {
      const Step& step = r->steps[r->next++];
      if (step.method.empty()) {
        if (reg.state() == rpc::kStartup) framework_start_init();
        continue;
      }
      if (reg.state() == rpc::kRuntime) {
        bool runtime_ok = false;
        for (const auto& n : reg.names(rpc::kRuntime))
          if (n == step.method) runtime_ok = true;
        if (!runtime_ok) {
          // As rpc.py's load_config: a start-up-only method whose time has passed is skipped.
          LOG_WARN("app", "config: {} skipped: it may only run before framework_start_init",
                   step.method);
          continue;
        }
      }
      // The reply may come now (most methods) or later (asynchronous ones).
      auto answered = std::make_shared<bool>(false);
      auto sync = std::make_shared<bool>(true);
      std::string method = step.method;
      rpc::Responder resp(1, [r, answered, sync, method](const json& reply) {
        if (*answered) return;
        *answered = true;
        if (reply.contains("error")) {
          r->done(fmt::format("{}: {} ({})", method, reply["error"]["message"].get<std::string>(),
                              reply["error"]["code"].get<int>()));
          return;
        }
        if (!*sync) run(r);
      });
      reg.dispatch(step.method, step.params, resp);
      *sync = false;
      if (!*answered) return;  // resp's callback continues the replay
      // A synchronous error already finished the replay.
      if (r->next == SIZE_MAX) return;
    }
    if (r->next != SIZE_MAX) {
      r->next = SIZE_MAX;
      r->done("");
    }
  }
};

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

void apply_config(const json& cfg, std::function<void(const std::string&)> done) {
  if (!cfg.is_object() || !cfg.contains("subsystems") || !cfg["subsystems"].is_array()) {
    done(
        "a configuration must be an object with a \"subsystems\" array (what save_config "
        "writes)");
    return;
  }
  auto& reg = rpc::Registry::instance();
  auto replay = std::make_shared<Replay>();
  std::vector<Replay::Step> runtime;
  for (const auto& sub : cfg["subsystems"]) {
    if (!sub.is_object() || !sub.contains("config")) continue;
    if (sub["config"].is_null()) continue;
    if (!sub["config"].is_array()) {
      done(fmt::format("subsystem {}: \"config\" must be an array",
                       sub.value("subsystem", std::string("?"))));
      return;
    }
    for (const auto& entry : sub["config"]) {
      if (!entry.is_object() || !entry.contains("method") || !entry["method"].is_string()) {
        done(fmt::format("config entry {} has no \"method\" string", entry.dump()));
        return;
      }
      std::string method = entry["method"];
      json params = entry.value("params", json());
      if (!reg.has(method)) {
        done(fmt::format("config entry {}: method not known to nvemu", method));
        return;
      }
      bool startup_ok = false;
      for (const auto& n : reg.names(rpc::kStartup))
        if (n == method) startup_ok = true;
      if (reg.state() == rpc::kStartup && startup_ok)
        replay->steps.push_back({method, params});
      else
        runtime.push_back({method, params});
    }
  }
  replay->steps.push_back({"", json()});
  for (auto& st : runtime) replay->steps.push_back(std::move(st));
  // Stops at the first error: the Replay marks itself finished first.
  replay->done = [replay_weak = std::weak_ptr<Replay>(replay),
                  done = std::move(done)](const std::string& err) {
    if (auto r = replay_weak.lock()) r->next = SIZE_MAX;
    done(err);
  };
  Replay::run(replay);
}

void load_config_file(const std::string& path, std::function<void(const std::string&)> done) {
  std::ifstream f(path);
  if (!f) {
    done(fmt::format("cannot read config file {}", path));
    return;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  json cfg = json::parse(ss.str(), nullptr, false);
  if (cfg.is_discarded()) {
    done(fmt::format("{} is not valid JSON", path));
    return;
  }
  apply_config(cfg, [path, done = std::move(done)](const std::string& err) {
    done(err.empty() ? "" : fmt::format("{}: {}", path, err));
  });
}

namespace {
json get_config(Params& p) {
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
}

json save_config(Params& p) {
  p.done();
  return full_config();
}

void load_config(Params& p, const rpc::Responder& resp) {
  json cfg = p.raw();
  p.opt_value("subsystems");
  p.done();
  apply_config(cfg, [resp](const std::string& err) {
    if (!err.empty())
      resp.error(rpc::invalid_params(err));
    else
      resp.result(true);
  });
}

// Accepted so that SPDK-written configs replay; nvemu has nothing to tune.
json iobuf_set_options(Params& p) {
  p.opt_u64("small_pool_count");
  p.opt_u64("large_pool_count");
  p.opt_u32("small_bufsize");
  p.opt_u32("large_bufsize");
  p.done();
  return true;
}

json bdev_set_options(Params& p) {
  p.opt_u32("bdev_io_pool_size");
  p.opt_u32("bdev_io_cache_size");
  p.opt_bool("bdev_auto_examine");
  p.opt_u32("small_buf_pool_size");
  p.opt_u32("large_buf_pool_size");
  p.done();
  return true;
}

json wait_for_examine(Params& p) {
  p.done();
  return true;
}

const rpc::ErrorDoc kNoParams{rpc::kInvalidParams, "params given: the method takes none"};
const rpc::MethodDoc kGetConfig{
    "One subsystem's configuration as save_config writes it (what rpc.py's client-side "
    "save_config asks for).",
    "array of {method, params}",
    {{rpc::kInvalidParams, "name missing or not a subsystem framework_get_subsystems lists"}}};
const rpc::MethodDoc kSaveConfig{
    "The whole configuration, replayable with load_config or nvemu-tgt -c.",
    "{subsystems: [{subsystem, config: [{method, params}]}]}",
    {kNoParams}};
const rpc::MethodDoc kLoadConfig{
    "Replays a configuration (save_config's shape) in order, start-up methods first; stops at "
    "the first failing entry.",
    "true",
    {{rpc::kInvalidParams,
      "no subsystems array; an entry without a method or naming an unknown method; an entry "
      "failed (the message names it and carries its own code)"}}};
const rpc::MethodDoc kIobufSetOptions{
    "Accepted so that SPDK configs replay; nvemu has no iobuf pools to size.",
    "true",
    {{rpc::kInvalidParams, "a count or size not an integer; an unknown key"}}};
const rpc::MethodDoc kBdevSetOptions{
    "Accepted so that SPDK configs replay; nvemu has no bdev_io pools to size.",
    "true",
    {{rpc::kInvalidParams,
      "a size not an integer, bdev_auto_examine not a boolean; an unknown "
      "key"}}};
const rpc::MethodDoc kWaitForExamine{
    "Returns once bdev examination is done (at once: nvemu examines synchronously).",
    "true",
    {kNoParams}};
}  // namespace

void register_config_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("framework_get_config", rpc::kAnyState, get_config, kGetConfig);
  r.add("save_config", rpc::kAnyState, save_config, kSaveConfig);
  r.add_async("load_config", rpc::kAnyState, load_config, kLoadConfig);
  r.add("iobuf_set_options", rpc::kStartup, iobuf_set_options, kIobufSetOptions);
  r.add("bdev_set_options", rpc::kStartup, bdev_set_options, kBdevSetOptions);
  r.add("bdev_wait_for_examine", rpc::kRuntime, wait_for_examine, kWaitForExamine);
}

}  // namespace nvemu::app
