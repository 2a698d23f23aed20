// bdev_delay_* with SPDK's names, parameters and codes (v23.01.1, plus
// v24.01's uuid). As with the error bdev, a missing base is -ENODEV here
// where SPDK defers the creation until such a bdev appears.
#include <fmt/format.h>

#include "bdev/bdev_rpc.h"
#include "bdev/delay/delay_bdev.h"
#include "rpc/registry.h"

namespace nvemu::bdev::delay {
namespace {

using nlohmann::json;
using rpc::Params;

json delay_create(Params& p) {
  std::string base_name = p.str("base_bdev_name");
  std::string name = p.str("name");
  std::string uuid = checked_uuid(p);
  Latencies lat;
  lat.us[kAvgRead] = p.u64("avg_read_latency");
  lat.us[kP99Read] = p.u64("p99_read_latency");
  lat.us[kAvgWrite] = p.u64("avg_write_latency");
  lat.us[kP99Write] = p.u64("p99_write_latency");
  p.done();
  reject_duplicate(name);
  auto base = find_or_throw(base_name);
  std::string error;
  auto b = create(name, base, lat, uuid, &error);
  if (!b) throw rpc::errno_error(EINVAL, fmt::format("bdev_delay_create {}: {}", name, error));
  try {
    return register_bdev(b, "");
  } catch (...) {
    b->release_base();
    throw;
  }
}

json delay_delete(Params& p) {
  std::string name = p.str("name");
  p.done();
  auto b = std::dynamic_pointer_cast<DelayBdev>(find_or_throw(name));
  if (!b)
    throw rpc::errno_error(ENODEV, fmt::format("bdev '{}' is not a delay bdev; use the delete RPC "
                                               "of its module",
                                               name));
  reject_if_vbdev_base(*b);
  b->release_base();
  Registry::instance().remove(name);
  return true;
}

json update_latency(Params& p) {
  std::string name = p.str("delay_bdev_name");
  std::string type = p.str("latency_type");
  uint64_t us = p.u64("latency_us");
  p.done();
  LatencyType t;
  if (type == "avg_read")
    t = kAvgRead;
  else if (type == "p99_read")
    t = kP99Read;
  else if (type == "avg_write")
    t = kAvgWrite;
  else if (type == "p99_write")
    t = kP99Write;
  else
    throw rpc::invalid_params(fmt::format(
        "Please specify a valid latency type: '{}' is not one of avg_read, p99_read, avg_write, "
        "p99_write",
        type));
  auto any = Registry::instance().find(name);
  if (!any)
    throw rpc::invalid_params(fmt::format(
        "The requested bdev does not exist: no bdev named '{}' (bdev_get_bdevs lists them)", name));
  auto b = std::dynamic_pointer_cast<DelayBdev>(any);
  if (!b)
    throw rpc::RpcError(rpc::kInvalidRequest,
                        fmt::format("The requested bdev is not a delay bdev: {} is a {} bdev", name,
                                    any->module_name()));
  b->set_latency_us(t, us);
  return true;
}

const rpc::MethodDoc kCreate{
    "Creates a delay bdev over a base bdev, adding the given average and p99 latencies "
    "(microseconds) to reads and writes.",
    "the bdev's name (string)",
    {{rpc::kInvalidParams, "uuid is not a UUID; a latency missing"},
     {-EEXIST, "a bdev with that name exists"},
     {-ENODEV, "no bdev named base_bdev_name"},
     {-EINVAL, "the base cannot be claimed or a p99 latency is below its average"}}};
const rpc::MethodDoc kDelete{"Deletes a delay bdev and releases its base.",
                             "true",
                             {{-ENODEV, "no bdev with that name, or it is not a delay bdev"},
                              {-EBUSY, "it is the base of another error or delay bdev"}}};
const rpc::MethodDoc kUpdate{
    "Changes one latency (avg_read, p99_read, avg_write, p99_write) of a delay bdev.",
    "true",
    {{rpc::kInvalidParams, "latency_type not a known value; no bdev named delay_bdev_name"},
     {rpc::kInvalidRequest, "the bdev is not a delay bdev"}}};

}  // namespace

void register_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("bdev_delay_create", rpc::kRuntime, delay_create, kCreate);
  r.add("bdev_delay_delete", rpc::kRuntime, delay_delete, kDelete);
  r.add("bdev_delay_update_latency", rpc::kRuntime, update_latency, kUpdate);
}

}  // namespace nvemu::bdev::delay
