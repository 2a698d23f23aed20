// RAM-backed bdev (SPDK's bdev_malloc): anonymous memory, hugepage-backed
// when the system has free hugepages, ordinary (transparent huge) pages
// otherwise; every block is backed by zeroed memory from creation on.
#pragma once

#include <memory>
#include <string>

#include "bdev/bdev.h"

namespace nvemu::bdev {

struct MallocParams {
  std::string name;
  uint64_t num_blocks = 0;
  uint32_t block_size = 512;
  std::string uuid;  // empty: generate
  uint32_t optimal_io_boundary = 0;
};

// Returns nullptr with *error set (and *errno_code, SPDK's negative errno).
std::shared_ptr<Bdev> create_malloc_bdev(const MallocParams& p, std::string* error);

}  // namespace nvemu::bdev
