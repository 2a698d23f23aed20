#include "bdev/rbd/cluster.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace nvemu::bdev::rbd {
namespace {

constexpr const char* kLog = "bdev_rbd";

std::string who(const ClusterParams& p) {
  std::string user = "client." + p.user_id.value_or("admin");
  return p.name.empty() ? user : fmt::format("cluster '{}' ({})", p.name, user);
}

// A file librados would read: missing or unreadable files are named here,
// because librados reports both as a bare ENOENT at connect.
std::string check_readable(const char* what, const std::string& path) {
  if (access(path.c_str(), R_OK) == 0) return "";
  int err = errno;
  return fmt::format("{} {} cannot be read ({}); give the path of an existing, readable file", what,
                     path, strerror(err));
}

std::string connect_error(const ClusterParams& p, int rc) {
  switch (-rc) {
    case ETIMEDOUT:
      return fmt::format(
          "{}: no monitor answered within {} s (client_mount_timeout); check that the cluster "
          "is up and that mon_host (config file or config) names its monitors",
          who(p), kMountTimeoutS);
    case EACCES:
    case EPERM:
      return fmt::format(
          "{}: the monitors refused authentication; check the user and its key (key_file or "
          "keyring)",
          who(p));
    case ENOENT:
      return fmt::format(
          "{}: no key found for this user; give key_file (bdev_rbd_register_cluster) or a "
          "'keyring' entry in the config",
          who(p));
    case EINVAL:
      return fmt::format(
          "{}: no monitors to connect to; give config_file or a 'mon_host' config entry", who(p));
    default:
      return fmt::format("{}: rados_connect failed: {}", who(p), strerror(-rc));
  }
}

}  // namespace

nlohmann::json config_map_json(const ConfigMap& map) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : map) out[k] = v;
  return out;
}

void ClusterParams::add_to(nlohmann::json& out, const char* config_key) const {
  if (user_id) out["user_id"] = *user_id;
  if (config) out[config_key] = config_map_json(*config);
  if (config_file) out["config_file"] = *config_file;
  if (key_file) out["key_file"] = *key_file;
}

std::string Connection::conf(const char* key) const {
  char buf[256];
  if (rados_conf_get(handle_, key, buf, sizeof buf) != 0) return "";
  return buf;
}

ConnectResult connect(const ClusterParams& p, bool registered) {
  ConnectResult out;
  auto fail = [&](int err, std::string msg) {
    out.err = err;
    out.message = std::move(msg);
    LOG_ERROR(kLog, "{}", out.message);
    return out;
  };
  if (registered && p.config_file) {
    std::string e = check_readable("config_file", *p.config_file);
    if (!e.empty()) return fail(-ENOENT, e);
  }
  if (registered && p.key_file) {
    std::string e = check_readable("key_file", *p.key_file);
    if (!e.empty()) return fail(-ENOENT, e);
  }

  rados_t h = nullptr;
  int rc = rados_create(&h, p.user_id ? p.user_id->c_str() : nullptr);
  if (rc < 0)
    return fail(rc,
                fmt::format("{}: rados_create failed: {}; check user_id", who(p), strerror(-rc)));
  auto conn = std::make_shared<Connection>(h);  // shuts h down on every failure below

  // Bounds first: the config file and the caller's settings may override them.
  rados_conf_set(h, "client_mount_timeout", std::to_string(kMountTimeoutS).c_str());
  rados_conf_set(h, "rados_mon_op_timeout", std::to_string(kMonOpTimeoutS).c_str());
  rados_conf_set(h, "rados_osd_op_timeout", std::to_string(kOsdOpTimeoutS).c_str());

  if (registered || !p.config) {
    const char* file = p.config_file ? p.config_file->c_str() : nullptr;
    rc = rados_conf_read_file(h, file);
    // The default search (/etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf)
    // may find nothing; SPDK ignores that, and so does nvemu.
    if (rc < 0 && file)
      return fail(rc, fmt::format("config_file {} is not a valid Ceph configuration ({}); fix "
                                  "its syntax",
                                  *p.config_file, strerror(-rc)));
  }
  if (p.config) {
    const char* what = registered ? "config_param" : "config";
    for (const auto& [k, v] : *p.config) {
      rc = rados_conf_set(h, k.c_str(), v.c_str());
      if (rc < 0)
        return fail(rc,
                    fmt::format("{} '{}' = '{}' was refused ({}); {}", what, k, v, strerror(-rc),
                                rc == -ENOENT ? "it is not a Ceph option name"
                                              : "check the value's type and range"));
    }
  }
  if (p.key_file) {
    rc = rados_conf_set(h, "keyring", p.key_file->c_str());
    if (rc < 0) return fail(rc, fmt::format("key_file {}: {}", *p.key_file, strerror(-rc)));
  }
  rc = rados_connect(h);
  if (rc < 0) return fail(rc, connect_error(p, rc));
  out.conn = std::move(conn);
  return out;
}

Clusters& Clusters::instance() {
  static Clusters c;
  return c;
}

const Clusters::Entry* Clusters::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.params.name == name) return &e;
  return nullptr;
}

bool Clusters::reserve(const std::string& name) {
  if (find(name) || std::count(reserved_.begin(), reserved_.end(), name)) return false;
  reserved_.push_back(name);
  return true;
}

void Clusters::unreserve(const std::string& name) {
  std::erase(reserved_, name);
}

void Clusters::add(Entry e) {
  entries_.push_back(std::move(e));
}

bool Clusters::remove(const std::string& name) {
  return std::erase_if(entries_, [&](const Entry& e) { return e.params.name == name; }) != 0;
}

}  // namespace nvemu::bdev::rbd
