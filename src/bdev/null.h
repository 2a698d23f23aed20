// A bdev that stores nothing (SPDK's bdev_null): writes are dropped, reads
// complete without touching the buffer. For measuring the stack above it.
#pragma once

#include <memory>
#include <string>

#include "bdev/bdev.h"

namespace nvemu::bdev {

struct NullParams {
  std::string name;
  uint64_t num_blocks = 0;
  uint32_t block_size = 512;
  std::string uuid;
};

std::shared_ptr<Bdev> create_null_bdev(const NullParams& p, std::string* error);

}  // namespace nvemu::bdev
