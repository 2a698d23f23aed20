// The bdev_rbd RPCs with SPDK v23.01's names, parameters, results and error
// codes (module/bdev/rbd/bdev_rbd_rpc.c). SPDK answers most rbd failures
// with -1 ("Operation not permitted"); nvemu keeps that code and adds the
// cause and the fix after it. Connecting and opening run off the reactors
// (offload.h), so these methods answer asynchronously.
#include "bdev/rbd/rbd_rpc.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>

#include "bdev/bdev.h"
#include "bdev/bdev_rpc.h"
#include "bdev/rbd/cluster.h"
#include "bdev/rbd/rbd.h"
#include "common/log.h"
#include "reactor/offload.h"
#include "rpc/registry.h"

namespace nvemu::bdev::rbd {
namespace {

using nlohmann::json;
using rpc::Params;
using rpc::Responder;

constexpr const char* kLog = "bdev_rbd";

// Bdevs being created (their open runs on a worker) -> the cluster they use.
std::map<std::string, std::string>& pending_bdevs() {
  static std::map<std::string, std::string> s;
  return s;
}

// SPDK names an unnamed rbd bdev Ceph<N>, N counting successful creates.
unsigned g_created = 0;

// SPDK's bdev_rbd_decode_config: an object of strings; null is empty.
std::optional<ConfigMap> config_map(Params& p, const char* key) {
  const json* v = p.opt_value(key);
  if (!v) return std::nullopt;
  ConfigMap out;
  if (v->is_null()) return out;
  if (!v->is_object())
    throw rpc::invalid_params(
        fmt::format("{}: {} must be an object of Ceph option names to string values, e.g. "
                    "{{\"mon_host\": \"127.0.0.1:6789\"}}",
                    p.method(), key));
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_string())
      throw rpc::invalid_params(fmt::format("{}: {}.{} must be a string (got {})", p.method(), key,
                                            it.key(), it.value().dump()));
    out.emplace_back(it.key(), it.value().get<std::string>());
  }
  return out;
}

rpc::RpcError eperm(const std::string& detail) {
  return rpc::errno_error(EPERM, detail);
}

std::vector<std::string> users_of(const std::string& cluster) {
  std::vector<std::string> out;
  for (const auto& b : Registry::instance().list())
    if (auto* r = dynamic_cast<RbdBdev*>(b.get()); r && r->cluster_name() == cluster)
      out.push_back(r->name());
  for (const auto& [bdev, c] : pending_bdevs())
    if (c == cluster) out.push_back(bdev + " (being created)");
  return out;
}

void register_cluster(Params& p, const Responder& r) {
  ClusterParams c;
  c.name = p.opt_str("name").value_or("");
  c.user_id = p.opt_str("user_id");
  c.config = config_map(p, "config_param");
  c.config_file = p.opt_str("config_file");
  c.key_file = p.opt_str("key_file");
  p.done();
  if (c.name.empty())
    throw eperm("bdev_rbd_register_cluster: name is missing or empty; give the cluster a name");
  if (!Clusters::instance().reserve(c.name))
    throw eperm(
        fmt::format("a cluster named '{}' is already registered; pick another name or "
                    "bdev_rbd_unregister_cluster it first",
                    c.name));
  auto res = std::make_shared<ConnectResult>();
  offload([res, c] { *res = connect(c, true); },
          [res, c, r] {
            Clusters::instance().unreserve(c.name);
            if (!res->conn) return r.error(eperm(res->message));
            Clusters::instance().add({c, res->conn});
            LOG_NOTICE(kLog, "registered cluster {}", c.name);
            r.result(c.name);
          });
}

json unregister_cluster(Params& p) {
  std::string name = p.str("name");
  p.done();
  if (!Clusters::instance().find(name))
    throw eperm(fmt::format(
        "no cluster named '{}' is registered (bdev_rbd_get_clusters_info lists them)", name));
  auto users = users_of(name);
  if (!users.empty())
    throw eperm(fmt::format("cluster '{}' is still used by bdev {}; bdev_rbd_delete {} first", name,
                            fmt::join(users, ", "), users.size() == 1 ? "it" : "them"));
  Clusters::instance().remove(name);
  return true;
}

json cluster_json(const ClusterParams& c) {
  json out = {{"cluster_name", c.name}};
  c.add_to(out, "config_param");
  return out;
}

json get_clusters_info(Params& p) {
  auto name = p.opt_str("name");
  p.done();
  const auto& all = Clusters::instance().list();
  if (all.empty())
    throw rpc::errno_error(ENOENT, "no cluster is registered; bdev_rbd_register_cluster adds one");
  if (name) {
    if (const auto* e = Clusters::instance().find(*name)) return cluster_json(e->params);
    throw rpc::errno_error(ENOENT, fmt::format("no cluster named '{}' is registered", *name));
  }
  json out = json::array();
  for (const auto& e : all) out.push_back(cluster_json(e.params));
  return out;
}

void reject_taken(const std::string& name) {
  if (Registry::instance().find(name) || pending_bdevs().count(name))
    throw rpc::errno_error(EEXIST, fmt::format("a bdev named '{}' already exists; pick another "
                                               "name or delete it first",
                                               name));
}

void create(Params& p, const Responder& r) {
  RbdParams rp;
  rp.name = p.opt_str("name").value_or("");
  rp.private_conn.user_id = p.opt_str("user_id");
  rp.pool_name = p.str("pool_name");
  rp.rbd_name = p.str("rbd_name");
  rp.block_size = p.u32("block_size");
  rp.private_conn.config = config_map(p, "config");
  rp.cluster_name = p.opt_str("cluster_name").value_or("");
  auto uuid = p.opt_str("uuid");
  p.done();
  if (uuid && !is_valid_uuid(*uuid))
    throw rpc::errno_error(EINVAL, fmt::format("Failed to parse bdev UUID '{}'; give one like "
                                               "11111111-2222-3333-4444-555555555555",
                                               *uuid));
  rp.uuid = uuid.value_or("");
  if (rp.block_size < 512 || (rp.block_size & (rp.block_size - 1)))
    throw rpc::errno_error(EINVAL, fmt::format("block_size {} is invalid: give a power of two of "
                                               "at least 512 (e.g. 512 or 4096)",
                                               rp.block_size));
  if (rp.pool_name.empty() || rp.rbd_name.empty())
    throw rpc::errno_error(EINVAL, "pool_name and rbd_name must not be empty");
  if (rp.name.empty()) rp.name = fmt::format("Ceph{}", g_created);
  reject_taken(rp.name);

  std::shared_ptr<Connection> shared;
  std::string where;
  if (!rp.cluster_name.empty()) {
    const auto* e = Clusters::instance().find(rp.cluster_name);
    if (!e)
      throw eperm(
          fmt::format("no cluster named '{}' is registered; bdev_rbd_register_cluster {} first "
                      "(bdev_rbd_get_clusters_info lists the registered ones)",
                      rp.cluster_name, rp.cluster_name));
    shared = e->conn;
    where = fmt::format("cluster '{}'", rp.cluster_name);
  } else {
    LOG_WARN(kLog,
             "{}: no cluster_name: the bdev gets a connection of its own; "
             "bdev_rbd_register_cluster shares one between bdevs",
             rp.name);
    where = fmt::format("the cluster of client.{}", rp.private_conn.user_id.value_or("admin"));
  }
  pending_bdevs()[rp.name] = rp.cluster_name;
  auto res = std::make_shared<OpenResult>();
  offload(
      [res, rp, shared, where] {
        std::shared_ptr<Connection> conn = shared;
        if (!conn) {
          ConnectResult c = connect(rp.private_conn, false);
          if (!c.conn) {
            res->err = c.err;
            res->message = c.message;
            return;
          }
          conn = std::move(c.conn);
        }
        *res = open_image(std::move(conn), rp.pool_name, rp.rbd_name, where);
      },
      [res, rp, r] {
        pending_bdevs().erase(rp.name);
        if (!res->image) {
          LOG_ERROR(kLog, "{}: {}", rp.name, res->message);
          return r.error(eperm(res->message));
        }
        uint64_t blocks = res->size_bytes / rp.block_size;
        if (blocks == 0)
          return r.error(rpc::errno_error(
              EINVAL, fmt::format("image '{}/{}' holds {} bytes, less than one {}-byte block; "
                                  "grow it (rbd resize) or use a smaller block_size",
                                  rp.pool_name, rp.rbd_name, res->size_bytes, rp.block_size)));
        auto b = std::make_shared<RbdBdev>(rp, res->image, blocks);
        if (!Registry::instance().add(b))
          return r.error(rpc::errno_error(
              EEXIST, fmt::format("a bdev named '{}' already exists; pick another name or "
                                  "delete it first",
                                  rp.name)));
        ++g_created;
        LOG_NOTICE(kLog, "created {} on {}/{}: {} x {} B", rp.name, rp.pool_name, rp.rbd_name,
                   blocks, rp.block_size);
        r.result(rp.name);
      });
}

std::shared_ptr<RbdBdev> rbd_bdev_or_throw(const std::string& name, int not_rbd_errno) {
  auto b = Registry::instance().find(name);
  if (!b)
    throw rpc::errno_error(ENODEV,
                           fmt::format("no bdev named '{}' (bdev_get_bdevs lists them)", name));
  auto rb = std::dynamic_pointer_cast<RbdBdev>(b);
  if (!rb)
    throw rpc::errno_error(not_rbd_errno,
                           fmt::format("bdev '{}' is a {} bdev, not rbd; use bdev_{}_delete", name,
                                       b->module_name(), b->module_name()));
  return rb;
}

json delete_bdev(Params& p) {
  std::string name = p.str("name");
  p.done();
  reject_if_vbdev_base(*rbd_bdev_or_throw(name, ENODEV));
  Registry::instance().remove(name);
  return true;
}

void resize(Params& p, const Responder& r) {
  std::string name = p.str("name");
  uint64_t new_mib = p.u64("new_size");
  p.done();
  auto b = rbd_bdev_or_throw(name, EINVAL);
  const uint64_t cur_mib = b->block_size() * b->num_blocks() / (1024 * 1024);
  if (new_mib < cur_mib)
    throw rpc::errno_error(
        EINVAL, fmt::format("{} is {} MiB; the new size ({} MiB) must not be smaller (an rbd "
                            "bdev only grows)",
                            name, cur_mib, new_mib));
  if (new_mib > (UINT64_MAX >> 20))
    throw rpc::errno_error(EINVAL, fmt::format("new_size {} MiB is too large", new_mib));
  const uint64_t bytes = new_mib << 20;
  auto rc = std::make_shared<int>(0);
  offload([b, bytes, rc] { *rc = rbd_resize(b->image(), bytes); },
          [b, bytes, rc, r] {
            if (*rc < 0)
              return r.error(rpc::errno_error(
                  -*rc, fmt::format("rbd_resize of {} to {} bytes failed", b->name(), bytes)));
            b->grow(bytes / b->block_size());
            LOG_NOTICE(kLog, "{} resized to {} blocks", b->name(), b->num_blocks());
            r.result(true);
          });
}

const rpc::ErrorDoc kBadConfigMap{rpc::kInvalidParams,
                                  "config_param/config not an object of strings"};
const rpc::MethodDoc kRegisterCluster{
    "Connects to a Ceph cluster (config_param, config_file, key_file, user_id) once, to be "
    "shared by the rbd bdevs that name it.",
    "the cluster's name (string)",
    {kBadConfigMap,
     {-EPERM, "name missing or registered already; the connection to the cluster failed"}}};
const rpc::MethodDoc kUnregisterCluster{
    "Disconnects a registered cluster.",
    "true",
    {{-EPERM, "no cluster with that name, or an rbd bdev still uses it"}}};
const rpc::MethodDoc kGetClustersInfo{
    "The registered clusters, or the one named.",
    "array of {cluster_name, config_param, ...}; with name: one such object",
    {{-ENOENT, "no cluster registered, or none with that name"}}};
const rpc::MethodDoc kCreate{
    "Creates a bdev on an RBD image (pool_name/rbd_name), over a registered cluster or a "
    "connection of its own; without a name it is called CephN.",
    "the bdev's name (string)",
    {kBadConfigMap,
     {-EINVAL,
      "uuid not a UUID; block_size not a power of two >= 512; empty pool_name or "
      "rbd_name; the image is smaller than one block"},
     {-EEXIST, "a bdev with that name exists or is being created"},
     {-EPERM, "cluster_name not registered; connecting or opening the image failed"}}};
const rpc::MethodDoc kDelete{"Deletes an rbd bdev (the image stays in Ceph).",
                             "true",
                             {{-ENODEV, "no bdev with that name, or it is not an rbd bdev"},
                              {-EBUSY, "it is the base of an error or delay bdev"}}};
const rpc::MethodDoc kResize{
    "Grows an rbd bdev and its image to new_size MiB.",
    "true",
    {{-ENODEV, "no bdev with that name"},
     {-EINVAL, "not an rbd bdev; new_size smaller than the current size or too large"},
     {-EIO, "librbd's rbd_resize failed (its -errno is returned, e.g. -5 EIO)"}}};

void module_config(json& config) {
  for (const auto& e : Clusters::instance().list()) {
    json params = {{"name", e.params.name}};
    e.params.add_to(params, "config_param");
    config.push_back({{"method", "bdev_rbd_register_cluster"}, {"params", params}});
  }
}

}  // namespace

void shutdown() {
  while (!Clusters::instance().list().empty())
    Clusters::instance().remove(Clusters::instance().list().front().params.name);
}

void register_rpcs() {
  auto& reg = rpc::Registry::instance();
  reg.add_async("bdev_rbd_register_cluster", rpc::kRuntime, register_cluster, kRegisterCluster);
  reg.add("bdev_rbd_unregister_cluster", rpc::kRuntime, unregister_cluster, kUnregisterCluster);
  reg.add("bdev_rbd_get_clusters_info", rpc::kRuntime, get_clusters_info, kGetClustersInfo);
  reg.add_async("bdev_rbd_create", rpc::kRuntime, create, kCreate);
  reg.add("bdev_rbd_delete", rpc::kRuntime, delete_bdev, kDelete);
  reg.add_async("bdev_rbd_resize", rpc::kRuntime, resize, kResize);
  add_module_config(module_config);
}

}  // namespace nvemu::bdev::rbd
