// bdev_error_* with SPDK's names and codes (v23.01.1, plus v24.01's
// "clear", "corrupt_data", "nomem", queue_depth, corrupt_offset and
// corrupt_value, and create's uuid). One deliberate difference: SPDK
// accepts bdev_error_create for a base that does not exist yet and builds
// the bdev when one of that name appears; nvemu refuses with -ENODEV, so a
// typo is an error at once rather than a silent no-op.
#include <fmt/format.h>

#include "bdev/bdev_rpc.h"
#include "bdev/error/error_bdev.h"
#include "rpc/registry.h"

namespace nvemu::bdev::error {
namespace {

using nlohmann::json;
using rpc::Params;

json error_create(Params& p) {
  std::string base_name = p.str("base_name");
  std::string uuid = checked_uuid(p);
  p.done();
  auto base = find_or_throw(base_name);
  reject_duplicate("EE_" + base->name());
  std::string error;
  auto b = create(base, uuid, &error);
  if (!b) throw rpc::errno_error(EBUSY, fmt::format("bdev_error_create: {}", error));
  try {
    register_bdev(b, "");
  } catch (...) {
    b->release_base();
    throw;
  }
  return true;
}

json error_delete(Params& p) {
  std::string name = p.str("name");
  p.done();
  auto b = std::dynamic_pointer_cast<ErrorBdev>(find_or_throw(name));
  if (!b)
    throw rpc::errno_error(ENODEV, fmt::format("bdev '{}' is not an error bdev; use the delete RPC "
                                               "of its module",
                                               name));
  reject_if_vbdev_base(*b);
  b->disarm();                          // nothing more is held ...
  b->release_held(IoStatus::kAborted);  // ... and what is, ends
  b->release_base();
  Registry::instance().remove(name);
  return true;
}

InjectOpts parse_inject(Params& p, std::string* name) {
  InjectOpts o;
  *name = p.str("name");
  std::string io_type = p.str("io_type");
  std::string error_type = p.str("error_type");
  o.num = p.opt_u32("num").value_or(1);
  o.queue_depth = p.opt_u64("queue_depth").value_or(0);
  o.corrupt_offset = p.opt_u64("corrupt_offset").value_or(0);
  uint64_t value = p.opt_u64("corrupt_value").value_or(0);
  p.done();
  if (io_type == "read")
    o.io_type = IoType::kRead;
  else if (io_type == "write")
    o.io_type = IoType::kWrite;
  else if (io_type == "unmap")
    o.io_type = IoType::kUnmap;
  else if (io_type == "flush")
    o.io_type = IoType::kFlush;
  else if (io_type == "all")
    o.all = true;
  else if (io_type == "clear")
    o.clear = true;
  else
    throw rpc::invalid_params(fmt::format(
        "bdev_error_inject_error: io_type '{}' is not one of read, write, unmap, flush, all, clear",
        io_type));
  if (error_type == "failure")
    o.type = ErrorType::kFailure;
  else if (error_type == "pending")
    o.type = ErrorType::kPending;
  else if (error_type == "corrupt_data")
    o.type = ErrorType::kCorruptData;
  else if (error_type == "nomem")
    o.type = ErrorType::kNoMem;
  else
    throw rpc::invalid_params(
        fmt::format("bdev_error_inject_error: error_type '{}' is not one of failure, pending, "
                    "corrupt_data, nomem",
                    error_type));
  if (value > 255)
    throw rpc::invalid_params(fmt::format(
        "bdev_error_inject_error: corrupt_value {} does not fit a byte (1-255)", value));
  o.corrupt_value = static_cast<uint8_t>(value);
  if (o.type == ErrorType::kCorruptData && !o.clear && o.corrupt_value == 0)
    throw rpc::errno_error(EINVAL,
                           "bdev_error_inject_error: corrupt_data needs a non-zero corrupt_value "
                           "(the byte XORed into the data; 0 would change nothing)");
  return o;
}

json inject_error(Params& p) {
  std::string name;
  InjectOpts o = parse_inject(p, &name);
  auto b = std::dynamic_pointer_cast<ErrorBdev>(find_or_throw(name));
  if (!b)
    throw rpc::errno_error(ENODEV,
                           fmt::format("bdev '{}' is not an error bdev; create one over it with "
                                       "bdev_error_create {} and inject into EE_{}",
                                       name, name, name));
  b->inject(o);
  return true;
}

const rpc::MethodDoc kCreate{
    "Creates error bdev EE_<base_name> over a base bdev, passing I/O through until an error "
    "is injected.",
    "true",
    {{rpc::kInvalidParams, "uuid is not a UUID"},
     {-ENODEV, "no bdev named base_name"},
     {-EEXIST, "a bdev named EE_<base_name> exists"},
     {-EBUSY, "the base is already claimed by another bdev"}}};
const rpc::MethodDoc kDelete{
    "Deletes an error bdev; I/O it holds (pending) ends aborted and its base is released.",
    "true",
    {{-ENODEV, "no bdev with that name, or it is not an error bdev"},
     {-EBUSY, "it is the base of another error or delay bdev"}}};
const rpc::MethodDoc kInject{
    "Arms num failures (or pending, corrupt_data, nomem) for one I/O type on an error bdev; "
    "io_type clear disarms.",
    "true",
    {{rpc::kInvalidParams, "io_type or error_type not a known value; corrupt_value > 255"},
     {-EINVAL, "corrupt_data with corrupt_value 0"},
     {-ENODEV, "no bdev with that name, or it is not an error bdev"}}};

}  // namespace

void register_rpcs() {
  auto& r = rpc::Registry::instance();
  r.add("bdev_error_create", rpc::kRuntime, error_create, kCreate);
  r.add("bdev_error_delete", rpc::kRuntime, error_delete, kDelete);
  r.add("bdev_error_inject_error", rpc::kRuntime, inject_error, kInject);
}

}  // namespace nvemu::bdev::error
