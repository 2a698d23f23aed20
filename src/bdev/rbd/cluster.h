// Rados connections for the rbd bdev (SPDK's bdev_rbd cluster map).
//
// A registered cluster (bdev_rbd_register_cluster) owns one rados connection
// that every bdev naming it shares: each bdev holds a shared_ptr to the
// connection, so the connection lives until the last of them goes even after
// bdev_rbd_unregister_cluster (which refuses while bdevs use it anyway). A
// bdev created without cluster_name gets a private connection from its
// user_id and config map, as SPDK's does.
//
// connect() blocks (monitor handshake, authentication) and starts librados'
// threads, which inherit the caller's CPU affinity: call it on a worker
// thread (offload.h), never on a reactor. Every connection gets client
// timeouts unless its config sets them, so an unreachable cluster fails
// within kConnectBoundS seconds instead of librados' 300.
#pragma once

#include <rados/librados.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace nvemu::bdev::rbd {

// rados_conf_set pairs, in the order given.
using ConfigMap = std::vector<std::pair<std::string, std::string>>;
nlohmann::json config_map_json(const ConfigMap& map);

// Defaults applied before the config file and the caller's settings.
constexpr int kMountTimeoutS = 10;  // client_mount_timeout: the connect bound
constexpr int kMonOpTimeoutS = 10;  // rados_mon_op_timeout
constexpr int kOsdOpTimeoutS = 30;  // rados_osd_op_timeout: an I/O fails, not hangs
constexpr int kConnectBoundS = kMountTimeoutS;

// What a connection is made from. A registered cluster has a name and may
// read a config file and key file; a private one has only user + config.
struct ClusterParams {
  std::string name;                    // empty for a bdev's private connection
  std::optional<std::string> user_id;  // "admin", not "client.admin"
  std::optional<ConfigMap> config;     // config_param (cluster) / config (bdev)
  std::optional<std::string> config_file;
  std::optional<std::string> key_file;

  // SPDK's bdev_rbd_get_clusters_info entry (without "cluster_name").
  void add_to(nlohmann::json& out, const char* config_key) const;
};

// A connected rados_t; shut down when the last user drops it.
class Connection {
 public:
  explicit Connection(rados_t handle) : handle_(handle) {}
  ~Connection() { rados_shutdown(handle_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  rados_t handle() const { return handle_; }
  // rados_conf_get, or "" when unset.
  std::string conf(const char* key) const;

 private:
  rados_t handle_;
};

struct ConnectResult {
  std::shared_ptr<Connection> conn;
  int err = 0;  // negative errno when conn is null
  std::string message;
};

// Blocking; a worker thread only. `registered` selects SPDK's two recipes:
// a registered cluster reads config_file (or the default ceph.conf search,
// whose absence is no error), then config_param, then key_file; a private
// connection applies `config` alone, or reads the default ceph.conf when it
// has none.
ConnectResult connect(const ClusterParams& p, bool registered);

// Registered clusters by name. Main thread only.
class Clusters {
 public:
  static Clusters& instance();
  struct Entry {
    ClusterParams params;
    std::shared_ptr<Connection> conn;
  };
  const Entry* find(const std::string& name) const;
  // A name is reserved while its connect runs, so two registrations of one
  // name cannot both proceed.
  bool reserve(const std::string& name);
  void unreserve(const std::string& name);
  void add(Entry e);
  bool remove(const std::string& name);
  const std::vector<Entry>& list() const { return entries_; }

 private:
  std::vector<Entry> entries_;
  std::vector<std::string> reserved_;
};

}  // namespace nvemu::bdev::rbd
