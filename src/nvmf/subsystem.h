// NVM subsystems and their namespaces, hosts and listeners: the config objects
// the nvmf_* RPCs create. Config is changed on the main (RPC) thread;
// controllers on any reactor read the namespace table through an immutable
// snapshot, so the I/O path takes no lock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "keyring/keyring.h"
#include "nvmf/range_lock.h"

namespace nvemu::nvmf {

class Controller;

constexpr const char* kDiscoveryNqn = "nqn.2014-08.org.nvmexpress.discovery";
constexpr size_t kMaxNqnLength = 223;

// Checks an NQN per NVMe Base 2.0, 4.5: "nqn.yyyy-mm.reverse.domain:name" or
// "nqn.2014-08.org.nvmexpress:uuid:<uuid>", at most 223 bytes. Returns an
// empty string when valid, else what is wrong.
std::string validate_nqn(const std::string& nqn);

struct ListenAddress {
  std::string trtype;  // "TCP", "VFIOUSER", "DOCA" (upper case, as SPDK reports)
  std::string adrfam;  // "IPv4", "IPv6", "" for non-IP transports
  std::string traddr;
  std::string trsvcid;
  bool operator==(const ListenAddress&) const = default;
  nlohmann::json to_json() const;  // SPDK's listen_address shape
};

struct Namespace {
  uint32_t nsid = 0;
  std::shared_ptr<bdev::Bdev> bdev;
  std::array<uint8_t, 16> nguid{};
  std::array<uint8_t, 8> eui64{};
  std::array<uint8_t, 16> uuid{};
  bool has_nguid = false, has_eui64 = false, has_uuid = false;
  uint32_t anagrpid = 1;
  // Fused Compare and Write range locks, shared by every reactor.
  std::shared_ptr<RangeLockTable> range_locks = std::make_shared<RangeLockTable>();
  nlohmann::json to_json() const;  // nvmf_get_subsystems "namespaces" entry
};

// nsid -> namespace, immutable once published.
using NamespaceTable = std::map<uint32_t, std::shared_ptr<const Namespace>>;

class Subsystem {
 public:
  enum class Type { kNvme, kDiscovery };

  Subsystem(std::string nqn, Type type);
  ~Subsystem();

  const std::string& nqn() const { return nqn_; }
  Type type() const { return type_; }

  // Identity reported in Identify Controller. Set before hosts connect.
  std::string serial_number = "00000000000000000000";
  std::string model_number = "nvemu Controller";
  uint32_t max_namespaces = 32;  // SPDK's default; 0 means "no limit" as in SPDK
  uint16_t min_cntlid = 1;
  uint16_t max_cntlid = 0xffef;
  bool ana_reporting = false;

  // Hosts. allow_any_host is read by connect on any reactor.
  std::atomic<bool> allow_any_host{false};
  bool host_allowed(const std::string& hostnqn) const;
  // A host's DH-HMAC-CHAP keys (nvmf_subsystem_add_host dhchap_key /
  // dhchap_ctrlr_key): with `key` set the host must authenticate; with
  // `ctrlr_key` too it may ask the controller to authenticate back.
  struct HostKeys {
    std::shared_ptr<const keyring::Key> key, ctrlr_key;
  };
  // Adds the host or replaces its keys. false: it was already present.
  bool add_host(const std::string& hostnqn, HostKeys keys = {});
  bool remove_host(const std::string& hostnqn);  // false: absent
  std::vector<std::string> hosts() const;
  // The host's keys; empty when it has none (or is not listed).
  HostKeys host_keys(const std::string& hostnqn) const;

  // Listeners (config view; the transport owns the sockets).
  bool add_listener(const ListenAddress& a);
  bool remove_listener(const ListenAddress& a);
  bool has_listener(const ListenAddress& a) const;
  std::vector<ListenAddress> listeners() const;

  // Namespaces. add_namespace returns the nsid or 0 with `error` set.
  uint32_t add_namespace(Namespace ns, std::string* error);
  bool remove_namespace(uint32_t nsid);
  std::shared_ptr<const NamespaceTable> namespaces() const { return std::atomic_load(&ns_table_); }
  // Bumped after each new namespace table is published: the I/O path keeps
  // its lookups until it changes (acquire: the new table is then visible).
  uint64_t ns_generation() const { return ns_generation_.load(std::memory_order_acquire); }
  std::shared_ptr<const Namespace> find_namespace(uint32_t nsid) const;
  // A namespace's bdev changed in place (it grew): every controller sends a
  // Namespace Attribute Changed event and lists the nsid in its log.
  void notify_namespace_changed(uint32_t nsid);

  // Controllers. Connect (on any reactor) registers; the controller
  // unregisters itself when it goes away.
  uint16_t register_controller(const std::shared_ptr<Controller>& c);  // 0 if none free
  void unregister_controller(uint16_t cntlid);
  std::shared_ptr<Controller> find_controller(uint16_t cntlid) const;
  std::vector<std::shared_ptr<Controller>> controllers() const;

  nlohmann::json to_json() const;  // one nvmf_get_subsystems entry

 private:
  void publish(NamespaceTable table);

  const std::string nqn_;
  const Type type_;
  mutable std::mutex mu_;  // hosts, listeners, controllers; never on the I/O path
  std::map<std::string, HostKeys> hosts_;
  std::vector<ListenAddress> listeners_;
  std::shared_ptr<const NamespaceTable> ns_table_;
  std::atomic<uint64_t> ns_generation_{0};
  std::map<uint16_t, std::weak_ptr<Controller>> controllers_;
  uint16_t next_cntlid_ = 1;
};

}  // namespace nvemu::nvmf
