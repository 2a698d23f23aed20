// The bdev RPCs, with SPDK v23.01's names, parameters and results. Failures
// that SPDK reports as -errno keep that code (-17 for a name in use, -19 for
// a missing bdev, -22 for a bad argument); the message adds the cause.
#include "bdev/bdev_rpc.h"

#include <fmt/format.h>

#include <atomic>
#include <vector>

#include "bdev/bdev.h"
#include "bdev/malloc.h"
#include "bdev/null.h"
#include "bdev/uring.h"
#include "reactor/reactor.h"
#include "rpc/registry.h"

namespace nvemu::bdev {

using nlohmann::json;
using rpc::Params;

std::shared_ptr<Bdev> find_or_throw(const std::string& name) {
  auto b = Registry::instance().find(name);
  if (!b)
    throw rpc::errno_error(ENODEV,
                           fmt::format("no bdev named '{}' (bdev_get_bdevs lists them)", name));
  return b;
}

std::string checked_uuid(Params& p) {
  auto uuid = p.opt_str("uuid");
  if (uuid && !is_valid_uuid(*uuid))
    throw rpc::invalid_params(
        fmt::format("{}: uuid '{}' is not a UUID like "
                    "11111111-2222-3333-4444-555555555555",
                    p.method(), *uuid));
  return uuid.value_or("");
}

// Registers a freshly created bdev, or throws SPDK's -EEXIST.
json register_bdev(std::shared_ptr<Bdev> b, const std::string& error) {
  if (!b) throw rpc::errno_error(EINVAL, error);
  std::string name = b->name();
  if (!Registry::instance().add(std::move(b)))
    throw rpc::errno_error(EEXIST, fmt::format("a bdev named '{}' already exists; pick another "
                                               "name or delete it first",
                                               name));
  return name;
}

void reject_duplicate(const std::string& name) {
  if (Registry::instance().find(name))
    throw rpc::errno_error(EEXIST, fmt::format("a bdev named '{}' already exists; pick another "
                                               "name or delete it first",
                                               name));
}

void reject_if_vbdev_base(const Bdev& b) {
  const std::string& owner = b.claimed_by();
  auto v = owner.empty() ? nullptr : Registry::instance().find(owner);
  if (v && v->name() == owner)
    throw rpc::errno_error(
        EBUSY, fmt::format("bdev '{}' is the base of {} bdev {}; delete {} "
                           "first (bdev_{}_delete {})",
                           b.name(), v->module_name(), owner, owner, v->module_name(), owner));
}

namespace {

json delete_bdev(Params& p, const char* module) {
  std::string name = p.str("name");
  p.done();
  auto b = find_or_throw(name);
  if (b->module_name() != module)
    throw rpc::errno_error(ENODEV, fmt::format("bdev '{}' is a {} bdev, not {}; use "
                                               "bdev_{}_delete",
                                               name, b->module_name(), module, b->module_name()));
  reject_if_vbdev_base(*b);
  Registry::instance().remove(name);
  return true;
}

std::string next_malloc_name() {
  static std::atomic<unsigned> n{0};
  for (;;) {
    std::string name = fmt::format("Malloc{}", n++);
    if (!Registry::instance().find(name)) return name;
  }
}

json malloc_create(Params& p) {
  MallocParams mp;
  mp.name = p.opt_str("name").value_or("");
  mp.uuid = checked_uuid(p);
  mp.num_blocks = p.u64("num_blocks");
  mp.block_size = p.u32("block_size");
  mp.optimal_io_boundary = p.opt_u32("optimal_io_boundary").value_or(0);
  auto md_size = p.opt_u32("md_size").value_or(0);
  p.opt_bool("md_interleave");
  auto dif_type = p.opt_i64("dif_type").value_or(0);
  p.opt_bool("dif_is_head_of_md");
  p.done();
  if (md_size != 0 || dif_type != 0)
    throw rpc::errno_error(ENOTSUP,
                           "separate metadata and DIF are not supported by nvemu's "
                           "malloc bdev; omit md_size and dif_type");
  if (mp.name.empty()) mp.name = next_malloc_name();
  reject_duplicate(mp.name);
  std::string error;
  return register_bdev(create_malloc_bdev(mp, &error), error);
}

json null_create(Params& p) {
  NullParams np;
  np.name = p.str("name");
  np.uuid = checked_uuid(p);
  np.num_blocks = p.u64("num_blocks");
  np.block_size = p.u32("block_size");
  auto md_size = p.opt_u32("md_size").value_or(0);
  auto dif_type = p.opt_i64("dif_type").value_or(0);
  p.opt_bool("dif_is_head_of_md");
  p.done();
  if (md_size != 0 || dif_type != 0)
    throw rpc::errno_error(ENOTSUP,
                           "separate metadata and DIF are not supported by nvemu's "
                           "null bdev; omit md_size and dif_type");
  reject_duplicate(np.name);
  std::string error;
  return register_bdev(create_null_bdev(np, &error), error);
}

json uring_create(Params& p) {
  std::string name = p.str("name");
  std::string filename = p.str("filename");
  uint32_t block_size = p.opt_u32("block_size").value_or(0);
  std::string uuid = checked_uuid(p);  // as later SPDK's bdev_uring_create
  p.done();
  reject_duplicate(name);
  std::string error;
  return register_bdev(create_uring_bdev(name, filename, block_size, &error, uuid), error);
}

json get_bdevs(Params& p) {
  auto name = p.opt_str("name");
  p.opt_u64("timeout");
  p.done();
  json out = json::array();
  if (name) {
    out.push_back(find_or_throw(*name)->info_json());
    return out;
  }
  for (const auto& b : Registry::instance().list()) out.push_back(b->info_json());
  return out;
}

json get_iostat(Params& p) {
  auto name = p.opt_str("name");
  p.opt_bool("per_channel");
  p.done();
  json out = {{"tick_rate", 1000000}, {"ticks", Reactor::now_us()}, {"bdevs", json::array()}};
  if (name) {
    out["bdevs"].push_back(find_or_throw(*name)->iostat_json());
    return out;
  }
  for (const auto& b : Registry::instance().list()) out["bdevs"].push_back(b->iostat_json());
  return out;
}

std::vector<ModuleConfigFn>& module_configs() {
  static std::vector<ModuleConfigFn> fns;
  return fns;
}

}  // namespace

void add_module_config(ModuleConfigFn fn) {
  module_configs().push_back(fn);
}

namespace {
json malloc_delete(Params& p) {
  return delete_bdev(p, "malloc");
}
json null_delete(Params& p) {
  return delete_bdev(p, "null");
}
json uring_delete(Params& p) {
  return delete_bdev(p, "uring");
}

const rpc::ErrorDoc kBadUuid{rpc::kInvalidParams, "uuid is not a UUID"};
const rpc::ErrorDoc kExists{-EEXIST, "a bdev with that name exists"};
const rpc::ErrorDoc kNoMd{-ENOTSUP, "md_size or dif_type given (no metadata/DIF)"};
const rpc::MethodDoc kMallocCreate{
    "Creates a RAM-backed bdev; without a name it is called MallocN.",
    "the bdev's name (string)",
    {kBadUuid,
     kExists,
     kNoMd,
     {-EINVAL, "block_size not a multiple of 512; num_blocks 0 or over 1 TiB; not enough memory"}}};
const rpc::MethodDoc kNullCreate{
    "Creates a bdev that discards writes and reads zeroes.",
    "the bdev's name (string)",
    {kBadUuid, kExists, kNoMd, {-EINVAL, "block_size not a multiple of 512; num_blocks 0"}}};
const rpc::MethodDoc kUringCreate{
    "Creates a bdev on a file or block device, I/O through io_uring.",
    "the bdev's name (string)",
    {kBadUuid,
     kExists,
     {-EINVAL,
      "the file cannot be opened or sized; block_size not a power of two >= 512 or not "
      "fitting the device"}}};
rpc::MethodDoc delete_doc(const char* module) {
  return {fmt::format("Deletes a {} bdev.", module),
          "true",
          {{-ENODEV, fmt::format("no bdev with that name, or it is not a {} bdev", module)},
           {-EBUSY, "it is the base of an error or delay bdev (delete that first)"}}};
}
const rpc::MethodDoc kGetBdevs{
    "Lists the bdevs, or the one named.",
    "array of {name, aliases, product_name, block_size, num_blocks, uuid, assigned_rate_limits, "
    "claimed, zoned, supported_io_types, driver_specific, ...}",
    {{-ENODEV, "name given and no bdev has it"}}};
const rpc::MethodDoc kGetIostat{
    "I/O statistics of every bdev, or of the one named.",
    "{tick_rate, ticks, bdevs: [{name, bytes_read, num_read_ops, bytes_written, num_write_ops, "
    "read_latency_ticks, write_latency_ticks, ...}]}",
    {{-ENODEV, "name given and no bdev has it"}}};
}  // namespace

void register_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("bdev_malloc_create", rpc::kRuntime, malloc_create, kMallocCreate);
  r.add("bdev_malloc_delete", rpc::kRuntime, malloc_delete, delete_doc("malloc"));
  r.add("bdev_null_create", rpc::kRuntime, null_create, kNullCreate);
  r.add("bdev_null_delete", rpc::kRuntime, null_delete, delete_doc("null"));
  r.add("bdev_uring_create", rpc::kRuntime, uring_create, kUringCreate);
  r.add("bdev_uring_delete", rpc::kRuntime, uring_delete, delete_doc("uring"));
  r.add("bdev_get_bdevs", rpc::kRuntime, get_bdevs, kGetBdevs);
  r.add("bdev_get_iostat", rpc::kRuntime, get_iostat, kGetIostat);
}

nlohmann::json config_json() {
  json cfg = json::array();
  cfg.push_back(
      {{"method", "bdev_set_options"},
       {"params",
        {{"bdev_io_pool_size", 65535}, {"bdev_io_cache_size", 256}, {"bdev_auto_examine", true}}}});
  for (ModuleConfigFn fn : module_configs()) fn(cfg);
  for (const auto& b : Registry::instance().list()) {
    json entry = b->config_entry();
    if (!entry.is_null()) cfg.push_back(std::move(entry));
  }
  cfg.push_back({{"method", "bdev_wait_for_examine"}});
  return {{"subsystem", "bdev"}, {"config", cfg}};
}

}  // namespace nvemu::bdev
