// rpc.py's keyring_* parsers (SPDK 24.x scripts/rpc.py and
// python/spdk/rpc/keyring.py), and the comma-separated DH-HMAC-CHAP lists
// that nvmf_set_config and bdev_nvme_set_options take (--dhchap-digests
// sha256,sha384).
#include "commands.h"

namespace nvemu::rpccli {

void put_comma_list(const Namespace& a, const char* dest, Json& p, const char* key) {
  if (!a.has(dest)) return;
  std::string text = a.str(dest);
  Json list = Json::array();
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    list.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  p[key] = list;
}

std::vector<Command> auth_commands() {
  return {
      {"keyring_file_add_key",
       "Add a file-based key to a keyring",
       {pos("name", "Name of the key to add"),
        pos("path", "Path to a file containing the key (mode 0600, owned by the target's user)")}},
      {"keyring_file_remove_key",
       "Remove a file-based key from a keyring",
       {pos("name", "Name of the key to remove")}},
      {"keyring_get_keys", "Get a list of registered keys", {}, Output::kJson},
  };
}

}  // namespace nvemu::rpccli
