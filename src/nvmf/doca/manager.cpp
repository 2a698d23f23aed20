#include "nvmf/doca/manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

namespace nvemu::nvmf::doca {

Managers& Managers::instance() {
  static Managers m;
  return m;
}

Managers::Managers() {
  managers_.push_back(kDefaultManager);
}

bool Managers::add_manager(const std::string& name) {
  if (has_manager(name)) return false;
  managers_.push_back(name);
  return true;
}

bool Managers::has_manager(const std::string& name) const {
  return std::find(managers_.begin(), managers_.end(), name) != managers_.end();
}

std::vector<std::string> Managers::managers() const {
  return managers_;
}

std::string Managers::base_dir() {
  const char* d = std::getenv("NVEMU_DOCA_DIR");
  return d && *d ? d : "/var/tmp/nvemu-doca";
}

std::string Managers::create_function(const std::string& manager) {
  // VUIDs are opaque strings on DOCA too; ours say where they came from.
  unsigned idx = next_index_[manager]++;
  std::string vuid = fmt::format("NVEMU{}NVMEF{}", manager, idx);
  while (functions_.count(vuid))
    vuid = fmt::format("NVEMU{}NVMEF{}", manager, next_index_[manager]++);
  Function f;
  f.vuid = vuid;
  f.manager = manager;
  f.dir = fmt::format("{}/{}", base_dir(), vuid);
  functions_[vuid] = std::move(f);
  return vuid;
}

bool Managers::create_function(const std::string& manager, const std::string& vuid) {
  if (functions_.count(vuid)) return false;
  Function f;
  f.vuid = vuid;
  f.manager = manager;
  f.dir = fmt::format("{}/{}", base_dir(), vuid);
  functions_[vuid] = std::move(f);
  return true;
}

std::vector<nlohmann::json> Managers::config_entries() const {
  std::vector<nlohmann::json> out;
  for (const auto& m : managers_)
    if (m != kDefaultManager)
      out.push_back({{"method", "nvmf_doca_create_manager"}, {"params", {{"name", m}}}});
  for (const auto& [vuid, f] : functions_)
    out.push_back({{"method", "nvmf_doca_create_function"},
                   {"params", {{"dev_name", f.manager}, {"vuid", vuid}}}});
  return out;
}

Function* Managers::find(const std::string& vuid) {
  auto it = functions_.find(vuid);
  return it == functions_.end() ? nullptr : &it->second;
}

std::vector<Function*> Managers::functions(const std::string& manager) {
  std::vector<Function*> out;
  for (auto& [vuid, f] : functions_)
    if (f.manager == manager) out.push_back(&f);
  return out;
}

bool Managers::erase(const std::string& vuid) {
  return functions_.erase(vuid) != 0;
}

void Managers::clear() {
  functions_.clear();
  next_index_.clear();
}

}  // namespace nvemu::nvmf::doca
