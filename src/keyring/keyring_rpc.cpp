// keyring_* RPCs with SPDK 24.x's names, parameters and error codes
// (-EEXIST, -EPERM, -ENOKEY (24.09) as negative errno with the cause appended).
#include "common/log.h"
#include "keyring/keyring.h"
#include "rpc/registry.h"

namespace nvemu::keyring {

namespace {
using nlohmann::json;
using rpc::Params;

const rpc::MethodDoc kAddKey{
    "Adds a DH-HMAC-CHAP secret read from a file (absolute path, mode 0600, owned by the "
    "daemon's user) under a name that nvmf_subsystem_add_host's dhchap_key can refer to.",
    "true",
    {{-EEXIST, "a key with that name exists"},
     {-EPERM,
      "path not absolute; file readable by others (chmod 0600) or not owned by the "
      "daemon's uid"},
     {-EINVAL, "empty name; not a regular file; larger than 4 KiB; not a DHHC-1 secret"},
     {-ENOENT,
      "the file does not exist (any open/read errno is returned the same way, e.g. "
      "-13 EACCES)"}}};
json add_key(Params& p) {
  std::string name = p.str("name");
  std::string path = p.str("path");
  p.done();
  int err = 0;
  std::string why = Keyring::instance().add_file_key(name, path, &err);
  if (!why.empty()) {
    LOG_ERROR("keyring", "keyring_file_add_key {}: {}", name, why);
    throw rpc::errno_error(err, why);
  }
  LOG_INFO("keyring", "key '{}' added from {}", name, path);
  return true;
}

const rpc::MethodDoc kRemoveKey{
    "Removes a key by name; subsystems' hosts that use it keep their copy until removed.",
    "true",
    {{-ENOKEY, "no key with that name"}}};
json remove_key(Params& p) {
  std::string name = p.str("name");
  p.done();
  if (!Keyring::instance().remove(name))
    throw rpc::errno_error(ENOKEY, "no key named '" + name + "' (keyring_get_keys lists them)");
  return true;
}

const rpc::MethodDoc kGetKeys{
    "Lists the keys, including removed ones still held by a host.",
    "array of {name, module: \"keyring_file\", removed, probed, refcnt, path (not once removed)}",
    {{rpc::kInvalidParams, "params given: the method takes none"}}};
json get_keys(Params& p) {
  p.done();
  return Keyring::instance().keys_json();
}
}  // namespace

void register_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("keyring_file_add_key", rpc::kAnyState, add_key, kAddKey);
  r.add("keyring_file_remove_key", rpc::kAnyState, remove_key, kRemoveKey);
  r.add("keyring_get_keys", rpc::kAnyState, get_keys, kGetKeys);
}

}  // namespace nvemu::keyring
