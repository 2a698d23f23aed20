// Application-level RPCs: version, method list, framework state, reactors,
// logging and shutdown — SPDK v23.01's names and result shapes.
#include <fmt/format.h>

#include <csignal>
#include <cstring>

#include "app/app.h"
#include "app/config.h"
#include "common/log.h"
#include "reactor/reactor.h"
#include "rpc/registry.h"

namespace nvemu::app {
namespace {

using nlohmann::json;
using rpc::Params;

json get_version(Params& p) {
  p.done();
  return {{"version", fmt::format("nvemu v{} (SPDK v23.01 compatible)", NVEMU_VERSION)},
          {"fields", {{"major", 23}, {"minor", 1}, {"patch", 0}, {"suffix", ""}}}};
}

json get_methods(Params& p) {
  bool current = p.opt_bool("current").value_or(false);
  p.opt_bool("include_aliases");
  p.done();
  auto& r = rpc::Registry::instance();
  json out = json::array();
  for (const auto& n : r.names(current ? r.state() : rpc::kAnyState)) out.push_back(n);
  return out;
}

json start_init(Params& p) {
  p.done();
  framework_start_init();
  return true;
}

json wait_init(Params& p) {
  p.done();
  // Start-up finishes synchronously in framework_start_init, so once this
  // method may run (runtime state) the framework is up.
  return true;
}

json get_subsystems(Params& p) {
  p.done();
  return subsystem_list();
}

// nvemu has one scheduler, SPDK's "static": each poll group stays on the
// reactor it was created on. The period is kept for save_config only.
uint64_t g_scheduler_period_us = 1000000;  // SPDK's default: 1 s

json set_scheduler(Params& p) {
  std::string name = p.str("name");
  auto period = p.opt_u64("period");
  // No done(): like SPDK's relaxed decoding, the dynamic scheduler's own
  // keys (load_limit, core_limit, core_busy) may ride along.
  if (name != "static")
    throw rpc::invalid_params(
        fmt::format("scheduler '{}' is not available: nvemu runs the static scheduler only "
                    "(each poll group stays on its reactor)",
                    name));
  if (period) g_scheduler_period_us = *period;
  return true;
}

json get_scheduler(Params& p) {
  p.done();
  return {{"scheduler_name", "static"}, {"scheduler_period", g_scheduler_period_us}};
}

json get_reactors(Params& p) {
  p.done();
  auto& set = ReactorSet::instance();
  json reactors = json::array();
  for (size_t i = 0; i < set.size(); ++i) {
    Reactor& r = set.at(i);
    reactors.push_back(
        {{"lcore", r.core()},
         {"busy", r.busy_us()},
         {"idle", r.idle_us()},
         {"in_interrupt", false},
         {"lw_threads",
          json::array({{{"name", i == 0 ? "app_thread" : fmt::format("nvmf_tgt_poll_group_{}", i)},
                        {"id", i + 1},
                        {"cpumask", fmt::format("{:x}", 1ull << (r.core() % 64))},
                        {"elapsed", r.busy_us() + r.idle_us()}}})}});
  }
  return {{"tick_rate", 1000000}, {"reactors", reactors}};
}

json kill_instance(Params& p) {
  std::string sig = p.str("sig_name");
  p.done();
  static const std::pair<const char*, int> kSignals[] = {
      {"SIGINT", SIGINT}, {"SIGTERM", SIGTERM}, {"SIGKILL", SIGKILL}, {"SIGUSR1", SIGUSR1}};
  std::string name = sig.rfind("SIG", 0) == 0 ? sig : "SIG" + sig;
  for (const auto& [n, s] : kSignals) {
    if (name == n) {
      request_shutdown(s);
      return true;
    }
  }
  throw rpc::invalid_params(
      fmt::format("sig_name '{}' must be SIGINT, SIGTERM, SIGKILL or "
                  "SIGUSR1",
                  sig));
}

log::Level level_or_throw(Params& p) {
  std::string name = p.str("level");
  p.done();
  log::Level l;
  if (!log::parse_level(name, &l))
    throw rpc::invalid_params(
        fmt::format("level '{}' must be ERROR, WARNING, NOTICE, INFO or "
                    "DEBUG",
                    name));
  return l;
}

json set_flag(Params& p, bool on) {
  std::string flag = p.str("flag");
  p.done();
  if (!log::set_flag(flag, on))
    throw rpc::invalid_params(
        fmt::format("unknown log flag '{}' (known: {})", flag, log::known_flags()));
  return true;
}

}  // namespace

json scheduler_config_json() {
  json params = {{"name", "static"}, {"period", g_scheduler_period_us}};
  return {{"subsystem", "scheduler"},
          {"config", json::array({{{"method", "framework_set_scheduler"}, {"params", params}}})}};
}

// Docs for docs/rpc.md (rpc::MethodDoc): -32602 "takes no params" is each
// no-argument method's only error of its own.
namespace {
const rpc::ErrorDoc kNoParams{rpc::kInvalidParams, "params given: the method takes none"};
const rpc::ErrorDoc kBadLevel{rpc::kInvalidParams,
                              "level missing or not ERROR, WARNING, NOTICE, INFO or DEBUG"};
const rpc::MethodDoc kGetVersion{
    "The target's version string and SPDK version fields (nvemu reports 23.1.0).",
    "{version (string), fields: {major, minor, patch, suffix}}",
    {kNoParams}};
const rpc::MethodDoc kGetMethods{
    "Lists every registered method; with current=true only those callable in the present "
    "framework state.",
    "array of method names (strings)",
    {{rpc::kInvalidParams, "current or include_aliases not a boolean; an unknown key"}}};
const rpc::MethodDoc kStartInit{
    "Leaves the start-up state (--wait-for-rpc): bdev and nvmf subsystems initialize and "
    "runtime methods become callable.",
    "true",
    {kNoParams}};
const rpc::MethodDoc kWaitInit{
    "Returns once the framework is initialized (immediately: start-up finishes inside "
    "framework_start_init).",
    "true",
    {kNoParams}};
const rpc::MethodDoc kGetSubsystems{"Lists the framework subsystems in initialization order.",
                                    "array of {subsystem, depends_on: [names]}",
                                    {kNoParams}};
const rpc::MethodDoc kSetScheduler{
    "Selects the reactor scheduler; nvemu runs SPDK's static scheduler only, whose period is "
    "kept for save_config.",
    "true",
    {{rpc::kInvalidParams, "name missing or not \"static\"; period not an integer"}}};
const rpc::MethodDoc kGetScheduler{"The scheduler's name and period in microseconds.",
                                   "{scheduler_name: \"static\", scheduler_period}",
                                   {kNoParams}};
const rpc::MethodDoc kGetReactors{
    "Per reactor: its core, busy and idle time (microseconds) and its threads.",
    "{tick_rate, reactors: [{lcore, busy, idle, in_interrupt, lw_threads: [{name, id, cpumask, "
    "elapsed}]}]}",
    {kNoParams}};
const rpc::MethodDoc kKillInstance{
    "Sends the target a signal: SIGINT/SIGTERM shut it down after the reply, SIGKILL ends it "
    "at once.",
    "true",
    {{rpc::kInvalidParams, "sig_name missing or not SIGINT, SIGTERM, SIGKILL or SIGUSR1"}}};
const rpc::MethodDoc kSetFlag{"Enables one log flag (component), e.g. nvmf_tcp.",
                              "true",
                              {{rpc::kInvalidParams, "flag missing or not a known log flag"}}};
const rpc::MethodDoc kClearFlag{"Disables one log flag (component).",
                                "true",
                                {{rpc::kInvalidParams, "flag missing or not a known log flag"}}};
const rpc::MethodDoc kGetFlags{
    "Every log flag and whether it is enabled.", "object {flag: true|false}", {kNoParams}};
const rpc::MethodDoc kSetLevel{"Sets the lowest level written to the log.", "true", {kBadLevel}};
const rpc::MethodDoc kGetLevel{
    "The lowest level written to the log.", "level name (string), e.g. \"NOTICE\"", {kNoParams}};
const rpc::MethodDoc kSetPrintLevel{
    "Sets the lowest level printed to stderr.", "true", {kBadLevel}};
const rpc::MethodDoc kGetPrintLevel{
    "The lowest level printed to stderr.", "level name (string), e.g. \"NOTICE\"", {kNoParams}};

json enable_flag(Params& p) {
  return set_flag(p, true);
}
json disable_flag(Params& p) {
  return set_flag(p, false);
}
json get_flags(Params& p) {
  p.done();
  json out = json::object();
  for (const auto& [n, v] : log::flags()) out[n] = v;
  return out;
}
json set_level(Params& p) {
  log::set_level(level_or_throw(p));
  return true;
}
json get_level(Params& p) {
  p.done();
  return log::level_name(log::level());
}
json set_print_level(Params& p) {
  log::set_print_level(level_or_throw(p));
  return true;
}
json get_print_level(Params& p) {
  p.done();
  return log::level_name(log::print_level());
}
}  // namespace

void register_app_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("spdk_get_version", rpc::kAnyState, get_version, kGetVersion);
  r.add("rpc_get_methods", rpc::kAnyState, get_methods, kGetMethods);
  r.add("framework_start_init", rpc::kStartup, start_init, kStartInit);
  r.add("framework_wait_init", rpc::kAnyState, wait_init, kWaitInit);
  r.add("framework_get_subsystems", rpc::kAnyState, get_subsystems, kGetSubsystems);
  r.add("framework_set_scheduler", rpc::kAnyState, set_scheduler, kSetScheduler);
  r.add("framework_get_scheduler", rpc::kRuntime, get_scheduler, kGetScheduler);
  r.add("framework_get_reactors", rpc::kRuntime, get_reactors, kGetReactors);
  r.add("spdk_kill_instance", rpc::kAnyState, kill_instance, kKillInstance);
  r.add("log_set_flag", rpc::kAnyState, enable_flag, kSetFlag);
  r.add("log_clear_flag", rpc::kAnyState, disable_flag, kClearFlag);
  r.add("log_get_flags", rpc::kAnyState, get_flags, kGetFlags);
  r.add("log_set_level", rpc::kAnyState, set_level, kSetLevel);
  r.add("log_get_level", rpc::kAnyState, get_level, kGetLevel);
  r.add("log_set_print_level", rpc::kAnyState, set_print_level, kSetPrintLevel);
  r.add("log_get_print_level", rpc::kAnyState, get_print_level, kGetPrintLevel);
}

}  // namespace nvemu::app
