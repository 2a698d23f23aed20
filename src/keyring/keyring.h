// The keyring (SPDK 24.x's keyring with its "file" module): named secrets
// that RPCs refer to by name, so a key never travels in a config or a log.
// A key is read once, when it is added, from a file that only the daemon's
// user may read. Keys are immutable; whoever uses one (a host entry of a
// subsystem, a bdev_nvme controller) holds a reference, so removing a key
// from the keyring does not pull it from under a live user (SPDK's
// "removed" state).
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/auth/dhchap.h"

namespace nvemu::keyring {

struct Key {
  std::string name;
  std::string path;
  auth::Secret secret;  // DH-HMAC-CHAP secret (DHHC-1); never printed
};

class Keyring {
 public:
  static Keyring& instance();

  // keyring_file_add_key. Returns "" or why not with *err_no set to the
  // errno SPDK reports (EEXIST, EPERM, ENOENT, EINVAL...). The message
  // names the path and the fix.
  std::string add_file_key(const std::string& name, const std::string& path, int* err_no);
  // keyring_file_remove_key: false when no such key.
  bool remove(const std::string& name);
  // nullptr when absent.
  std::shared_ptr<const Key> find(const std::string& name) const;
  // keyring_get_keys entries (no secrets).
  nlohmann::json keys_json() const;
  nlohmann::json config_json() const;  // keyring_file_add_key entries
  void clear();

 private:
  Keyring() = default;
  mutable std::mutex mu_;  // control path only: RPCs and Connect-time lookups
  std::vector<std::shared_ptr<const Key>> keys_;
  std::vector<std::weak_ptr<const Key>> removed_;  // still referenced by a user
};

// keyring_file_add_key, keyring_file_remove_key, keyring_get_keys.
void register_rpcs();
// {"subsystem":"keyring","config":[...]} for save_config.
nlohmann::json config_json();

}  // namespace nvemu::keyring
