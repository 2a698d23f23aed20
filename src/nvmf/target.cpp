#include "nvmf/target.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "nvmf/controller.h"

namespace nvemu::nvmf {

nlohmann::json TransportOpts::to_json() const {
  nlohmann::json j = {{"trtype", trtype},
                      {"max_queue_depth", max_queue_depth},
                      {"max_io_qpairs_per_ctrlr", max_io_qpairs_per_ctrlr},
                      {"in_capsule_data_size", in_capsule_data_size},
                      {"max_io_size", max_io_size},
                      {"io_unit_size", io_unit_size},
                      {"max_aq_depth", max_aq_depth},
                      {"num_shared_buffers", num_shared_buffers},
                      {"buf_cache_size", buf_cache_size},
                      {"dif_insert_or_strip", dif_insert_or_strip},
                      {"zcopy", zcopy},
                      {"abort_timeout_sec", abort_timeout_sec},
                      {"acceptor_poll_rate", acceptor_poll_rate}};
  for (auto it = specific.begin(); it != specific.end(); ++it) j[it.key()] = it.value();
  return j;
}

Target& Target::instance() {
  static Target t;
  return t;
}

Target::Target() {
  clear();
}

void Target::bump_discovery_genctr() {
  genctr_.fetch_add(1);
  if (auto d = find_subsystem(kDiscoveryNqn))
    for (const auto& c : d->controllers()) c->on_discovery_changed();
}

std::shared_ptr<Subsystem> Target::add_subsystem(const std::string& nqn, Subsystem::Type type) {
  std::unique_lock lock(mu_);
  if (subsystems_.count(nqn)) return nullptr;
  auto s = std::make_shared<Subsystem>(nqn, type);
  subsystems_[nqn] = s;
  lock.unlock();
  if (type != Subsystem::Type::kDiscovery) bump_discovery_genctr();
  return s;
}

std::shared_ptr<Subsystem> Target::find_subsystem(const std::string& nqn) const {
  std::shared_lock lock(mu_);
  auto it = subsystems_.find(nqn);
  return it == subsystems_.end() ? nullptr : it->second;
}

bool Target::remove_subsystem(const std::string& nqn) {
  std::shared_ptr<Subsystem> s;
  {
    std::unique_lock lock(mu_);
    auto it = subsystems_.find(nqn);
    if (it == subsystems_.end()) return false;
    s = it->second;
    subsystems_.erase(it);
  }
  for (Transport* t : transports()) t->disconnect_subsystem(nqn);
  for (const auto& c : s->controllers()) c->on_subsystem_removed();
  bump_discovery_genctr();
  return true;
}

std::vector<std::shared_ptr<Subsystem>> Target::subsystems() const {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<Subsystem>> out;
  // The discovery subsystem first, as nvmf_get_subsystems lists it.
  for (const auto& [nqn, s] : subsystems_)
    if (s->type() == Subsystem::Type::kDiscovery) out.push_back(s);
  for (const auto& [nqn, s] : subsystems_)
    if (s->type() != Subsystem::Type::kDiscovery) out.push_back(s);
  return out;
}

void Target::register_factory(const std::string& trtype, Factory f) {
  std::unique_lock lock(mu_);
  factories_[trtype] = std::move(f);
}

bool Target::has_factory(const std::string& trtype) const {
  std::shared_lock lock(mu_);
  return factories_.count(trtype) != 0;
}

void Target::register_defaults(const std::string& trtype, Defaults d) {
  std::unique_lock lock(mu_);
  defaults_[trtype] = std::move(d);
}

void Target::apply_defaults(TransportOpts& opts) const {
  std::shared_lock lock(mu_);
  auto it = defaults_.find(opts.trtype);
  if (it != defaults_.end()) it->second(opts);
}

Transport* Target::add_transport(TransportOpts opts, std::string* error) {
  Factory f;
  {
    std::shared_lock lock(mu_);
    auto it = factories_.find(opts.trtype);
    if (it == factories_.end()) {
      std::vector<std::string> known;
      for (const auto& [name, fn] : factories_) known.push_back(name);
      *error = fmt::format("transport type '{}' is not known (available: {})", opts.trtype,
                           fmt::join(known, ", "));
      return nullptr;
    }
    f = it->second;
  }
  if (find_transport(opts.trtype)) {
    *error = fmt::format("transport type '{}' already exists", opts.trtype);
    return nullptr;
  }
  std::unique_ptr<Transport> t = f(std::move(opts), error);
  if (!t) return nullptr;
  std::unique_lock lock(mu_);
  transports_.push_back(std::move(t));
  return transports_.back().get();
}

Transport* Target::find_transport(const std::string& trtype) const {
  std::shared_lock lock(mu_);
  for (const auto& t : transports_)
    if (t->trtype() == trtype) return t.get();
  return nullptr;
}

std::vector<Transport*> Target::transports() const {
  std::shared_lock lock(mu_);
  std::vector<Transport*> out;
  for (const auto& t : transports_) out.push_back(t.get());
  return out;
}

void Target::clear() {
  std::vector<std::unique_ptr<Transport>> transports;
  {
    std::unique_lock lock(mu_);
    subsystems_.clear();
    transports.swap(transports_);
  }
  transports.clear();
  max_subsystems = 1024;
  crdt = {};
  add_subsystem(kDiscoveryNqn, Subsystem::Type::kDiscovery);
}

}  // namespace nvemu::nvmf
