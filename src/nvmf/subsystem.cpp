#include "nvmf/subsystem.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "nvmf/controller.h"

namespace nvemu::nvmf {
namespace {

std::string hex(const uint8_t* b, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += fmt::format("{:02X}", b[i]);
  return out;
}

std::string uuid_text(const std::array<uint8_t, 16>& u) {
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
      "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
      u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
      u[15]);
}

}  // namespace

nlohmann::json ListenAddress::to_json() const {
  nlohmann::json j = {{"trtype", trtype}, {"traddr", traddr}, {"trsvcid", trsvcid}};
  if (!adrfam.empty()) j["adrfam"] = adrfam;
  // SPDK's transport_id_to_json also reports the transport type in its
  // historical spelling.
  j["transport"] = trtype;
  return j;
}

nlohmann::json Namespace::to_json() const {
  nlohmann::json j = {{"nsid", nsid},
                      {"bdev_name", bdev ? bdev->name() : ""},
                      {"name", bdev ? bdev->name() : ""},
                      {"anagrpid", anagrpid}};
  if (has_nguid) j["nguid"] = hex(nguid.data(), nguid.size());
  if (has_eui64) j["eui64"] = hex(eui64.data(), eui64.size());
  if (has_uuid) j["uuid"] = uuid_text(uuid);
  return j;
}

Subsystem::Subsystem(std::string nqn, Type type)
    : nqn_(std::move(nqn)), type_(type), ns_table_(std::make_shared<NamespaceTable>()) {
  if (type_ == Type::kDiscovery) allow_any_host = true;
}

Subsystem::~Subsystem() = default;

bool Subsystem::host_allowed(const std::string& hostnqn) const {
  if (allow_any_host.load()) return true;
  std::lock_guard lock(mu_);
  return hosts_.count(hostnqn) != 0;
}

bool Subsystem::add_host(const std::string& hostnqn, HostKeys keys) {
  std::lock_guard lock(mu_);
  auto [it, added] = hosts_.insert_or_assign(hostnqn, std::move(keys));
  return added;
}

Subsystem::HostKeys Subsystem::host_keys(const std::string& hostnqn) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(hostnqn);
  return it == hosts_.end() ? HostKeys{} : it->second;
}

bool Subsystem::remove_host(const std::string& hostnqn) {
  std::lock_guard lock(mu_);
  return hosts_.erase(hostnqn) != 0;
}

std::vector<std::string> Subsystem::hosts() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [nqn, keys] : hosts_) out.push_back(nqn);
  return out;
}

bool Subsystem::add_listener(const ListenAddress& a) {
  std::lock_guard lock(mu_);
  if (std::find(listeners_.begin(), listeners_.end(), a) != listeners_.end()) return false;
  listeners_.push_back(a);
  return true;
}

bool Subsystem::remove_listener(const ListenAddress& a) {
  std::lock_guard lock(mu_);
  auto it = std::find(listeners_.begin(), listeners_.end(), a);
  if (it == listeners_.end()) return false;
  listeners_.erase(it);
  return true;
}

bool Subsystem::has_listener(const ListenAddress& a) const {
  std::lock_guard lock(mu_);
  return std::find(listeners_.begin(), listeners_.end(), a) != listeners_.end();
}

std::vector<ListenAddress> Subsystem::listeners() const {
  std::lock_guard lock(mu_);
  return listeners_;
}

void Subsystem::publish(NamespaceTable table) {
  std::atomic_store(&ns_table_, std::shared_ptr<const NamespaceTable>(
                                    std::make_shared<NamespaceTable>(std::move(table))));
  ns_generation_.fetch_add(1, std::memory_order_release);
}

uint32_t Subsystem::add_namespace(Namespace ns, std::string* error) {
  auto current = namespaces();
  if (ns.nsid == 0) {
    // The lowest free nsid, as SPDK assigns.
    uint32_t id = 1;
    while (current->count(id)) ++id;
    ns.nsid = id;
  }
  if (max_namespaces != 0 && ns.nsid > max_namespaces) {
    *error = fmt::format(
        "nsid {} is above the subsystem's max_namespaces ({}); create the "
        "subsystem with a larger max_namespaces",
        ns.nsid, max_namespaces);
    return 0;
  }
  if (ns.nsid == 0xffffffff) {
    *error = "nsid 0xFFFFFFFF is the broadcast value and cannot name a namespace";
    return 0;
  }
  if (current->count(ns.nsid)) {
    *error = fmt::format("nsid {} is already in use in {}", ns.nsid, nqn_);
    return 0;
  }
  for (const auto& [id, other] : *current) {
    if (ns.has_uuid && other->has_uuid && other->uuid == ns.uuid) {
      *error = fmt::format("uuid is already used by nsid {}", id);
      return 0;
    }
    if (ns.has_nguid && other->has_nguid && other->nguid == ns.nguid) {
      *error = fmt::format("nguid is already used by nsid {}", id);
      return 0;
    }
  }
  NamespaceTable next = *current;
  uint32_t nsid = ns.nsid;
  next[nsid] = std::make_shared<const Namespace>(std::move(ns));
  publish(std::move(next));
  notify_namespace_changed(nsid);
  return nsid;
}

bool Subsystem::remove_namespace(uint32_t nsid) {
  auto current = namespaces();
  if (!current->count(nsid)) return false;
  NamespaceTable next = *current;
  next.erase(nsid);
  publish(std::move(next));
  notify_namespace_changed(nsid);
  return true;
}

std::shared_ptr<const Namespace> Subsystem::find_namespace(uint32_t nsid) const {
  auto table = namespaces();
  auto it = table->find(nsid);
  return it == table->end() ? nullptr : it->second;
}

void Subsystem::notify_namespace_changed(uint32_t nsid) {
  for (const auto& c : controllers()) c->on_namespace_changed(nsid);
}

uint16_t Subsystem::register_controller(const std::shared_ptr<Controller>& c) {
  std::lock_guard lock(mu_);
  // Expired entries are controllers that went away without unregistering.
  std::erase_if(controllers_, [](const auto& e) { return e.second.expired(); });
  uint32_t span = static_cast<uint32_t>(max_cntlid - min_cntlid) + 1;
  for (uint32_t i = 0; i < span; ++i) {
    uint16_t id = next_cntlid_;
    next_cntlid_ = id >= max_cntlid || id < min_cntlid ? min_cntlid : id + 1;
    if (id < min_cntlid || id > max_cntlid) continue;
    if (!controllers_.count(id)) {
      controllers_[id] = c;
      return id;
    }
  }
  return 0;
}

void Subsystem::unregister_controller(uint16_t cntlid) {
  std::lock_guard lock(mu_);
  controllers_.erase(cntlid);
}

std::shared_ptr<Controller> Subsystem::find_controller(uint16_t cntlid) const {
  std::lock_guard lock(mu_);
  auto it = controllers_.find(cntlid);
  return it == controllers_.end() ? nullptr : it->second.lock();
}

std::vector<std::shared_ptr<Controller>> Subsystem::controllers() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Controller>> out;
  for (const auto& [id, w] : controllers_)
    if (auto c = w.lock()) out.push_back(std::move(c));
  return out;
}

nlohmann::json Subsystem::to_json() const {
  nlohmann::json j = {{"nqn", nqn_},
                      {"subtype", type_ == Type::kDiscovery ? "Discovery" : "NVMe"},
                      {"listen_addresses", nlohmann::json::array()},
                      {"allow_any_host", allow_any_host.load()},
                      {"hosts", nlohmann::json::array()}};
  for (const auto& l : listeners()) j["listen_addresses"].push_back(l.to_json());
  for (const auto& h : hosts()) {
    nlohmann::json e = {{"nqn", h}};
    HostKeys k = host_keys(h);  // names only: a secret never leaves the keyring
    if (k.key) e["dhchap_key"] = k.key->name;
    if (k.ctrlr_key) e["dhchap_ctrlr_key"] = k.ctrlr_key->name;
    j["hosts"].push_back(e);
  }
  if (type_ == Type::kNvme) {
    j["serial_number"] = serial_number;
    j["model_number"] = model_number;
    j["max_namespaces"] = max_namespaces;
    j["min_cntlid"] = min_cntlid;
    j["max_cntlid"] = max_cntlid;
    j["namespaces"] = nlohmann::json::array();
    for (const auto& [id, ns] : *namespaces()) j["namespaces"].push_back(ns->to_json());
  }
  return j;
}

}  // namespace nvemu::nvmf
