// bdev_nvme's RPCs, as SPDK v23.01's module/bdev/nvme/bdev_nvme_rpc.c:
// bdev_nvme_set_options, bdev_nvme_set_hotplug, bdev_nvme_attach_controller
// (asynchronous: the connection is made on a worker thread),
// bdev_nvme_detach_controller, bdev_nvme_get_controllers and
// bdev_nvme_reset_controller; and the module's save_config entries.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "bdev/nvme/ctrlr.h"
#include "bdev/nvme/options.h"
#include "common/auth/dhchap.h"
#include "common/log.h"
#include "reactor/offload.h"
#include "rpc/registry.h"

namespace nvemu::bdev::nvme {
namespace {

using nlohmann::json;
using rpc::Params;

// Names with an attach on a worker thread right now: a second attach of
// the same name waits for nothing and is refused.
std::set<std::string>& attaching() {
  static std::set<std::string> s;
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

rpc::RpcError einval(const std::string& msg) {
  return rpc::RpcError(-EINVAL, msg);
}

// SPDK 24.x's bdev_nvme_set_options dhchap_digests / dhchap_dhgroups: names
// -> a bitmask of identifiers.
template <typename Lookup>
void dhchap_option(Params& p, const char* key, Lookup lookup, const char* known, uint32_t* bits) {
  const json* v = p.opt_value(key);
  if (!v) return;
  if (!v->is_array() || v->empty())
    throw rpc::invalid_params(
        fmt::format("{} must be a non-empty array of names ({})", key, known));
  uint32_t b = 0;
  for (const auto& e : *v) {
    auto id = e.is_string() ? lookup(e.get<std::string>()) : std::nullopt;
    if (!id)
      throw rpc::invalid_params(fmt::format("{}: {} is not one of {}", key, e.dump(), known));
    b |= 1u << static_cast<unsigned>(*id);
  }
  *bits = b;
}

json set_options(Params& p) {
  ModuleOptions o = options();
  if (auto v = p.opt_str("action_on_timeout")) {
    if (*v != "none" && *v != "reset" && *v != "abort")
      throw rpc::invalid_params("action_on_timeout must be none, reset or abort");
    o.action_on_timeout = *v;
  }
  if (auto v = p.opt_u64("timeout_us")) o.timeout_us = *v;
  if (auto v = p.opt_u64("timeout_admin_us")) o.timeout_admin_us = *v;
  if (auto v = p.opt_u32("keep_alive_timeout_ms")) o.keep_alive_timeout_ms = *v;
  if (auto v = p.opt_u32("retry_count")) o.transport_retry_count = *v;  // deprecated alias
  if (auto v = p.opt_u32("transport_retry_count")) o.transport_retry_count = *v;
  if (auto v = p.opt_u32("arbitration_burst")) o.arbitration_burst = *v;
  if (auto v = p.opt_u32("low_priority_weight")) o.low_priority_weight = *v;
  if (auto v = p.opt_u32("medium_priority_weight")) o.medium_priority_weight = *v;
  if (auto v = p.opt_u32("high_priority_weight")) o.high_priority_weight = *v;
  if (auto v = p.opt_u64("nvme_adminq_poll_period_us")) o.nvme_adminq_poll_period_us = *v;
  if (auto v = p.opt_u64("nvme_ioq_poll_period_us")) o.nvme_ioq_poll_period_us = *v;
  if (auto v = p.opt_u32("io_queue_requests")) o.io_queue_requests = *v;
  if (auto v = p.opt_bool("delay_cmd_submit")) o.delay_cmd_submit = *v;
  if (auto v = p.opt_i64("bdev_retry_count")) o.bdev_retry_count = static_cast<int32_t>(*v);
  if (auto v = p.opt_u32("transport_ack_timeout"))
    o.transport_ack_timeout = static_cast<uint8_t>(*v);
  if (auto v = p.opt_i64("ctrlr_loss_timeout_sec"))
    o.resiliency.ctrlr_loss_timeout_sec = static_cast<int32_t>(*v);
  if (auto v = p.opt_u32("reconnect_delay_sec")) o.resiliency.reconnect_delay_sec = *v;
  if (auto v = p.opt_u32("fast_io_fail_timeout_sec")) o.resiliency.fast_io_fail_timeout_sec = *v;
  if (auto v = p.opt_bool("disable_auto_failback")) o.disable_auto_failback = *v;
  if (auto v = p.opt_bool("generate_uuids")) o.generate_uuids = *v;
  if (auto v = p.opt_u32("transport_tos")) o.transport_tos = static_cast<uint8_t>(*v);
  if (auto v = p.opt_bool("nvme_error_stat")) o.nvme_error_stat = *v;
  if (auto v = p.opt_u32("rdma_srq_size")) o.rdma_srq_size = *v;
  if (auto v = p.opt_bool("io_path_stat")) o.io_path_stat = *v;
  dhchap_option(p, "dhchap_digests", auth::hash_from_name, "sha256, sha384, sha512",
                &o.dhchap_digests);
  dhchap_option(p, "dhchap_dhgroups", auth::dhgroup_from_name,
                "null, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192", &o.dhchap_dhgroups);
  // Keys of newer SPDK versions: kept, written back, and said so.
  if (p.raw().is_object())
    for (const auto& [k, v] : p.raw().items())
      if (!p.seen(k)) {
        LOG_WARN("bdev_nvme",
                 "bdev_nvme_set_options: '{}' is not an SPDK v23.01 option; kept "
                 "for save_config, no effect",
                 k);
        o.unknown[k] = v;
      }
  if (o.timeout_us == 0 && o.timeout_admin_us != 0)
    throw rpc::errno_error(EINVAL, "timeout_admin_us needs timeout_us to be set too");
  if (o.bdev_retry_count < -1)
    throw rpc::errno_error(EINVAL, "bdev_retry_count can't be less than -1");
  std::string why = check_resiliency(o.resiliency);
  if (!why.empty()) throw rpc::errno_error(EINVAL, why);
  if (!ctrlrs().empty())
    throw rpc::RpcError(-EPERM, "RPC not permitted with nvme controllers already attached");
  options() = o;
  return true;
}

json set_hotplug(Params& p) {
  bool enable = p.boolean("enable");
  p.opt_u64("period_us");
  p.done();
  if (enable)
    throw rpc::invalid_params(
        "bdev_nvme_set_hotplug enable=true: nvemu's bdev_nvme attaches NVMe-oF and vfio-user "
        "controllers by bdev_nvme_attach_controller; there are no local PCIe devices to hot plug");
  return true;
}

struct AttachReq {
  std::string name;
  Trid trid;
  PathOptions popts;
  Resiliency res;
  std::string multipath = "disable";
};

AttachReq parse_attach(Params& p) {
  AttachReq a;
  a.name = p.str("name");
  std::string trtype = p.str("trtype");
  a.trid.traddr = p.str("traddr");
  auto adrfam = p.opt_str("adrfam");
  auto trsvcid = p.opt_str("trsvcid");
  p.opt_str("priority");
  auto subnqn = p.opt_str("subnqn");
  auto hostnqn = p.opt_str("hostnqn");
  auto hostaddr = p.opt_str("hostaddr");
  auto hostsvcid = p.opt_str("hostsvcid");
  bool reftag = p.opt_bool("prchk_reftag").value_or(false);
  bool guard = p.opt_bool("prchk_guard").value_or(false);
  a.popts.hdgst = p.opt_bool("hdgst").value_or(false);
  a.popts.ddgst = p.opt_bool("ddgst").value_or(false);
  auto fabrics_us = p.opt_u64("fabrics_connect_timeout_us");
  auto multipath = p.opt_str("multipath");
  auto num_io_queues = p.opt_u32("num_io_queues");
  const Resiliency& def = options().resiliency;
  a.res.ctrlr_loss_timeout_sec = static_cast<int32_t>(
      p.opt_i64("ctrlr_loss_timeout_sec").value_or(def.ctrlr_loss_timeout_sec));
  a.res.reconnect_delay_sec = p.opt_u32("reconnect_delay_sec").value_or(def.reconnect_delay_sec);
  a.res.fast_io_fail_timeout_sec =
      p.opt_u32("fast_io_fail_timeout_sec").value_or(def.fast_io_fail_timeout_sec);
  auto psk = p.opt_str("psk");
  auto dhchap_key = p.opt_str("dhchap_key");
  auto dhchap_ctrlr_key = p.opt_str("dhchap_ctrlr_key");
  p.done();

  if (a.name.empty()) throw einval("name must not be empty");
  // SPDK 24.x: keyring names; a missing key is -ENOKEY.
  for (auto [name, out] : {std::pair{&dhchap_key, &a.popts.dhchap_key},
                           std::pair{&dhchap_ctrlr_key, &a.popts.dhchap_ctrlr_key}}) {
    if (!*name) continue;
    *out = keyring::Keyring::instance().find(**name);
    if (!*out)
      throw rpc::errno_error(ENOKEY, fmt::format("no key named '{}' in the keyring (add it with "
                                                 "keyring_file_add_key)",
                                                 **name));
  }
  if (dhchap_ctrlr_key && !dhchap_key)
    throw einval("dhchap_ctrlr_key requires dhchap_key (the host authenticates first)");
  std::string t = lower(trtype);
  if (t == "tcp")
    a.trid.trtype = Trtype::kTcp;
  else if (t == "vfiouser")
    a.trid.trtype = Trtype::kVfioUser;
  else
    throw einval(fmt::format(
        "Failed to parse trtype: {} (nvemu's bdev_nvme attaches trtype tcp or vfiouser)", trtype));
  if (adrfam) {
    std::string f = lower(*adrfam);
    if (f == "ipv4")
      a.trid.adrfam = "IPv4";
    else if (f == "ipv6")
      a.trid.adrfam = "IPv6";
    else
      throw einval(fmt::format("Failed to parse adrfam: {} (use ipv4 or ipv6)", *adrfam));
  }
  if (a.trid.traddr.size() > 255) throw einval(fmt::format("traddr too long: {}", a.trid.traddr));
  if (subnqn && subnqn->size() > 223) throw einval(fmt::format("subnqn too long: {}", *subnqn));
  if (multipath) {
    if (*multipath != "disable" && *multipath != "failover" && *multipath != "multipath")
      throw rpc::invalid_params(
          fmt::format("multipath must be disable, failover or multipath, not '{}'", *multipath));
    if (*multipath == "multipath")
      throw einval(
          "multipath 'multipath' (active-active) is not supported by nvemu; use "
          "'failover'");
    a.multipath = *multipath;
  }
  if (num_io_queues && (*num_io_queues == 0))
    throw einval("num_io_queues out of bounds, min: 1 max: 65536");
  if (reftag || guard)
    throw einval("prchk_reftag/prchk_guard: nvemu namespaces carry no protection information");
  if (psk) throw einval("psk: NVMe/TCP TLS is not supported by nvemu; attach without it");
  if (a.trid.trtype == Trtype::kTcp) {
    if (!subnqn || subnqn->empty())
      throw einval(
          "subnqn is required for trtype tcp (the remote subsystem's NQN, from "
          "nvmf_get_subsystems on that target)");
    a.trid.trsvcid = trsvcid.value_or("4420");
    char* end = nullptr;
    unsigned long port = std::strtoul(a.trid.trsvcid.c_str(), &end, 10);
    if (a.trid.trsvcid.empty() || *end || port == 0 || port > 65535)
      throw einval(fmt::format("trsvcid '{}' is not a TCP port (1-65535)", a.trid.trsvcid));
  } else if (trsvcid) {
    a.trid.trsvcid = *trsvcid;
  }
  if (subnqn) a.trid.subnqn = *subnqn;
  if (hostaddr) a.trid.hostaddr = *hostaddr;
  if (hostsvcid) a.trid.hostsvcid = *hostsvcid;
  if (hostnqn) a.popts.hostnqn = *hostnqn;
  a.popts.kato_ms = options().keep_alive_timeout_ms;
  a.popts.dhchap_digests = options().dhchap_digests;
  a.popts.dhchap_dhgroups = options().dhchap_dhgroups;
  a.popts.transport_retry_count = options().transport_retry_count;
  if (fabrics_us)
    a.popts.timeout_ms = static_cast<int>(std::max<uint64_t>(*fabrics_us / 1000, 100));
  std::string why = check_resiliency(a.res);
  if (!why.empty()) throw rpc::errno_error(EINVAL, why);
  return a;
}

// A second path for an existing controller (multipath failover), after
// SPDK's checks; the new path is connected once to be sure it leads to the
// same subsystem, then closed until a failover needs it.
void add_path(const std::shared_ptr<Ctrlr>& c, AttachReq a, const rpc::Responder& resp) {
  if (a.multipath == "disable")
    throw rpc::RpcError(-EALREADY,
                        fmt::format("A controller named {} already exists and multipath is "
                                    "disabled; pick another name, or pass multipath failover to "
                                    "add this as a second path",
                                    a.name));
  for (const auto& t : c->trids())
    if (t.same_path(a.trid))
      throw rpc::RpcError(-EALREADY,
                          fmt::format("A controller named {} already exists with the specified "
                                      "network path",
                                      a.name));
  if (a.trid.subnqn != c->active_trid().subnqn)
    throw einval(
        fmt::format("A controller named {} already exists, but uses a different subnqn "
                    "({})",
                    a.name, c->active_trid().subnqn));
  if (a.popts.hostnqn.empty()) a.popts.hostnqn = c->path_options().hostnqn;
  if (a.popts.hostnqn != c->path_options().hostnqn)
    throw einval(
        fmt::format("A controller named {} already exists, but uses a different hostnqn "
                    "({})",
                    a.name, c->path_options().hostnqn));
  if (a.trid.trtype != c->active_trid().trtype)
    throw einval(
        fmt::format("A controller named {} already exists over {}; a failover path must "
                    "use the same trtype",
                    a.name, c->active_trid().trtype_str()));
  attaching().insert(a.name);
  auto conn = std::make_shared<Connection>();
  Trid t = a.trid;
  PathOptions po = c->path_options();
  offload([conn, t, po] { *conn = connect_all(t, po, {}, 0); },
          [conn, a, t, resp] {
            attaching().erase(a.name);
            auto c = find_ctrlr(a.name);
            if (!conn->error.empty()) {
              resp.error(rpc::errno_error(conn->err_no, conn->error));
              return;
            }
            if (!c) {
              resp.error(rpc::errno_error(
                  ENODEV, fmt::format("controller {} went away meanwhile", a.name)));
              return;
            }
            if (conn->info.sn != c->info().sn || conn->info.subnqn != c->info().subnqn) {
              resp.error(einval(
                  fmt::format("{} leads to a different controller (serial {} vs {}); a failover "
                              "path must reach the same subsystem",
                              t.describe(), conn->info.sn, c->info().sn)));
              return;
            }
            c->add_trid(a.trid);
            LOG_NOTICE("bdev_nvme", "{}: failover path {} added", a.name, t.describe());
            resp.result(json::array());
          });
}

void attach(Params& p, const rpc::Responder& resp) {
  AttachReq a = parse_attach(p);
  if (attaching().count(a.name))
    throw rpc::RpcError(-EALREADY, fmt::format("controller {} is being attached right now; wait "
                                               "for that bdev_nvme_attach_controller to answer",
                                               a.name));
  if (auto c = find_ctrlr(a.name)) {
    add_path(c, std::move(a), resp);
    return;
  }
  attaching().insert(a.name);
  auto conn = std::make_shared<Connection>();
  std::vector<char> wanted = initially_wanted(a.trid.trtype);
  uint16_t depth = static_cast<uint16_t>(options().io_queue_requests);
  Trid t = a.trid;
  PathOptions po = a.popts;
  offload([conn, t, po, wanted, depth] { *conn = connect_all(t, po, wanted, depth); },
          [conn, a, resp] {
            attaching().erase(a.name);
            if (!conn->error.empty()) {
              LOG_ERROR("bdev_nvme", "bdev_nvme_attach_controller {}: {}", a.name, conn->error);
              resp.error(rpc::errno_error(conn->err_no, conn->error));
              return;
            }
            PathOptions po = a.popts;
            if (po.hostnqn.empty())
              po.hostnqn = "nqn.2014-08.org.nvmexpress:uuid:6e76656d-7500-4000-8000-000000000001";
            auto c = std::make_shared<Ctrlr>(a.name, a.trid, po, a.res);
            c->init();
            ctrlrs()[a.name] = c;
            c->take_over(std::move(*conn));
            json names = json::array();
            for (const auto& n : c->bdev_names()) names.push_back(n);
            resp.result(names);
          });
}

json detach(Params& p) {
  std::string name = p.str("name");
  auto trtype = p.opt_str("trtype");
  auto traddr = p.opt_str("traddr");
  auto adrfam = p.opt_str("adrfam");
  auto trsvcid = p.opt_str("trsvcid");
  auto subnqn = p.opt_str("subnqn");
  auto hostaddr = p.opt_str("hostaddr");
  auto hostsvcid = p.opt_str("hostsvcid");
  p.done();
  if (trtype && lower(*trtype) != "tcp" && lower(*trtype) != "vfiouser")
    throw einval(fmt::format("Failed to parse trtype: {}", *trtype));
  if (adrfam && lower(*adrfam) != "ipv4" && lower(*adrfam) != "ipv6")
    throw einval(fmt::format("Failed to parse adrfam: {}", *adrfam));
  auto c = find_ctrlr(name);
  if (!c)
    throw rpc::errno_error(ENODEV, fmt::format("no NVMe controller named {} "
                                               "(bdev_nvme_get_controllers lists them)",
                                               name));
  bool any = trtype || traddr || trsvcid || subnqn || hostaddr || hostsvcid;
  if (!any) {
    c->destroy("bdev_nvme_detach_controller");
    return true;
  }
  // Every path matching the given fields goes; the last one takes the controller.
  std::vector<size_t> match;
  const auto& ts = c->trids();
  for (size_t i = 0; i < ts.size(); ++i) {
    const Trid& t = ts[i];
    if (trtype && lower(*trtype) != lower(t.trtype_str())) continue;
    if (traddr && *traddr != t.traddr) continue;
    if (trsvcid && *trsvcid != t.trsvcid) continue;
    if (subnqn && *subnqn != t.subnqn) continue;
    if (hostaddr && *hostaddr != t.hostaddr) continue;
    if (hostsvcid && *hostsvcid != t.hostsvcid) continue;
    match.push_back(i);
  }
  if (match.empty())
    throw rpc::errno_error(ENODEV, fmt::format("controller {} has no path matching the given "
                                               "trid fields (bdev_nvme_get_controllers shows "
                                               "its active one)",
                                               name));
  if (match.size() == ts.size()) {
    c->destroy("bdev_nvme_detach_controller");
    return true;
  }
  for (auto it = match.rbegin(); it != match.rend(); ++it) c->remove_trid(*it);
  return true;
}

json get_controllers(Params& p) {
  auto name = p.opt_str("name");
  p.done();
  json out = json::array();
  for (const auto& [n, c] : ctrlrs()) {
    if (name && *name != n) continue;
    out.push_back({{"name", n}, {"ctrlrs", json::array({c->info_json()})}});
  }
  if (name && out.empty())
    // SPDK answers with a positive EINVAL here.
    throw rpc::RpcError(EINVAL, fmt::format("Controller {} does not exist", *name));
  return out;
}

void reset(Params& p, const rpc::Responder& resp) {
  std::string name = p.str("name");
  p.done();
  auto c = find_ctrlr(name);
  if (!c)
    throw rpc::errno_error(ENODEV, fmt::format("no NVMe controller named {} "
                                               "(bdev_nvme_get_controllers lists them)",
                                               name));
  std::string why = c->reset([resp](const std::string& err) {
    if (err.empty())
      resp.result(true);
    else
      resp.error(rpc::kInternalError, fmt::format("reset failed: {}", err));
  });
  if (!why.empty())
    throw rpc::RpcError(rpc::kInternalError,
                        fmt::format("Device or resource busy: {} {}", name, why));
}

void module_config(json& cfg) {
  cfg.push_back({{"method", "bdev_nvme_set_options"}, {"params", options().to_params()}});
  for (const auto& [n, c] : ctrlrs()) c->config_entries(cfg);
}

}  // namespace

// Docs for docs/rpc.md; -22 (EINVAL) carries most parse failures, as in SPDK.
const rpc::MethodDoc kSetOptions{
    "Sets bdev_nvme's defaults (timeouts, retries, reconnect policy, DH-HMAC-CHAP digests and "
    "groups) for controllers attached later.",
    "true",
    {{rpc::kInvalidParams,
      "action_on_timeout not none/reset/abort; bad dhchap_digests or "
      "dhchap_dhgroups"},
     {-EINVAL,
      "timeout_admin_us without timeout_us; bdev_retry_count < -1; inconsistent "
      "ctrlr_loss_timeout_sec / reconnect_delay_sec / fast_io_fail_timeout_sec"},
     {-EPERM, "a controller is attached already"}}};
const rpc::MethodDoc kSetHotplug{
    "Accepts enable=false only: nvemu has no local PCIe NVMe devices to hot plug.",
    "true",
    {{rpc::kInvalidParams, "enable=true"}}};
const rpc::MethodDoc kAttach{
    "Connects to a remote NVMe controller (trtype tcp or vfiouser) and creates one bdev per "
    "namespace, <name>n<nsid>; with an existing name and multipath failover, adds a path.",
    "array of the bdevs' names (strings); empty when a failover path was added",
    {{rpc::kInvalidParams, "multipath not disable/failover/multipath"},
     {-EINVAL,
      "empty name; bad trtype, adrfam, trsvcid; no subnqn for tcp; psk, prchk_*, "
      "multipath=multipath; traddr unresolvable; a failover path to another subsystem, hostnqn "
      "or trtype"},
     {-ENOKEY, "dhchap_key or dhchap_ctrlr_key names no keyring key"},
     {-EALREADY, "the name exists with multipath disable or the same path, or is being attached"},
     {-ECONNREFUSED, "nothing listens at traddr/trsvcid"},
     {-EADDRNOTAVAIL, "hostaddr is not an address of this machine"},
     {-ETIMEDOUT, "the connection or its ICResp timed out"},
     {-EPERM, "the target refused the host (Connect status 0x84: host not allowed)"},
     {-EACCES, "DH-HMAC-CHAP authentication failed"},
     {-ENODEV,
      "no such subsystem there (Connect status 0x82); the controller went away while "
      "a failover path was connecting"},
     {-ENOENT, "vfio-user: no socket at traddr"},
     {-EIO, "any other failure while connecting or identifying"}}};
const rpc::MethodDoc kDetach{
    "Detaches a controller and deletes its bdevs; with trid fields, removes only the matching "
    "paths.",
    "true",
    {{-EINVAL, "trtype or adrfam not known"},
     {-ENODEV, "no controller with that name, or none of its paths matches"}}};
const rpc::MethodDoc kGetControllers{
    "Lists the attached controllers, or the one named.",
    "array of {name, ctrlrs: [{state, trid: {trtype, adrfam, traddr, trsvcid, subnqn}, cntlid, "
    "host: {nqn, addr, svcid}}]}",
    {{EINVAL, "name given and no controller has it (positive 22, as SPDK)"}}};
const rpc::MethodDoc kReset{
    "Resets a controller: disconnects and reconnects its paths.",
    "true",
    {{-ENODEV, "no controller with that name"},
     {rpc::kInternalError, "a reset is in progress already or the reset failed"}}};

void register_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("bdev_nvme_set_options", rpc::kAnyState, set_options, kSetOptions);
  r.add("bdev_nvme_set_hotplug", rpc::kAnyState, set_hotplug, kSetHotplug);
  r.add_async("bdev_nvme_attach_controller", rpc::kRuntime, attach, kAttach);
  r.add("bdev_nvme_detach_controller", rpc::kRuntime, detach, kDetach);
  r.add("bdev_nvme_get_controllers", rpc::kRuntime, get_controllers, kGetControllers);
  r.add_async("bdev_nvme_reset_controller", rpc::kRuntime, reset, kReset);
  add_module_config(module_config);
}

}  // namespace nvemu::bdev::nvme
