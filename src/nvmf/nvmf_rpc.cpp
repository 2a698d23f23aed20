// Subsystem, namespace and host RPCs with SPDK v23.01's names, parameters
// and results. Like SPDK, a wrong or unknown object is "invalid params"
// (-32602) and a failure to create is an internal error (-32603); unlike
// SPDK, each message says which object and what to do.
#include "nvmf/nvmf_rpc.h"

#include <fmt/format.h>

#include <map>

#include "bdev/bdev.h"
#include "common/auth/dhchap.h"
#include "common/log.h"
#include "nvmf/controller.h"
#include "nvmf/doca/manager.h"
#include "nvmf/target.h"
#include "rpc/registry.h"

namespace nvemu::nvmf {
namespace {

using nlohmann::json;
using rpc::Params;

void check_tgt_name(Params& p) {
  auto tgt = p.opt_str("tgt_name");
  if (tgt && !tgt->empty() && *tgt != "nvmf_tgt")
    throw rpc::internal_error(
        fmt::format("Unable to find target {}: nvemu runs one target, "
                    "'nvmf_tgt'; omit tgt_name",
                    *tgt));
}

std::shared_ptr<Subsystem> subsystem_or_throw(const std::string& nqn) {
  auto s = Target::instance().find_subsystem(nqn);
  if (!s)
    throw rpc::invalid_params(
        fmt::format("Unable to find subsystem with NQN {} "
                    "(nvmf_get_subsystems lists them)",
                    nqn));
  return s;
}

std::shared_ptr<Subsystem> nvme_subsystem_or_throw(const std::string& nqn) {
  auto s = subsystem_or_throw(nqn);
  if (s->type() != Subsystem::Type::kNvme)
    throw rpc::invalid_params(
        fmt::format("{} is the discovery subsystem; it has no namespaces "
                    "or hosts to change",
                    nqn));
  return s;
}

bool printable_ascii(const std::string& s) {
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

template <size_t N>
bool parse_hex_id(const std::string& text, std::array<uint8_t, N>* out) {
  std::string hex;
  for (char c : text)
    if (c != '-') hex += c;
  if (hex.size() != N * 2) return false;
  for (size_t i = 0; i < N; ++i) {
    unsigned v;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1 ||
        !std::isxdigit(static_cast<unsigned char>(hex[2 * i])) ||
        !std::isxdigit(static_cast<unsigned char>(hex[2 * i + 1])))
      return false;
    (*out)[i] = static_cast<uint8_t>(v);
  }
  return true;
}

// Bdev remove hooks per namespace, so a deleted bdev hot-removes its
// namespace as SPDK does.
std::map<std::pair<std::string, uint32_t>, std::pair<std::weak_ptr<bdev::Bdev>, uint64_t>>&
ns_hooks() {
  static std::map<std::pair<std::string, uint32_t>, std::pair<std::weak_ptr<bdev::Bdev>, uint64_t>>
      hooks;
  return hooks;
}

// Bdev resize hooks per namespace: a grown bdev (bdev_rbd_resize) is a
// Namespace Attribute Changed event for the subsystem's controllers, as
// SPDK's nvmf_ns_resize.
std::map<std::pair<std::string, uint32_t>, std::pair<std::weak_ptr<bdev::Bdev>, uint64_t>>&
ns_resize_hooks() {
  static std::map<std::pair<std::string, uint32_t>, std::pair<std::weak_ptr<bdev::Bdev>, uint64_t>>
      hooks;
  return hooks;
}

void drop_namespace(Subsystem& s, uint32_t nsid) {
  auto ns = s.find_namespace(nsid);
  auto key = std::make_pair(s.nqn(), nsid);
  auto it = ns_hooks().find(key);
  if (it != ns_hooks().end()) {
    if (auto b = it->second.first.lock()) b->remove_remove_hook(it->second.second);
    ns_hooks().erase(it);
  }
  auto rit = ns_resize_hooks().find(key);
  if (rit != ns_resize_hooks().end()) {
    if (auto b = rit->second.first.lock()) b->remove_resize_hook(rit->second.second);
    ns_resize_hooks().erase(rit);
  }
  if (ns && ns->bdev) ns->bdev->release_claim();
  s.remove_namespace(nsid);
}

json create_subsystem(Params& p) {
  std::string nqn = p.str("nqn");
  auto sn = p.opt_str("serial_number");
  auto mn = p.opt_str("model_number");
  check_tgt_name(p);
  auto max_ns = p.opt_u32("max_namespaces");
  bool allow_any = p.opt_bool("allow_any_host").value_or(false);
  bool ana = p.opt_bool("ana_reporting").value_or(false);
  uint16_t min_cntlid = p.opt_u16("min_cntlid").value_or(1);
  uint16_t max_cntlid = p.opt_u16("max_cntlid").value_or(0xffef);
  p.done();

  std::string why = validate_nqn(nqn);
  if (!why.empty())
    throw rpc::internal_error(fmt::format("Unable to create subsystem {}: {}", nqn, why));
  if (nqn == kDiscoveryNqn)
    throw rpc::internal_error(
        fmt::format("Unable to create subsystem {}: the discovery "
                    "subsystem always exists",
                    nqn));
  if (sn && (sn->size() > 20 || !printable_ascii(*sn)))
    throw rpc::invalid_params(
        fmt::format("Invalid SN {}: at most 20 printable ASCII "
                    "characters",
                    *sn));
  if (mn && (mn->size() > 40 || !printable_ascii(*mn)))
    throw rpc::invalid_params(
        fmt::format("Invalid MN {}: at most 40 printable ASCII "
                    "characters",
                    *mn));
  if (min_cntlid < 1 || max_cntlid > 0xffef || min_cntlid > max_cntlid)
    throw rpc::invalid_params(
        fmt::format("Invalid cntlid range [{}-{}]: need 1 <= min_cntlid "
                    "<= max_cntlid <= 65519",
                    min_cntlid, max_cntlid));
  uint32_t max_subsys = Target::instance().max_subsystems;
  if (Target::instance().subsystems().size() >= max_subsys &&
      !Target::instance().find_subsystem(nqn))
    throw rpc::internal_error(
        fmt::format("Unable to create subsystem {}: the target holds its maximum of {} "
                    "(the discovery subsystem included); raise it with nvmf_set_max_subsystems "
                    "before framework_start_init",
                    nqn, max_subsys));
  auto s = Target::instance().add_subsystem(nqn, Subsystem::Type::kNvme);
  if (!s)
    throw rpc::internal_error(
        fmt::format("Unable to create subsystem {}: it already exists "
                    "(nvmf_delete_subsystem removes it)",
                    nqn));
  if (sn) s->serial_number = *sn;
  if (mn) s->model_number = *mn;
  if (max_ns) s->max_namespaces = *max_ns;
  s->allow_any_host = allow_any;
  s->ana_reporting = ana;
  s->min_cntlid = min_cntlid;
  s->max_cntlid = max_cntlid;
  return true;
}

json delete_subsystem(Params& p) {
  std::string nqn = p.str("nqn");
  check_tgt_name(p);
  p.done();
  auto s = nvme_subsystem_or_throw(nqn);
  // Hold the table: each drop publishes a new one, and the range-for would
  // otherwise walk a table freed under it.
  auto table = s->namespaces();
  for (const auto& [nsid, ns] : *table) drop_namespace(*s, nsid);
  // Listeners go first so no host reconnects while the subsystem drains.
  for (const auto& l : s->listeners()) release_listener(*s, l);
  Target::instance().remove_subsystem(nqn);
  return true;
}

json get_subsystems(Params& p) {
  check_tgt_name(p);
  auto nqn = p.opt_str("nqn");
  p.done();
  json out = json::array();
  if (nqn) {
    // SPDK v23.01 answers an unknown nqn here with -ENODEV, not -32602.
    auto s = Target::instance().find_subsystem(*nqn);
    if (!s)
      throw rpc::errno_error(ENODEV, fmt::format("no subsystem with NQN {} (nvmf_get_subsystems "
                                                 "without nqn lists them)",
                                                 *nqn));
    out.push_back(s->to_json());
    return out;
  }
  for (const auto& s : Target::instance().subsystems()) out.push_back(s->to_json());
  return out;
}

json add_ns(Params& p) {
  std::string nqn = p.str("nqn");
  const json& nsj = p.object("namespace");
  check_tgt_name(p);
  p.done();

  Params np(nsj, "nvmf_subsystem_add_ns namespace");
  std::string bdev_name = np.str("bdev_name");
  Namespace ns;
  ns.nsid = np.opt_u32("nsid").value_or(0);
  auto nguid = np.opt_str("nguid");
  auto eui64 = np.opt_str("eui64");
  auto uuid = np.opt_str("uuid");
  np.opt_str("ptpl_file");
  ns.anagrpid = np.opt_u32("anagrpid").value_or(0);
  np.opt_bool("no_auto_visible");
  np.done();

  auto s = nvme_subsystem_or_throw(nqn);
  if (nguid && !(ns.has_nguid = parse_hex_id(*nguid, &ns.nguid)))
    throw rpc::invalid_params(fmt::format("nguid '{}' must be 32 hex digits", *nguid));
  if (eui64 && !(ns.has_eui64 = parse_hex_id(*eui64, &ns.eui64)))
    throw rpc::invalid_params(fmt::format("eui64 '{}' must be 16 hex digits", *eui64));
  if (uuid) {
    if (!bdev::is_valid_uuid(*uuid) || !parse_hex_id(*uuid, &ns.uuid))
      throw rpc::invalid_params(
          fmt::format("uuid '{}' is not a UUID like "
                      "11111111-2222-3333-4444-555555555555",
                      *uuid));
    ns.has_uuid = true;
  }
  auto b = bdev::Registry::instance().find(bdev_name);
  if (!b)
    throw rpc::invalid_params(
        fmt::format("Unable to add namespace to {}: no bdev named '{}' "
                    "(create it first, e.g. bdev_malloc_create)",
                    nqn, bdev_name));
  if (!b->claimed_by().empty())
    throw rpc::invalid_params(
        fmt::format("Unable to add namespace to {}: bdev {} is already "
                    "used by {}; remove that namespace first",
                    nqn, bdev_name, b->claimed_by()));
  if (!uuid) {
    // Like SPDK: a namespace without its own UUID reports the bdev's.
    ns.has_uuid = parse_hex_id(b->uuid(), &ns.uuid);
  }
  if (ns.anagrpid == 0) ns.anagrpid = ns.nsid ? ns.nsid : 1;
  ns.bdev = b;
  std::string error;
  uint32_t nsid = s->add_namespace(ns, &error);
  if (nsid == 0)
    throw rpc::invalid_params(fmt::format("Unable to add namespace to {}: {}", nqn, error));
  b->claim(fmt::format("{} nsid {}", nqn, nsid));
  std::weak_ptr<Subsystem> weak = s;
  uint64_t hook = b->add_remove_hook([weak, nsid](bdev::Bdev&) {
    if (auto sub = weak.lock()) {
      ns_hooks().erase({sub->nqn(), nsid});
      ns_resize_hooks().erase({sub->nqn(), nsid});
      sub->remove_namespace(nsid);
    }
  });
  ns_hooks()[{nqn, nsid}] = {b, hook};
  uint64_t resize_hook = b->add_resize_hook([weak, nsid](bdev::Bdev&) {
    if (auto sub = weak.lock()) sub->notify_namespace_changed(nsid);
  });
  ns_resize_hooks()[{nqn, nsid}] = {b, resize_hook};
  return nsid;
}

json remove_ns(Params& p) {
  std::string nqn = p.str("nqn");
  uint32_t nsid = p.u32("nsid");
  check_tgt_name(p);
  p.done();
  auto s = nvme_subsystem_or_throw(nqn);
  if (!s->find_namespace(nsid))
    throw rpc::invalid_params(
        fmt::format("{} has no namespace {} (nvmf_get_subsystems lists "
                    "them)",
                    nqn, nsid));
  drop_namespace(*s, nsid);
  return true;
}

std::shared_ptr<const keyring::Key> key_or_throw(const std::optional<std::string>& name,
                                                 const char* what) {
  if (!name) return nullptr;
  auto k = keyring::Keyring::instance().find(*name);
  if (!k)
    throw rpc::invalid_params(
        fmt::format("Unable to find DH-HMAC-CHAP {} '{}': add it first "
                    "with keyring_file_add_key (keyring_get_keys lists "
                    "the keys)",
                    what, *name));
  return k;
}

// SPDK 24.x: dhchap_key / dhchap_ctrlr_key name keyring keys; the
// discovery subsystem takes hosts too, only to hold their keys (it admits
// any host), so discovery controllers can authenticate as well.
json add_host(Params& p) {
  std::string nqn = p.str("nqn");
  std::string host = p.str("host");
  check_tgt_name(p);
  p.opt_str("psk");
  auto key_name = p.opt_str("dhchap_key");
  auto ckey_name = p.opt_str("dhchap_ctrlr_key");
  p.done();
  auto s = subsystem_or_throw(nqn);
  if (s->type() != Subsystem::Type::kNvme && !key_name)
    throw rpc::invalid_params(fmt::format(
        "{} is the discovery subsystem: it admits any host; add a host there only with a "
        "dhchap_key, to require authentication of that host's discovery connections",
        nqn));
  std::string why = validate_nqn(host);
  if (!why.empty())
    throw rpc::invalid_params(fmt::format("host NQN '{}' is invalid: {}", host, why));
  if (ckey_name && !key_name)
    throw rpc::invalid_params(
        "dhchap_ctrlr_key requires dhchap_key: the controller authenticates to a host only "
        "after the host has authenticated");
  Subsystem::HostKeys keys{key_or_throw(key_name, "key"), key_or_throw(ckey_name, "ctrlr key")};
  s->add_host(host, std::move(keys));  // adding a host twice is not an error in SPDK
  Target::instance().bump_discovery_genctr();
  return true;
}

// The host's existing controllers go too (SPDK disconnects them), so a
// removed host keeps no access through connections made before.
json remove_host(Params& p) {
  std::string nqn = p.str("nqn");
  std::string host = p.str("host");
  check_tgt_name(p);
  p.done();
  auto s = subsystem_or_throw(nqn);
  if (!s->remove_host(host))
    throw rpc::invalid_params(fmt::format("host {} is not on {}'s allow list", host, nqn));
  int dropped = 0;
  for (const auto& c : s->controllers()) {
    if (c->hostnqn() != host) continue;
    c->on_host_removed();
    ++dropped;
  }
  if (dropped)
    LOG_NOTICE("nvmf", "host {} removed from {}: {} controller(s) disconnected", host, nqn,
               dropped);
  Target::instance().bump_discovery_genctr();
  return true;
}

json allow_any_host(Params& p) {
  std::string nqn = p.str("nqn");
  bool allow = p.boolean("allow_any_host");
  check_tgt_name(p);
  p.done();
  nvme_subsystem_or_throw(nqn)->allow_any_host = allow;
  Target::instance().bump_discovery_genctr();
  return true;
}

json get_controllers(Params& p) {
  std::string nqn = p.str("nqn");
  check_tgt_name(p);
  p.done();
  json out = json::array();
  for (const auto& c : subsystem_or_throw(nqn)->controllers()) out.push_back(c->info_json());
  return out;
}

json get_qpairs(Params& p) {
  std::string nqn = p.str("nqn");
  check_tgt_name(p);
  p.done();
  json out = json::array();
  for (const auto& c : subsystem_or_throw(nqn)->controllers())
    for (const auto& q : c->qpairs_json()) out.push_back(q);
  return out;
}

// Docs for docs/rpc.md. tgt_name other than nvmf_tgt is -32603 for every
// method here, as SPDK's "Unable to find target".
const rpc::ErrorDoc kNoTgt{rpc::kInternalError, "tgt_name given and not nvmf_tgt"};
const rpc::ErrorDoc kNoSubsystem{rpc::kInvalidParams, "no subsystem with that nqn"};
const rpc::ErrorDoc kNotNvme{rpc::kInvalidParams,
                             "no subsystem with that nqn, or it is the discovery subsystem"};
const rpc::MethodDoc kCreateSubsystem{
    "Creates an NVM subsystem (no namespaces, listeners or hosts yet).",
    "true",
    {{rpc::kInvalidParams,
      "serial_number over 20 or model_number over 40 printable ASCII "
      "characters; bad min_cntlid/max_cntlid range"},
     {rpc::kInternalError,
      "nqn invalid, the discovery NQN, existing already, or the target "
      "holds nvmf_set_max_subsystems subsystems; tgt_name not nvmf_tgt"}}};
const rpc::MethodDoc kDeleteSubsystem{
    "Deletes a subsystem: its listeners, namespaces (releasing their bdevs) and controllers.",
    "true",
    {kNotNvme, kNoTgt}};
const rpc::MethodDoc kGetSubsystems{
    "Lists the subsystems, discovery included, or the one named.",
    "array of {nqn, subtype, listen_addresses: [{trtype, adrfam, traddr, trsvcid, transport}], "
    "allow_any_host, hosts: [{nqn, dhchap_key?, dhchap_ctrlr_key?}]; NVMe subsystems add "
    "serial_number, model_number, max_namespaces, min_cntlid, max_cntlid, namespaces: [{nsid, "
    "bdev_name, name, anagrpid, nguid?, eui64?, uuid?}]}",
    {{-ENODEV, "nqn given and no subsystem has it"}, kNoTgt}};
const rpc::MethodDoc kAddNs{
    "Adds a namespace backed by a bdev (claiming it) to a subsystem.",
    "the namespace ID (integer)",
    {{rpc::kInvalidParams,
      "no such subsystem or the discovery one; no bdev named bdev_name or it "
      "is claimed already; bad nguid, eui64 or uuid; nsid in use or over "
      "max_namespaces"},
     kNoTgt}};
const rpc::MethodDoc kRemoveNs{
    "Removes a namespace from a subsystem and releases its bdev.",
    "true",
    {{rpc::kInvalidParams, "no such subsystem or the discovery one; no namespace nsid"}, kNoTgt}};
const rpc::MethodDoc kAddHost{
    "Allows a host NQN to connect, optionally requiring DH-HMAC-CHAP with keyring keys.",
    "true",
    {{rpc::kInvalidParams,
      "no such subsystem; discovery without dhchap_key; host NQN invalid; "
      "dhchap_ctrlr_key without dhchap_key; a key not in the keyring"},
     kNoTgt}};
const rpc::MethodDoc kRemoveHost{
    "Removes a host from the allow list and disconnects its controllers.",
    "true",
    {{rpc::kInvalidParams, "no such subsystem; the host is not on its allow list"}, kNoTgt}};
const rpc::MethodDoc kAllowAnyHost{
    "Lets any host connect (true) or only the allow list (false).", "true", {kNotNvme, kNoTgt}};
const rpc::MethodDoc kGetControllers{"The subsystem's connected controllers.",
                                     "array of {cntlid, hostnqn, hostid, num_io_qpairs}",
                                     {kNoSubsystem, kNoTgt}};
const rpc::MethodDoc kGetQpairs{"The subsystem's queue pairs.",
                                "array of {cntlid, qid, state, trtype, hostnqn, listen_address}",
                                {kNoSubsystem, kNoTgt}};

}  // namespace

void register_subsystem_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("nvmf_create_subsystem", rpc::kRuntime, create_subsystem, kCreateSubsystem);
  r.add("nvmf_delete_subsystem", rpc::kRuntime, delete_subsystem, kDeleteSubsystem);
  r.add("nvmf_get_subsystems", rpc::kRuntime, get_subsystems, kGetSubsystems);
  r.add("nvmf_subsystem_add_ns", rpc::kRuntime, add_ns, kAddNs);
  r.add("nvmf_subsystem_remove_ns", rpc::kRuntime, remove_ns, kRemoveNs);
  r.add("nvmf_subsystem_add_host", rpc::kRuntime, add_host, kAddHost);
  r.add("nvmf_subsystem_remove_host", rpc::kRuntime, remove_host, kRemoveHost);
  r.add("nvmf_subsystem_allow_any_host", rpc::kRuntime, allow_any_host, kAllowAnyHost);
  r.add("nvmf_subsystem_get_controllers", rpc::kRuntime, get_controllers, kGetControllers);
  r.add("nvmf_subsystem_get_qpairs", rpc::kRuntime, get_qpairs, kGetQpairs);
}

json config_json() {
  json cfg = json::array();
  const Target& tgt = Target::instance();
  // SPDK 24.x writes the allowed digests and groups always, in identifier
  // order, whatever order nvmf_set_config got them in.
  json set_config = tgt.config;
  set_config["dhchap_digests"] = auth::hash_names(tgt.dhchap_digests.load());
  set_config["dhchap_dhgroups"] = auth::dhgroup_names(tgt.dhchap_dhgroups.load());
  cfg.push_back({{"method", "nvmf_set_config"}, {"params", set_config}});
  cfg.push_back({{"method", "nvmf_set_max_subsystems"},
                 {"params", {{"max_subsystems", tgt.max_subsystems}}}});
  cfg.push_back(
      {{"method", "nvmf_set_crdt"},
       {"params", {{"crdt1", tgt.crdt[0]}, {"crdt2", tgt.crdt[1]}, {"crdt3", tgt.crdt[2]}}}});
  for (Transport* t : Target::instance().transports())
    cfg.push_back({{"method", "nvmf_create_transport"}, {"params", t->opts().to_json()}});
  for (auto& e : doca::Managers::instance().config_entries()) cfg.push_back(std::move(e));
  for (const auto& s : Target::instance().subsystems()) {
    if (s->type() != Subsystem::Type::kNvme) continue;
    cfg.push_back({{"method", "nvmf_create_subsystem"},
                   {"params",
                    {{"nqn", s->nqn()},
                     {"allow_any_host", s->allow_any_host.load()},
                     {"serial_number", s->serial_number},
                     {"model_number", s->model_number},
                     {"max_namespaces", s->max_namespaces},
                     {"min_cntlid", s->min_cntlid},
                     {"max_cntlid", s->max_cntlid},
                     {"ana_reporting", s->ana_reporting}}}});
    for (const auto& l : listener_config(s->nqn())) cfg.push_back(l);
    for (const auto& h : s->hosts()) {
      json params = {{"nqn", s->nqn()}, {"host", h}};
      Subsystem::HostKeys k = s->host_keys(h);  // key names only
      if (k.key) params["dhchap_key"] = k.key->name;
      if (k.ctrlr_key) params["dhchap_ctrlr_key"] = k.ctrlr_key->name;
      cfg.push_back({{"method", "nvmf_subsystem_add_host"}, {"params", params}});
    }
    for (const auto& [nsid, ns] : *s->namespaces()) {
      json nsj = ns->to_json();
      nsj.erase("name");
      cfg.push_back({{"method", "nvmf_subsystem_add_ns"},
                     {"params", {{"nqn", s->nqn()}, {"namespace", nsj}}}});
    }
  }
  return {{"subsystem", "nvmf"}, {"config", cfg}};
}

}  // namespace nvemu::nvmf
