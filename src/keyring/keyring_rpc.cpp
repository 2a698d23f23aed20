// keyring_* RPCs with SPDK 24.x's names, parameters and error codes
// (-EEXIST, -EPERM, -ENOKEY (24.09) as negative errno with the cause appended).
#include "common/log.h"
#include "keyring/keyring.h"
#include "rpc/registry.h"

namespace nvemu::keyring {

namespace {
using nlohmann::json;
using rpc::Params;

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

json remove_key(Params& p) {
  std::string name = p.str("name");
  p.done();
  if (!Keyring::instance().remove(name))
    throw rpc::errno_error(ENOKEY, "no key named '" + name + "' (keyring_get_keys lists them)");
  return true;
}

json get_keys(Params& p) {
  p.done();
  return Keyring::instance().keys_json();
}
}  // namespace

void register_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("keyring_file_add_key", rpc::kAnyState, add_key);
  r.add("keyring_file_remove_key", rpc::kAnyState, remove_key);
  r.add("keyring_get_keys", rpc::kAnyState, get_keys);
}

}  // namespace nvemu::keyring
