// Client-side commands: save_config and load_config as rpc.py implements
// them (python/spdk/rpc/__init__.py), and `call`, the raw method sender.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "commands.h"

namespace nvemu::rpccli {
namespace {

bool contains(const Json& list, const std::string& method) {
  if (!list.is_array()) return false;
  return std::any_of(list.begin(), list.end(), [&](const Json& m) {
    return m.is_string() && m.get<std::string>() == method;
  });
}

// rpc.py's _json_load: stdin, an existing file, or else the text itself.
Json load_json(const Namespace& args) {
  std::string text, from;
  const std::string src = args.str("json_conf");
  struct stat st {};
  if (!args.has("json_conf") || src == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    from = "stdin";
  } else if (::stat(src.c_str(), &st) == 0) {
    std::ifstream in(src);
    if (!in) throw CommandError(fmt::format("ERROR: cannot read {}", src), 1);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    from = src;
  } else {
    text = src;
    from = "-j";
  }
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    if (from == "-j")
      throw CommandError(fmt::format("ERROR: -j {}: no such file, and not JSON text either", src),
                         1);
    throw CommandError(
        fmt::format("ERROR: the configuration from {} is not valid JSON: {}", from, e.what()), 1);
  }
}

}  // namespace

int save_config(Context& ctx) {
  const int indent = ctx.args.has("indent") ? static_cast<int>(ctx.args.integer("indent")) : 2;
  Json config = {{"subsystems", Json::array()}};
  Json subsystems = ctx.client.call("framework_get_subsystems");
  if (subsystems.is_array()) {
    for (const auto& elem : subsystems) {
      const Json& name = elem.at("subsystem");
      Json entry;
      entry["subsystem"] = name;
      entry["config"] = ctx.client.call("framework_get_config", {{"name", name}});
      config["subsystems"].push_back(entry);
    }
  }
  if (ctx.client.dry_run()) return 0;
  const std::string text = py_dumps(config, indent < 0 ? -1 : indent) + "\n";
  if (!ctx.args.has("output")) {
    std::cout << text << std::flush;
    return 0;
  }
  const std::string path = ctx.args.str("output");
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw CommandError(fmt::format("ERROR: cannot write {}", path), 1);
  return 0;
}

int load_config(Context& ctx) {
  Json conf = load_json(ctx.args);
  if (!conf.is_object() || !conf.contains("subsystems") || !conf["subsystems"].is_array())
    throw CommandError(
        "ERROR: the configuration has no \"subsystems\" array "
        "(save_config writes one)",
        1);
  const bool aliases = ctx.args.flag("include_aliases");

  // Subsystems with something to configure, each a queue of method calls.
  Json subsystems = Json::array();
  for (const auto& s : conf["subsystems"]) {
    if (!s.is_object() || !s.contains("config") || !s["config"].is_array() || s["config"].empty())
      continue;
    subsystems.push_back(s);
  }

  if (ctx.client.dry_run()) {  // show what would be sent, in file order
    for (const auto& s : subsystems)
      for (const auto& e : s["config"])
        ctx.client.call(e.value("method", ""), e.value("params", Json::object()));
    return 0;
  }

  Json allowed = ctx.client.call("rpc_get_methods", {{"include_aliases", aliases}});
  if (subsystems.empty()) {
    if (contains(allowed, "framework_start_init")) ctx.client.call("framework_start_init");
    return 0;
  }
  for (const auto& s : subsystems)
    for (const auto& e : s["config"]) {
      if (!e.is_object() || !e.contains("method") || !e["method"].is_string())
        throw RpcException("Unknown method was included in the config file: an entry of " +
                           s.value("subsystem", std::string("?")) + " has no \"method\"");
      if (!contains(allowed, e["method"].get<std::string>()))
        throw RpcException(
            "Unknown method was included in the config file: " + e["method"].get<std::string>() +
            " (rpc_get_methods lists the known ones)");
    }

  // Call what the target accepts in its current state, start the framework
  // when it can be, and repeat until nothing more can run.
  while (!subsystems.empty()) {
    Json current =
        ctx.client.call("rpc_get_methods", {{"current", true}, {"include_aliases", aliases}});
    bool progressed = false;
    Json remaining = Json::array();
    for (auto& s : subsystems) {
      Json left = Json::array();
      for (const auto& e : s["config"]) {
        const std::string method = e["method"].get<std::string>();
        if (!contains(current, method)) {
          left.push_back(e);
          continue;
        }
        ctx.client.call(method, e.value("params", Json::object()));
        progressed = true;
      }
      if (!left.empty()) {
        s["config"] = left;
        remaining.push_back(s);
      }
    }
    subsystems = remaining;
    if (contains(current, "framework_start_init")) {
      ctx.client.call("framework_start_init");
      progressed = true;
    }
    if (!progressed) break;
  }

  if (!subsystems.empty()) {
    std::string skipped;
    for (const auto& s : subsystems)
      for (const auto& e : s["config"]) skipped += "\n  " + e["method"].get<std::string>();
    std::cerr << "Some configs were skipped because the RPC state that can call them passed over."
              << skipped << std::endl;
  }
  return 0;
}

int raw_call(Context& ctx) {
  const std::string method = ctx.args.str("method");
  Json params = Json::object();
  bool given = ctx.args.has("params");
  if (given) params = Json::parse(ctx.args.str("params"));  // validated by the parser
  Json result = ctx.client.call(method, params, given);
  if (!ctx.client.dry_run()) std::cout << print_dict_text(result) << std::endl;
  return 0;
}

}  // namespace nvemu::rpccli
