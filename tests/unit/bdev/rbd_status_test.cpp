// bdev_rbd's one librbd-status -> IoStatus mapping, and Bdev::grow (the
// resize path) with its hooks. The I/O path itself runs against a real Ceph
// cluster in tests/system/test_bdev_rbd.py.
#include <gtest/gtest.h>

#include <cerrno>

#include "bdev/malloc.h"
#include "bdev/rbd/rbd.h"

namespace nvemu::bdev::rbd {
namespace {

TEST(RbdStatus, ReadMustReturnEveryByte) {
  EXPECT_EQ(map_rbd_status(4096, IoType::kRead, 4096), IoStatus::kSuccess);
  EXPECT_EQ(map_rbd_status(512, IoType::kRead, 4096), IoStatus::kMediaRead);
  EXPECT_EQ(map_rbd_status(0, IoType::kRead, 4096), IoStatus::kMediaRead);
}

TEST(RbdStatus, OtherTypesSucceedOnZeroOrMore) {
  for (IoType t : {IoType::kWrite, IoType::kFlush, IoType::kUnmap, IoType::kWriteZeroes}) {
    EXPECT_EQ(map_rbd_status(0, t, 4096), IoStatus::kSuccess);
    EXPECT_EQ(map_rbd_status(4096, t, 4096), IoStatus::kSuccess);
  }
}

TEST(RbdStatus, Errnos) {
  EXPECT_EQ(map_rbd_status(-EIO, IoType::kRead, 1), IoStatus::kMediaRead);
  EXPECT_EQ(map_rbd_status(-EIO, IoType::kWrite, 1), IoStatus::kMediaWrite);
  EXPECT_EQ(map_rbd_status(-ENOENT, IoType::kWrite, 1), IoStatus::kMediaWrite);
  EXPECT_EQ(map_rbd_status(-ENOSPC, IoType::kWrite, 1), IoStatus::kMediaWrite);
  EXPECT_EQ(map_rbd_status(-EDQUOT, IoType::kWriteZeroes, 1), IoStatus::kMediaWrite);
  EXPECT_EQ(map_rbd_status(-EINVAL, IoType::kRead, 1), IoStatus::kOutOfRange);
  EXPECT_EQ(map_rbd_status(-ENOMEM, IoType::kRead, 1), IoStatus::kNoMem);
  EXPECT_EQ(map_rbd_status(-ECANCELED, IoType::kRead, 1), IoStatus::kAborted);
  EXPECT_EQ(map_rbd_status(-ESHUTDOWN, IoType::kFlush, 1), IoStatus::kAborted);
  EXPECT_EQ(map_rbd_status(-ETIMEDOUT, IoType::kRead, 1), IoStatus::kError);
}

TEST(BdevGrow, GrowsNotifiesAndRefusesToShrink) {
  MallocParams mp;
  mp.name = "grow0";
  mp.num_blocks = 64;
  mp.block_size = 512;
  std::string error;
  auto b = create_malloc_bdev(mp, &error);
  ASSERT_TRUE(b) << error;
  int calls = 0;
  uint64_t seen = 0;
  uint64_t id = b->add_resize_hook([&](Bdev& x) {
    ++calls;
    seen = x.num_blocks();
  });
  EXPECT_TRUE(b->grow(64));  // same size: nothing to tell
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(b->grow(128));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, 128u);
  EXPECT_EQ(b->info_json()["num_blocks"], 128);
  EXPECT_FALSE(b->grow(100));
  EXPECT_EQ(b->num_blocks(), 128u);
  b->remove_resize_hook(id);
  EXPECT_TRUE(b->grow(256));
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace nvemu::bdev::rbd
