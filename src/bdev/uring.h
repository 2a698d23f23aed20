// File- or block-device-backed bdev on io_uring (SPDK's bdev_uring). Each
// channel owns one io_uring on its reactor; the ring's eventfd is one of the
// reactor's fds, so completions wake a sleeping reactor and no poller spins.
//
// The file is opened O_RDWR|O_DIRECT; on a file system that rejects O_DIRECT
// (EINVAL) it falls back to buffered I/O with a notice. With O_DIRECT, an
// iovec that is not aligned for direct I/O is bounced through an aligned
// per-channel buffer, so callers may pass any iovecs.
//
// open_channel() must run on a reactor thread; it returns nullptr (and logs
// why) off-reactor or when the ring cannot be set up. A channel is destroyed
// on its reactor, not from inside one of its own completion callbacks:
// I/Os still waiting for ring space complete as kAborted, and the destructor
// waits for those in flight, so no completion arrives after it returns.
// A channel holds at most 128 I/Os in the ring; more wait in a FIFO.
//
// Durability: the bdev reports a volatile write cache (Identify Controller
// VWC=1) in both modes. Buffered I/O has the page cache; O_DIRECT skips it
// but neither the disk's own cache nor the file system's metadata for
// allocating writes to a sparse file is stable before fdatasync. So FLUSH
// is IORING_OP_FSYNC with IORING_FSYNC_DATASYNC and completes only when it
// has, and a FUA write is sent with RWF_DSYNC (the write and what is needed
// to read it back are durable before its CQE).
//
// I/O types: read, write, flush (fdatasync), unmap (fallocate PUNCH_HOLE;
// reads of an unmapped range return zeroes) and write_zeroes (fallocate
// ZERO_RANGE, else PUNCH_HOLE, else writes of a zero buffer).
//
// Errno to IoStatus, the one mapping of this backend:
//   ENODATA (the block layer's medium error)  -> kMediaRead / kMediaWrite
//   ENOSPC, EDQUOT (a sparse file cannot grow) -> kMediaWrite: the blocks
//       were not written, which a host sees as a write fault on that range
//   ENOMEM, ENOBUFS                            -> kNoMem (resubmit later)
//   ECANCELED                                  -> kAborted
//   EIO and everything else                    -> kError
//   a read that hits end of file (the file shrank under the bdev) -> kMediaRead
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bdev/bdev.h"

namespace nvemu::bdev {

// SPDK's bdev_uring_create. block_size 0 detects it: the logical block size
// of a block device (BLKSSZGET), 512 for a regular file (or the file
// system's direct I/O offset alignment when larger). An explicit block_size
// must be a power of two, at least 512 and not below the detected size.
// num_blocks = file size / block_size; a trailing partial block is unused.
// Returns nullptr with *error naming the file, the cause and the fix.
//
// Identity: `uuid` when given; otherwise a name-based (v5) UUID of
// "uring:" + name + ":" + realpath(filename). Both are facts the operator
// states again when replaying the same bdev_uring_create after a restart,
// and neither depends on the file's contents or inode (a file restored
// from a backup, or a symlink re-pointed at the same path, keeps the
// identity). Two bdevs on one file need two names, so they differ.
std::shared_ptr<Bdev> create_uring_bdev(const std::string& name, const std::string& filename,
                                        uint32_t block_size, std::string* error,
                                        const std::string& uuid = "");

class UringBdev : public Bdev {
 public:
  using Bdev::Bdev;
  virtual const std::string& filename() const = 0;
  // False when the file system refused O_DIRECT and I/O goes through the
  // page cache.
  virtual bool direct_io() const = 0;
};

// Test seams for the fallbacks a test file system may not trigger; they
// apply to bdevs created while set.
struct UringTestHooks {
  bool fail_direct_open = false;  // the O_DIRECT open fails with EINVAL
  bool no_fallocate = false;      // fallocate is unsupported: zeroes are written
};
void uring_set_test_hooks(const UringTestHooks& hooks);

}  // namespace nvemu::bdev
