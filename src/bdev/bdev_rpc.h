#pragma once

namespace nvemu::bdev {
// bdev_malloc_*, bdev_null_*, bdev_uring_*, bdev_get_bdevs, bdev_get_iostat.
void register_rpcs();
// {"subsystem":"bdev","config":[...]} for save_config.
}  // namespace nvemu::bdev

#include <nlohmann/json.hpp>
namespace nvemu::bdev {
nlohmann::json config_json();
}
