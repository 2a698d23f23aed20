// Transport, listener and stats RPCs (SPDK v23.01 names and shapes).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <map>

#include "common/auth/dhchap.h"
#include "nvmf/controller.h"
#include "nvmf/nvmf_rpc.h"
#include "nvmf/target.h"
#include "reactor/reactor.h"
#include "rpc/registry.h"

namespace nvemu::nvmf {
namespace {

using nlohmann::json;
using rpc::Params;

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// How many subsystems listen on each (trtype, address): the transport
// listens once per address, as SPDK's does.
std::map<std::string, int>& listen_refs() {
  static std::map<std::string, int> refs;
  return refs;
}

std::string key(const ListenAddress& a) {
  return fmt::format("{}|{}|{}|{}", a.trtype, a.adrfam, a.traddr, a.trsvcid);
}

// SPDK answers a tgt_name other than its one target with -32603 "Unable to
// find a target."; checked after decoding, as SPDK decodes first.
void check_tgt(const std::optional<std::string>& tgt) {
  if (tgt && !tgt->empty() && *tgt != "nvmf_tgt")
    throw rpc::internal_error(
        fmt::format("Unable to find a target. '{}' is not one: nvemu runs one target, "
                    "'nvmf_tgt'; omit tgt_name",
                    *tgt));
}

// Relaxed decoding, as SPDK's: common options are type-checked here, every
// other key passes to the transport as a transport-specific option.
json create_transport(Params& p) {
  TransportOpts o;
  o.trtype = upper(p.str("trtype"));
  Target::instance().apply_defaults(o);
  static const std::pair<const char*, uint32_t TransportOpts::*> kU32[] = {
      {"max_queue_depth", &TransportOpts::max_queue_depth},
      {"max_io_qpairs_per_ctrlr", &TransportOpts::max_io_qpairs_per_ctrlr},
      {"in_capsule_data_size", &TransportOpts::in_capsule_data_size},
      {"max_io_size", &TransportOpts::max_io_size},
      {"io_unit_size", &TransportOpts::io_unit_size},
      {"max_aq_depth", &TransportOpts::max_aq_depth},
      {"num_shared_buffers", &TransportOpts::num_shared_buffers},
      {"buf_cache_size", &TransportOpts::buf_cache_size},
      {"abort_timeout_sec", &TransportOpts::abort_timeout_sec},
      {"acceptor_poll_rate", &TransportOpts::acceptor_poll_rate}};
  for (const auto& [name, field] : kU32)
    if (auto v = p.opt_u32(name)) o.*field = *v;
  if (auto v = p.opt_u32("max_qpairs_per_ctrlr")) o.max_io_qpairs_per_ctrlr = *v ? *v - 1 : 0;
  if (auto v = p.opt_bool("dif_insert_or_strip")) o.dif_insert_or_strip = *v;
  if (auto v = p.opt_bool("zcopy")) o.zcopy = *v;
  auto tgt = p.opt_str("tgt_name");
  if (tgt && !tgt->empty() && *tgt != "nvmf_tgt")
    throw rpc::internal_error("Unable to find a target.");
  for (auto it = p.raw().begin(); it != p.raw().end(); ++it)
    if (!p.seen(it.key())) o.specific[it.key()] = it.value();

  const std::string trtype = o.trtype;
  if (o.max_queue_depth < 2 || o.max_aq_depth < 2)
    throw rpc::invalid_params(
        fmt::format("max_queue_depth ({}) and max_aq_depth ({}) must be at "
                    "least 2",
                    o.max_queue_depth, o.max_aq_depth));
  if (o.max_io_size == 0 || o.io_unit_size == 0 || o.max_io_size % 4096 != 0)
    throw rpc::invalid_params(
        fmt::format("max_io_size ({}) must be a non-zero multiple of 4096 "
                    "and io_unit_size ({}) non-zero",
                    o.max_io_size, o.io_unit_size));
  if (!Target::instance().has_factory(trtype))
    throw rpc::invalid_params(
        fmt::format("Invalid transport type '{}' (nvemu serves TCP, "
                    "VFIOUSER and DOCA)",
                    trtype));
  if (Target::instance().find_transport(trtype))
    throw rpc::internal_error(
        fmt::format("Transport type '{}' already exists "
                    "(nvmf_get_transports shows it)",
                    trtype));
  std::string error;
  if (!Target::instance().add_transport(o, &error))
    throw rpc::internal_error(fmt::format("Transport type '{}' create failed: {}", trtype, error));
  return true;
}

ListenAddress decode_address(const json& j, const std::string& method) {
  Params a(j, method + " listen_address");
  ListenAddress l;
  l.trtype = upper(a.str("trtype"));
  l.adrfam = a.opt_str("adrfam").value_or("");
  l.traddr = a.str("traddr");
  l.trsvcid = a.opt_str("trsvcid").value_or("");
  a.opt_str("priority");
  a.done();
  std::string fam = upper(l.adrfam);
  if (fam == "IPV4")
    l.adrfam = "IPv4";
  else if (fam == "IPV6")
    l.adrfam = "IPv6";
  else if (!l.adrfam.empty() && fam != "IB" && fam != "FC" && fam != "INTRA_HOST")
    throw rpc::invalid_params(fmt::format("adrfam '{}' is not one of IPv4, IPv6", l.adrfam));
  if (l.trtype == "TCP") {
    if (l.adrfam.empty()) l.adrfam = "IPv4";  // SPDK's default for IP transports
    if (l.trsvcid.empty())
      throw rpc::invalid_params("a TCP listener needs trsvcid, the port (e.g. 4420)");
    unsigned long port = std::strtoul(l.trsvcid.c_str(), nullptr, 10);
    if (port == 0 || port > 65535 || l.trsvcid.find_first_not_of("0123456789") != std::string::npos)
      throw rpc::invalid_params(fmt::format("trsvcid '{}' is not a TCP port (1-65535)", l.trsvcid));
  }
  return l;
}

json add_listener(Params& p) {
  std::string nqn = p.str("nqn");
  ListenAddress a = decode_address(p.object("listen_address"), p.method());
  auto tgt = p.opt_str("tgt_name");
  p.opt_bool("secure_channel");
  p.done();
  check_tgt(tgt);
  auto s = Target::instance().find_subsystem(nqn);
  if (!s) throw rpc::invalid_params(fmt::format("Unable to find subsystem with NQN {}", nqn));
  Transport* t = Target::instance().find_transport(a.trtype);
  if (!t)
    throw rpc::invalid_params(
        fmt::format("Unable to find {} transport. Create it first: "
                    "nvmf_create_transport -t {}",
                    a.trtype, a.trtype));
  if (s->has_listener(a))
    throw rpc::invalid_params(
        fmt::format("{} already listens on {} {}:{}", nqn, a.trtype, a.traddr, a.trsvcid));
  int& refs = listen_refs()[key(a)];
  if (refs == 0) {
    std::string why = t->listen_for_subsystem(a, nqn);
    if (!why.empty()) {
      listen_refs().erase(key(a));
      throw rpc::internal_error(fmt::format("Unable to listen on {} {}{}{}: {}", a.trtype, a.traddr,
                                            a.trsvcid.empty() ? "" : ":", a.trsvcid, why));
    }
  }
  ++refs;
  s->add_listener(a);
  Target::instance().bump_discovery_genctr();
  return true;
}

json remove_listener(Params& p) {
  std::string nqn = p.str("nqn");
  ListenAddress a = decode_address(p.object("listen_address"), p.method());
  auto tgt = p.opt_str("tgt_name");
  p.done();
  check_tgt(tgt);
  auto s = Target::instance().find_subsystem(nqn);
  if (!s) throw rpc::invalid_params(fmt::format("Unable to find subsystem with NQN {}", nqn));
  if (!s->has_listener(a))
    throw rpc::invalid_params(
        fmt::format("{} has no listener {} {}:{} "
                    "(nvmf_subsystem_get_listeners lists them)",
                    nqn, a.trtype, a.traddr, a.trsvcid));
  release_listener(*s, a);
  return true;
}

json get_listeners(Params& p) {
  std::string nqn = p.str("nqn");
  auto tgt = p.opt_str("tgt_name");
  p.done();
  check_tgt(tgt);
  auto s = Target::instance().find_subsystem(nqn);
  if (!s) throw rpc::invalid_params(fmt::format("Unable to find subsystem with NQN {}", nqn));
  json out = json::array();
  for (const auto& l : s->listeners())
    out.push_back({{"address", l.to_json()}, {"ana_state", "optimized"}});
  return out;
}

json get_transports(Params& p) {
  auto trtype = p.opt_str("trtype");
  auto tgt = p.opt_str("tgt_name");
  p.done();
  check_tgt(tgt);
  json out = json::array();
  for (Transport* t : Target::instance().transports())
    if (!trtype || upper(*trtype) == t->trtype()) out.push_back(t->opts().to_json());
  if (trtype && out.empty())
    throw rpc::errno_error(
        ENODEV, fmt::format("no {} transport (nvmf_create_transport -t {})", *trtype, *trtype));
  return out;
}

json get_stats(Params& p) {
  auto tgt = p.opt_str("tgt_name");
  p.done();
  check_tgt(tgt);
  json groups = json::array();
  auto& set = ReactorSet::instance();
  for (size_t i = 0; set.created() && i < set.size(); ++i)
    groups.push_back({{"name", fmt::format("nvmf_tgt_poll_group_{}", i)},
                      {"core", set.at(i).core()},
                      {"transports", json::array()}});
  json transports = json::array();
  for (Transport* t : Target::instance().transports()) {
    json st = t->stats_json();
    st["trtype"] = t->trtype();
    transports.push_back(st);
  }
  return {{"tick_rate", 1000000}, {"poll_groups", groups}, {"transports", transports}};
}

// An array of names -> a bitmask of their identifiers, kept in cfg as given
// (save_config writes the names back).
template <typename Lookup>
std::optional<uint32_t> dhchap_list(Params& p, const char* key, Lookup lookup, const char* known) {
  const json* v = p.opt_value(key);
  if (!v) return std::nullopt;
  if (!v->is_array() || v->empty())
    throw rpc::invalid_params(
        fmt::format("{} must be a non-empty array of names ({})", key, known));
  uint32_t bits = 0;
  for (const auto& e : *v) {
    auto id = e.is_string() ? lookup(e.get<std::string>()) : std::nullopt;
    if (!id)
      throw rpc::invalid_params(fmt::format("{}: '{}' is not one of {}", key,
                                            e.is_string() ? e.get<std::string>() : e.dump(),
                                            known));
    bits |= 1u << static_cast<unsigned>(*id);
  }
  return bits;
}

json set_config(Params& p) {
  auto& cfg = Target::instance().config;
  if (auto f = p.opt_str("discovery_filter")) {
    static const char* kFilters[] = {
        "match_any",         "transport",       "address",       "svcid",
        "transport,address", "transport,svcid", "address,svcid", "transport,address,svcid"};
    if (std::find(std::begin(kFilters), std::end(kFilters), *f) == std::end(kFilters))
      throw rpc::invalid_params(
          fmt::format("discovery_filter '{}' must be match_any or a comma "
                      "list of transport, address, svcid",
                      *f));
    cfg["discovery_filter"] = *f;
  }
  if (const json* v = p.opt_value("admin_cmd_passthru")) cfg["admin_cmd_passthru"] = *v;
  auto digests = dhchap_list(p, "dhchap_digests", auth::hash_from_name, "sha256, sha384, sha512");
  auto groups = dhchap_list(p, "dhchap_dhgroups", auth::dhgroup_from_name,
                            "null, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192");
  if (const json* v = p.opt_value("poll_groups_mask")) cfg["poll_groups_mask"] = *v;
  p.opt_u32("acceptor_poll_rate");
  p.opt_bool("conn_sched");
  p.done();
  // Applied once every parameter is known good.
  if (digests) {
    Target::instance().dhchap_digests = *digests;
    cfg["dhchap_digests"] = p.raw()["dhchap_digests"];
  }
  if (groups) {
    Target::instance().dhchap_dhgroups = *groups;
    cfg["dhchap_dhgroups"] = p.raw()["dhchap_dhgroups"];
  }
  return true;
}

json set_max_subsystems(Params& p) {
  auto v = p.opt_u32("max_subsystems");
  p.done();
  if (v && *v == 0)
    throw rpc::invalid_params("max_subsystems must be at least 1 (the discovery subsystem)");
  if (v) Target::instance().max_subsystems = *v;
  return true;
}

json set_crdt(Params& p) {
  auto& crdt = Target::instance().crdt;
  std::array<uint16_t, 3> next = crdt;
  const char* keys[] = {"crdt1", "crdt2", "crdt3"};
  for (size_t i = 0; i < 3; ++i)
    if (auto v = p.opt_u16(keys[i])) next[i] = *v;
  p.done();
  crdt = next;
  return true;
}

// Docs for docs/rpc.md.
const rpc::ErrorDoc kNoSubsystem{rpc::kInvalidParams, "no subsystem with that nqn"};
const rpc::ErrorDoc kNoTgt{rpc::kInternalError, "tgt_name given and not nvmf_tgt"};
const rpc::ErrorDoc kBadAddress{rpc::kInvalidParams,
                                "listen_address: adrfam not IPv4/IPv6; TCP without a valid "
                                "trsvcid port"};
const rpc::MethodDoc kCreateTransport{
    "Creates a transport (TCP, VFIOUSER or DOCA) with its options; unknown keys pass to the "
    "transport as its own options.",
    "true",
    {{rpc::kInvalidParams,
      "max_queue_depth or max_aq_depth < 2; max_io_size not a multiple of "
      "4096 or io_unit_size 0; trtype not TCP, VFIOUSER or DOCA"},
     {rpc::kInternalError,
      "the transport exists already; the transport refused its options "
      "(\"Transport type 'X' create failed: why\"); tgt_name not "
      "nvmf_tgt"}}};
const rpc::MethodDoc kAddListener{
    "Makes a subsystem listen on an address of a transport (for DOCA, hot-plugs the function "
    "to the host).",
    "true",
    {kNoSubsystem,
     kBadAddress,
     {rpc::kInvalidParams, "the transport is not created; the subsystem listens there already"},
     {rpc::kInternalError,
      "the transport cannot listen (port in use, no such DOCA function, "
      "function in a state that forbids it, ...); tgt_name not nvmf_tgt"}}};
const rpc::MethodDoc kRemoveListener{
    "Stops a subsystem listening on an address; the transport stops listening when no "
    "subsystem uses the address any more.",
    "true",
    {kNoSubsystem,
     kBadAddress,
     {rpc::kInvalidParams, "the subsystem has no such listener"},
     kNoTgt}};
const rpc::MethodDoc kGetListeners{
    "The subsystem's listeners.",
    "array of {address: {trtype, adrfam, traddr, trsvcid}, ana_state}",
    {kNoSubsystem, kNoTgt}};
const rpc::MethodDoc kGetTransports{
    "The transports and their options, or the one of trtype.",
    "array of {trtype, max_queue_depth, max_io_qpairs_per_ctrlr, in_capsule_data_size, "
    "max_io_size, io_unit_size, max_aq_depth, ...}",
    {{-ENODEV, "trtype given and no such transport is created"}, kNoTgt}};
const rpc::MethodDoc kGetStats{
    "Poll groups and per-transport statistics.",
    "{tick_rate, poll_groups: [{name, core, transports}], transports: [{trtype, ...}]}",
    {{rpc::kInvalidParams, "a key other than tgt_name"}, kNoTgt}};
const rpc::MethodDoc kSetConfig{
    "Sets target-wide options (discovery_filter, DH-HMAC-CHAP digests and groups, ...) before "
    "framework_start_init.",
    "true",
    {{rpc::kInvalidParams,
      "discovery_filter not a known value; dhchap_digests or "
      "dhchap_dhgroups not a non-empty array of known names"}}};
const rpc::MethodDoc kSetMaxSubsystems{
    "Sets how many subsystems (discovery included) the target may hold.",
    "true",
    {{rpc::kInvalidParams, "max_subsystems 0"}}};
const rpc::MethodDoc kSetCrdt{
    "Sets the command retry delay times (crdt1..3, in 100 ms units) controllers report.",
    "true",
    {{rpc::kInvalidParams, "a crdt not a 16-bit integer; an unknown key"}}};

}  // namespace

void release_listener(Subsystem& s, const ListenAddress& a) {
  if (!s.remove_listener(a)) return;
  auto it = listen_refs().find(key(a));
  if (it != listen_refs().end() && --it->second <= 0) {
    listen_refs().erase(it);
    if (Transport* t = Target::instance().find_transport(a.trtype)) t->stop_listen(a);
  }
  Target::instance().bump_discovery_genctr();
}

json listener_config(const std::string& nqn) {
  json out = json::array();
  auto s = Target::instance().find_subsystem(nqn);
  if (!s) return out;
  for (const auto& l : s->listeners()) {
    json addr = l.to_json();
    addr.erase("transport");
    out.push_back({{"method", "nvmf_subsystem_add_listener"},
                   {"params", {{"nqn", nqn}, {"listen_address", addr}}}});
  }
  return out;
}

void register_transport_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("nvmf_create_transport", rpc::kRuntime, create_transport, kCreateTransport);
  r.add("nvmf_subsystem_add_listener", rpc::kRuntime, add_listener, kAddListener);
  r.add("nvmf_subsystem_remove_listener", rpc::kRuntime, remove_listener, kRemoveListener);
  r.add("nvmf_subsystem_get_listeners", rpc::kRuntime, get_listeners, kGetListeners);
  r.add("nvmf_get_transports", rpc::kRuntime, get_transports, kGetTransports);
  r.add("nvmf_get_stats", rpc::kRuntime, get_stats, kGetStats);
  r.add("nvmf_set_config", rpc::kStartup, set_config, kSetConfig);
  r.add("nvmf_set_max_subsystems", rpc::kStartup, set_max_subsystems, kSetMaxSubsystems);
  r.add("nvmf_set_crdt", rpc::kStartup, set_crdt, kSetCrdt);
}

}  // namespace nvemu::nvmf
