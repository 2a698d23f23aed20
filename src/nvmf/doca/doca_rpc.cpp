// The DOCA NVMe Emulation app's RPCs, same names and shapes:
// nvmf_doca_get_managers, nvmf_doca_create_function, nvmf_doca_list_functions,
// nvmf_doca_destroy_function (+ nvmf_doca_create_manager, nvemu's own).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "nvmf/doca/manager.h"
#include "nvmf/target.h"
#include "nvmf/vfio_user/endpoint.h"
#include "reactor/reactor.h"
#include "rpc/registry.h"

namespace nvemu::nvmf::doca {
namespace {

using nlohmann::json;
using rpc::Params;

std::string manager_or_throw(Params& p) {
  std::string name = p.str("dev_name");
  if (!Managers::instance().has_manager(name))
    throw rpc::errno_error(ENODEV,
                           fmt::format("no emulation manager '{}' (nvmf_doca_get_managers "
                                       "lists: {})",
                                       name, fmt::join(Managers::instance().managers(), ", ")));
  return name;
}

// A function's state as a host would see it. Endpoint state lives on its
// reactor, so this asks there and answers on the main reactor.
void with_state(Function& f, std::function<void(json)> done) {
  json base = {{"vuid", f.vuid}, {"manager", f.manager}};
  if (!f.endpoint) {
    base["state"] = "created";
    base["socket"] = nullptr;
    done(base);
    return;
  }
  auto ep = f.endpoint;
  Reactor& main = ReactorSet::instance().main();
  ep->reactor().send([ep, base, done, &main]() mutable {
    json info = ep->info_json();
    main.send([info, base, done]() mutable {
      bool attached = info.value("client_attached", false);
      bool ready = info.value("controller_ready", false);
      base["state"] = !attached ? "listening" : ready ? "enabled" : "host attached";
      base["socket"] = info["socket"];
      base["subnqn"] = info["subnqn"];
      base["cntlid"] = info["cntlid"];
      if (attached) base["host_pid"] = info["client_pid"];
      done(base);
    });
  });
}

void list_functions(Params& p, const rpc::Responder& r) {
  std::string m = manager_or_throw(p);
  p.done();
  auto fns = Managers::instance().functions(m);
  auto out = std::make_shared<std::vector<json>>(fns.size());
  auto left = std::make_shared<size_t>(fns.size());
  if (fns.empty()) {
    r.result(json::array());
    return;
  }
  for (size_t i = 0; i < fns.size(); ++i) {
    with_state(*fns[i], [out, left, i, r](json j) {
      (*out)[i] = std::move(j);
      if (--*left == 0) r.result(*out);
    });
  }
}

void destroy_function(Params& p, const rpc::Responder& r) {
  std::string m = manager_or_throw(p);
  std::string vuid = p.str("vuid");
  p.done();
  Function* f = Managers::instance().find(vuid);
  if (!f || f->manager != m)
    throw rpc::errno_error(ENODEV, fmt::format("manager {} has no function '{}' "
                                               "(nvmf_doca_list_functions -d {})",
                                               m, vuid, m));
  with_state(*f, [r, vuid, m](json st) {
    std::string state = st["state"];
    if (state == "created") {
      Managers::instance().erase(vuid);
      r.result(true);
      return;
    }
    std::string holder =
        st.contains("host_pid")
            ? fmt::format("host pid {} holds it through {}", st["host_pid"].get<int>(),
                          st["socket"].get<std::string>())
            : fmt::format("it is plugged for {} at {}", st["subnqn"].get<std::string>(),
                          st["socket"].get<std::string>());
    std::string fix =
        state == "listening"
            ? fmt::format(
                  "remove the listener first: nvmf_subsystem_remove_listener {} -t DOCA "
                  "-a {}",
                  st["subnqn"].get<std::string>(), vuid)
            : fmt::format(
                  "detach the host driver first (unbind the guest's nvme driver or "
                  "close the vfio-user client), then nvmf_subsystem_remove_listener {} "
                  "-t DOCA -a {}",
                  st["subnqn"].get<std::string>(), vuid);
    r.error(-EBUSY, fmt::format("Device or resource busy: function {} of {} is in state '{}': "
                                "{}; {}",
                                vuid, m, state, holder, fix));
  });
}

json get_managers(Params& p) {
  p.done();
  json out = json::array();
  for (const auto& m : Managers::instance().managers()) out.push_back({{"name", m}});
  return out;
}

json create_manager(Params& p) {
  std::string name = p.str("name");
  p.done();
  if (name.empty() || name.find('/') != std::string::npos)
    throw rpc::invalid_params("name must be a non-empty word without '/'");
  if (!Managers::instance().add_manager(name))
    throw rpc::errno_error(EEXIST, fmt::format("emulation manager '{}' already exists", name));
  return true;
}

json create_function(Params& p) {
  std::string m = manager_or_throw(p);
  // "vuid" is nvemu's own: save_config writes it so a restarted target
  // offers the same VUID, hence the same socket path, to a host.
  std::optional<std::string> vuid = p.opt_str("vuid");
  p.done();
  if (!vuid) return Managers::instance().create_function(m);
  if (vuid->empty() || vuid->find('/') != std::string::npos || *vuid == "." || *vuid == "..")
    throw rpc::invalid_params("vuid must be a non-empty word without '/'");
  if (!Managers::instance().create_function(m, *vuid))
    throw rpc::errno_error(EEXIST, fmt::format("function {} already exists "
                                               "(nvmf_doca_list_functions lists them)",
                                               *vuid));
  return *vuid;
}

const rpc::ErrorDoc kNoManager{-ENODEV, "no emulation manager named dev_name"};
const rpc::MethodDoc kGetManagers{
    "Lists the emulation managers (software stand-ins for a "
    "BlueField's emulation-capable devices).",
    "array of {name}",
    {{rpc::kInvalidParams, "params given: the method takes none"}}};
const rpc::MethodDoc kCreateManager{
    "Adds an emulation manager (nvemu's own; a DPU has them in hardware).",
    "true",
    {{rpc::kInvalidParams, "name empty or containing '/'"},
     {-EEXIST, "a manager with that name exists"}}};
const rpc::MethodDoc kCreateFunction{
    "Creates an emulated PCIe function on a manager, unplugged until a DOCA listener names it.",
    "the function's VUID (string)",
    {kNoManager,
     {rpc::kInvalidParams, "vuid empty, containing '/', \".\" or \"..\""},
     {-EEXIST, "a function with that vuid exists"}}};
const rpc::MethodDoc kListFunctions{
    "The manager's functions with their state (created, listening, host attached, enabled).",
    "array of {vuid, manager, state, socket, subnqn, cntlid, host_pid}",
    {kNoManager}};
const rpc::MethodDoc kDestroyFunction{
    "Destroys a function that is not plugged (state created).",
    "true",
    {kNoManager,
     {-ENODEV, "the manager has no function with that vuid"},
     {-EBUSY, "the function is listening or held by a host (the message says who and the fix)"}}};

}  // namespace

void register_rpcs() {
  auto& reg = rpc::Registry::instance();
  reg.add("nvmf_doca_get_managers", rpc::kAnyState, get_managers, kGetManagers);
  reg.add("nvmf_doca_create_manager", rpc::kAnyState, create_manager, kCreateManager);
  reg.add("nvmf_doca_create_function", rpc::kRuntime, create_function, kCreateFunction);
  reg.add_async("nvmf_doca_list_functions", rpc::kRuntime, list_functions, kListFunctions);
  reg.add_async("nvmf_doca_destroy_function", rpc::kRuntime, destroy_function, kDestroyFunction);
}

}  // namespace nvemu::nvmf::doca
