#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "rpc/params.h"

namespace nvemu::bdev {
class Bdev;

// bdev_malloc_*, bdev_null_*, bdev_uring_*, bdev_get_bdevs, bdev_get_iostat.
void register_rpcs();
// {"subsystem":"bdev","config":[...]} for save_config.
nlohmann::json config_json();

// Helpers the bdev modules' RPC files share, with SPDK's error codes.
// The named bdev, or SPDK's -ENODEV naming it.
std::shared_ptr<Bdev> find_or_throw(const std::string& name);
// The optional "uuid" parameter: "" when absent; invalid params when malformed.
std::string checked_uuid(rpc::Params& p);
// Adds a freshly created bdev (nullptr: -EINVAL with `error`); -EEXIST when taken.
nlohmann::json register_bdev(std::shared_ptr<Bdev> b, const std::string& error);
void reject_duplicate(const std::string& name);
// A bdev that a virtual bdev (error, delay) stacks on cannot be deleted
// under it: -EBUSY naming the vbdev and the RPC that removes it first.
void reject_if_vbdev_base(const Bdev& b);
}  // namespace nvemu::bdev
