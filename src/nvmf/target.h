// The NVMe-oF target: subsystems by NQN, the discovery subsystem, transports
// by type. Mutated on the main thread; looked up from any reactor (Connect)
// under a shared lock that the I/O path never takes.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string>
#include <vector>

#include "nvmf/subsystem.h"
#include "nvmf/transport.h"

namespace nvemu::nvmf {

class Target {
 public:
  static Target& instance();

  std::shared_ptr<Subsystem> add_subsystem(const std::string& nqn, Subsystem::Type type);
  std::shared_ptr<Subsystem> find_subsystem(const std::string& nqn) const;
  bool remove_subsystem(const std::string& nqn);
  std::vector<std::shared_ptr<Subsystem>> subsystems() const;

  // Transports. Factories are registered at start-up by each transport module.
  using Factory = std::function<std::unique_ptr<Transport>(TransportOpts, std::string* error)>;
  void register_factory(const std::string& trtype, Factory f);
  bool has_factory(const std::string& trtype) const;
  // Defaults for a transport type (SPDK's per-transport defaults).
  using Defaults = std::function<void(TransportOpts&)>;
  void register_defaults(const std::string& trtype, Defaults d);
  void apply_defaults(TransportOpts& opts) const;
  Transport* add_transport(TransportOpts opts, std::string* error);
  Transport* find_transport(const std::string& trtype) const;
  std::vector<Transport*> transports() const;

  // Discovery log generation counter; bumped on any change a host would
  // see, which also raises the Discovery Log Page Change event on connected
  // discovery controllers.
  uint64_t discovery_genctr() const { return genctr_.load(); }
  void bump_discovery_genctr();

  // nvmf_set_max_subsystems (SPDK's default), counting the discovery
  // subsystem as SPDK does, and nvmf_set_crdt: the Command Retry Delay
  // Times that Identify Controller reports (100 ms units). Start-up only.
  uint32_t max_subsystems = 1024;
  std::array<uint16_t, 3> crdt{};

  // nvmf_set_config dhchap_digests / dhchap_dhgroups (SPDK 24.x): bit N
  // allows hash id N resp. DH group id N (Base 2.0, Figures 458-459). All
  // by default; the strongest pair the host also offers is chosen.
  std::atomic<uint32_t> dhchap_digests{0xe};
  std::atomic<uint32_t> dhchap_dhgroups{0x3f};

  // Global options from nvmf_set_config.
  nlohmann::json config = {{"discovery_filter", "match_any"},
                           {"admin_cmd_passthru", {{"identify_ctrlr", false}}}};

  void clear();  // shutdown / tests

 private:
  Target();
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<Subsystem>> subsystems_;
  std::map<std::string, Factory> factories_;
  std::map<std::string, Defaults> defaults_;
  std::vector<std::unique_ptr<Transport>> transports_;
  std::atomic<uint64_t> genctr_{0};
};

}  // namespace nvemu::nvmf
