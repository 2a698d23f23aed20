// rpc.py's bdev_rbd_* parsers (SPDK v23.01.1 scripts/rpc.py and
// python/spdk/rpc/bdev.py): the same positionals, flags and params.
// `--user-id` is accepted as a spelling of rpc.py's `--user`.
#include <iostream>

#include "commands.h"

namespace nvemu::rpccli {
namespace {

// rpc.py: --config/--config-param key=value, repeated -> {key: value}.
void put_config(const Namespace& a, const char* dest, const char* flag, Json& p, const char* key) {
  const auto* list = std::get_if<std::vector<std::string>>(&a.get(dest));
  if (!list || list->empty()) return;
  Json map = Json::object();
  for (const auto& entry : *list) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos)
      throw CommandError(std::string(flag) + " " + entry + " not in key=value form", 1);
    map[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  p[key] = map;
}

Arg config_arg(const char* long_opt) {
  Arg a = opt("", long_opt,
              "adds a key=value configuration option for rados_conf_set (default: rely on "
              "config file)",
              ArgType::kAppend)
              .never();
  a.spec.metavar = "key=value";
  return a;
}

Arg user_arg() {
  return opt("", "--user", "Ceph user name (i.e. admin, not client.admin)")
      .to("user_id")
      .when(Emit::kNotNull);
}

Arg user_id_alias() {
  return opt("", "--user-id", "same as --user").dest("user").to("user_id").when(Emit::kNotNull);
}

}  // namespace

std::vector<Command> rbd_commands() {
  return {
      {"bdev_rbd_register_cluster",
       "Add a Rados cluster with ceph rbd backend",
       {pos("name", "Name of the Rados cluster only known to rbd bdev"), user_arg(),
        user_id_alias(), config_arg("--config-param"),
        opt("", "--config-file", "The file path of the Rados configuration file")
            .when(Emit::kNotNull),
        opt("", "--key-file", "The file path of the Rados keyring file").when(Emit::kNotNull)},
       Output::kJson,
       nullptr,
       [](const Namespace& a, Json& p) {
         put_config(a, "config_param", "--config", p, "config_param");
         Json out = {{"name", p["name"]}};
         for (const char* k : {"user_id", "config_param", "config_file", "key_file"})
           if (p.contains(k)) out[k] = p[k];
         p = out;
       }},
      {"bdev_rbd_unregister_cluster",
       "Unregister a Rados cluster object",
       {pos("name", "Name of the Rados Cluster only known to rbd bdev")}},
      {"bdev_rbd_get_clusters_info",
       "Display registered Rados Cluster names and related info",
       {opt("-b", "--name", "Name of the registered Rados Cluster Name. Example: Cluster1")},
       Output::kJson},
      {"bdev_rbd_create",
       "Add a bdev with ceph rbd backend",
       {opt("-b", "--name", "Name of the bdev"), user_arg(), user_id_alias(),
        config_arg("--config"), pos("pool_name", "rbd pool name"),
        pos("rbd_name", "rbd image name"),
        pos("block_size", "rbd block size", ArgType::kInt).when(Emit::kNotNull),
        opt("-c", "--cluster-name", "cluster name to identify the Rados cluster")
            .when(Emit::kNotNull),
        opt("-u", "--uuid", "UUID of the bdev").when(Emit::kNotNull)},
       Output::kJson,
       nullptr,
       [](const Namespace& a, Json& p) {
         put_config(a, "config", "--config", p, "config");
         if (!p.contains("cluster_name"))
           std::cout << "WARNING:bdev_rbd_create should be used with specifying -c to have a "
                        "cluster name after bdev_rbd_register_cluster."
                     << std::endl;
         Json out = Json::object();
         for (const char* k : {"pool_name", "rbd_name", "block_size", "name", "user_id", "config",
                               "cluster_name", "uuid"})
           if (p.contains(k)) out[k] = p[k];
         p = out;
       }},
      {"bdev_rbd_delete", "Delete a rbd bdev", {pos("name", "rbd bdev name")}},
      {"bdev_rbd_resize",
       "Resize a rbd bdev",
       {pos("name", "rbd bdev name"),
        pos("new_size", "new bdev size for resize operation. The unit is MiB", ArgType::kInt)
            .when(Emit::kNotNull)},
       Output::kJson},
  };
}

}  // namespace nvemu::rpccli
