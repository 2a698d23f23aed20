// nvemu-tgt: the NVMe emulation target, started like the DOCA NVMe
// Emulation app it stands in for:
//   nvemu-tgt -m 0x3 --main-core 0 -s 1024 --no-pci --wait-for-rpc
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>

#include "app/app.h"
#include "rpc/registry.h"

namespace {

// Hidden: every registered JSON-RPC method with the framework states it is
// allowed in and its doc (description, result, errors), for docs/gen-rpc.py
// (docs/rpc.md comes from the registry).
int dump_rpc_methods() {
  nvemu::app::register_transports();
  nvemu::app::register_all_rpcs();
  auto& r = nvemu::rpc::Registry::instance();
  auto startup = r.names(nvemu::rpc::kStartup), runtime = r.names(nvemu::rpc::kRuntime);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& n : startup) out[n]["startup"] = true;
  for (const auto& n : runtime) out[n]["runtime"] = true;
  for (auto& [name, v] : out.items()) {
    v["startup"] = v.value("startup", false);
    v["runtime"] = v.value("runtime", false);
    const nvemu::rpc::MethodDoc* doc = r.doc(name);
    v["description"] = doc->description;
    v["result"] = doc->result;
    v["errors"] = nlohmann::json::array();
    for (const auto& e : doc->errors) v["errors"].push_back({{"code", e.code}, {"when", e.when}});
  }
  fmt::print("{}\n", out.dump(2));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--dump-rpc-methods") return dump_rpc_methods();
  nvemu::app::Options opts;
  std::string message;
  int code = 0;
  if (!nvemu::app::parse_options(argc, argv, &opts, &message, &code)) {
    std::fputs(message.c_str(), code ? stderr : stdout);
    if (!message.empty() && message.back() != '\n') std::fputc('\n', code ? stderr : stdout);
    return code;
  }
  return nvemu::app::run(opts);
}
