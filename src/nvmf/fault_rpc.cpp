// nvmf_fault_inject / nvmf_fault_list / nvmf_fault_clear (nvemu's own; see
// fault.h and docs/faults.md). Parse every parameter first, then act: a bad
// request leaves no fault behind.
#include <fmt/format.h>

#include <map>

#include "common/log.h"
#include "nvmf/controller.h"
#include "nvmf/fault.h"
#include "nvmf/nvmf_rpc.h"
#include "nvmf/target.h"
#include "reactor/reactor.h"
#include "rpc/registry.h"

namespace nvemu::nvmf {
namespace {

using nlohmann::json;
using rpc::Params;
using Action = Fault::Action;

// Main thread only.
struct Registry {
  std::map<uint64_t, std::shared_ptr<Fault>> faults;
  uint64_t next_id = 1;
  FaultList list() const {
    FaultList out;
    for (const auto& [id, f] : faults) out.push_back(f);
    return out;
  }
};
Registry& registry() {
  static Registry r;
  return r;
}

Action parse_action(const std::string& a) {
  static const std::map<std::string, Action> names = {{"status", Action::kStatus},
                                                      {"no_completion", Action::kNoCompletion},
                                                      {"delay", Action::kDelay},
                                                      {"cfs", Action::kCfs},
                                                      {"drop_connection", Action::kDropConnection},
                                                      {"surprise_remove", Action::kSurpriseRemove}};
  auto it = names.find(a);
  if (it == names.end())
    throw rpc::invalid_params(fmt::format(
        "unknown action '{}'; use one of status, no_completion, delay, cfs, drop_connection, "
        "surprise_remove",
        a));
  return it->second;
}

// Parameters that only some actions take: naming one for another action is
// a mistake worth reporting rather than ignoring.
void only_for(const Params& p, const char* key, bool allowed, const char* which) {
  if (p.raw().is_object() && p.raw().contains(key) && !allowed)
    throw rpc::invalid_params(fmt::format("'{}' applies to action {} only", key, which));
}

std::shared_ptr<Fault> parse_fault(Params& p) {
  auto f = std::make_shared<Fault>();
  f->nqn = p.str("nqn");
  f->action = parse_action(p.str("action"));
  f->cntlid = p.opt_u16("cntlid");
  f->nsid = p.opt_u32("nsid");
  if (auto op = p.opt_u32("opcode")) {
    if (*op > 0xff) throw rpc::invalid_params(fmt::format("opcode {} is not a byte (0..255)", *op));
    f->opcode = static_cast<uint8_t>(*op);
  }
  if (auto q = p.opt_str("queue")) {
    if (*q == "admin")
      f->queue = Fault::Queue::kAdmin;
    else if (*q == "io")
      f->queue = Fault::Queue::kIo;
    else
      throw rpc::invalid_params(fmt::format("queue '{}' must be admin or io", *q));
  }

  bool status = f->action == Action::kStatus;
  bool command = f->is_command_fault();
  for (const char* k : {"sct", "sc", "dnr", "more"}) only_for(p, k, status, "status");
  for (const char* k : {"count", "probability", "seed"})
    only_for(p, k, command, "status, no_completion or delay");
  for (const char* k : {"opcode", "queue", "nsid"})
    only_for(p, k, command, "status, no_completion or delay");
  only_for(p, "delay_us", f->action == Action::kDelay, "delay");
  only_for(p, "vuid", f->action == Action::kSurpriseRemove, "surprise_remove");
  if (f->opcode && f->queue == Fault::Queue::kAny)
    throw rpc::invalid_params(
        fmt::format("opcode {:#04x} needs queue admin or io: opcodes differ per queue (02h is Get "
                    "Log Page on the admin queue, Read on an I/O queue)",
                    *f->opcode));

  if (status) {
    uint32_t sct = p.opt_u32("sct").value_or(0);
    if (sct > 7)
      throw rpc::invalid_params(fmt::format("sct {} is not a status code type (0..7)", sct));
    uint32_t sc = p.u32("sc");
    if (sc > 0xff) throw rpc::invalid_params(fmt::format("sc {} is not a byte (0..255)", sc));
    if (sct == 0 && sc == 0)
      throw rpc::invalid_params(
          "sct 0 sc 0 is Successful Completion; name a failure (e.g. sct 0 sc 6, Internal Error, "
          "or sct 2 sc 0x81, Unrecovered Read Error)");
    f->status.sct = static_cast<nvme::Sct>(sct);
    f->status.sc = static_cast<uint8_t>(sc);
    f->status.dnr = p.opt_bool("dnr").value_or(false);
    f->status.more = p.opt_bool("more").value_or(false);
  }
  f->count = p.opt_u64("count").value_or(0);
  if (const json* pr = p.opt_value("probability")) {
    if (!pr->is_number()) throw rpc::invalid_params("probability must be a number between 0 and 1");
    double v = pr->get<double>();
    if (!(v >= 0.0 && v <= 1.0))
      throw rpc::invalid_params(fmt::format("probability {} is outside 0..1", v));
    f->probability = v;
  }
  f->seed = p.opt_u64("seed").value_or(0);
  if (p.raw().is_object() && p.raw().contains("seed") && !p.raw().contains("probability"))
    throw rpc::invalid_params("seed goes with probability (it seeds the draws)");
  if (f->action == Action::kDelay) {
    f->delay_us = p.u64("delay_us");
    if (f->delay_us == 0 || f->delay_us > 3600ull * 1000000)
      throw rpc::invalid_params("delay_us must be 1..3600000000 (one hour)");
  }
  f->vuid = p.opt_str("vuid").value_or("");
  p.done();

  auto subsys = Target::instance().find_subsystem(f->nqn);
  if (!subsys)
    throw rpc::invalid_params(fmt::format("Unable to find subsystem with NQN {}", f->nqn));
  if (f->cntlid && !subsys->find_controller(*f->cntlid) && !command)
    throw rpc::errno_error(ENODEV, fmt::format("{} has no controller {} "
                                               "(nvmf_subsystem_get_controllers lists them)",
                                               f->nqn, *f->cntlid));
  return f;
}

// The one-shot actions. Returns how many controllers/functions were hit.
uint64_t act_now(const Fault& f) {
  auto subsys = Target::instance().find_subsystem(f.nqn);
  if (f.action == Action::kSurpriseRemove) {
    std::vector<ListenAddress> gone;
    for (const auto& l : subsys->listeners())
      if (l.trtype == "DOCA" && (f.vuid.empty() || l.traddr == f.vuid)) gone.push_back(l);
    if (gone.empty())
      throw rpc::errno_error(
          ENODEV,
          f.vuid.empty()
              ? fmt::format("{} has no DOCA function plugged (nvmf_subsystem_add_listener {} -t "
                            "DOCA -a VUID plugs one)",
                            f.nqn, f.nqn)
              : fmt::format("DOCA function {} is not plugged for {} "
                            "(nvmf_subsystem_get_listeners {} lists them)",
                            f.vuid, f.nqn, f.nqn));
    for (const auto& l : gone) {
      LOG_WARN("nvmf", "fault {}: surprise removal of DOCA function {} of {}", f.id, l.traddr,
               f.nqn);
      release_listener(*subsys, l);
    }
    return gone.size();
  }
  std::vector<std::shared_ptr<Controller>> hit;
  for (auto& c : subsys->controllers())
    if (!f.cntlid || c->cntlid() == *f.cntlid) hit.push_back(c);
  if (hit.empty())
    throw rpc::errno_error(ENODEV, fmt::format("{} has no controller{} to {}: no host is "
                                               "connected (nvmf_subsystem_get_controllers)",
                                               f.nqn, f.cntlid ? fmt::format(" {}", *f.cntlid) : "",
                                               Fault::action_name(f.action)));
  for (auto& c : hit) {
    if (f.action == Action::kCfs)
      c->raise_cfs();
    else
      c->drop_connection();
  }
  return hit.size();
}

void inject(Params& p, const rpc::Responder& r) {
  std::shared_ptr<Fault> f = parse_fault(p);
  Registry& reg = registry();
  f->id = reg.next_id;
  if (!f->is_command_fault()) {
    f->hits = act_now(*f);  // throws before the fault is kept
    ++reg.next_id;
    reg.faults[f->id] = f;
    r.result(f->id);
    return;
  }
  ++reg.next_id;
  reg.faults[f->id] = f;
  LOG_NOTICE("nvmf", "fault {} armed: {}", f->id, f->to_json().dump());
  uint64_t id = f->id;
  fault::publish(reg.list(), [r, id] { r.result(id); });
}

void clear(Params& p, const rpc::Responder& r) {
  auto id = p.opt_u64("id");
  p.done();
  Registry& reg = registry();
  if (id) {
    if (!reg.faults.erase(*id))
      throw rpc::errno_error(ENOENT,
                             fmt::format("no fault with id {} (nvmf_fault_list lists them)", *id));
  } else {
    reg.faults.clear();
  }
  fault::publish(reg.list(), [r] { r.result(true); });
}

json list(Params& p) {
  auto nqn = p.opt_str("nqn");
  p.done();
  json out = json::array();
  for (const auto& [id, f] : registry().faults)
    if (!nqn || f->nqn == *nqn) out.push_back(f->to_json());
  return out;
}

const rpc::MethodDoc kInject{
    "Arms a command fault (status, no_completion, delay: on matching commands, count times or "
    "with a probability) or acts at once (cfs, drop_connection, surprise_remove); see "
    "docs/faults.md.",
    "the fault's id (integer)",
    {{rpc::kInvalidParams,
      "unknown action; a parameter of another action; opcode without "
      "queue; bad sct/sc/probability/delay_us; seed without probability; "
      "no subsystem with that nqn"},
     {-ENODEV,
      "cntlid names no controller; no controller connected (cfs, drop_connection); no "
      "DOCA function plugged or vuid not plugged (surprise_remove)"}}};
const rpc::MethodDoc kClear{
    "Disarms one fault by id, or all.", "true", {{-ENOENT, "no fault with that id"}}};
const rpc::MethodDoc kList{"The faults armed or done, optionally of one subsystem.",
                           "array of {id, nqn, action, hits, ...the fault's parameters}",
                           {{rpc::kInvalidParams, "nqn not a string; an unknown key"}}};

}  // namespace

void register_fault_rpcs() {
  auto& reg = rpc::Registry::instance();
  reg.add_async("nvmf_fault_inject", rpc::kRuntime, inject, kInject);
  reg.add_async("nvmf_fault_clear", rpc::kRuntime, clear, kClear);
  reg.add("nvmf_fault_list", rpc::kRuntime, list, kList);
}

}  // namespace nvemu::nvmf
