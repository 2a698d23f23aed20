// bdev_nvme's parsing of a remote's Identify Namespace: what it accepts is a
// namespace its bdev can serve; anything else is left out.
#include <gtest/gtest.h>

#include <cstring>

#include "bdev/nvme/path.h"
#include "nvme/identify.h"

using namespace nvemu::bdev::nvme;

namespace {

struct Page {
  alignas(8) uint8_t bytes[4096] = {};
  nvemu::nvme::IdentifyNamespace& ns() {
    return *reinterpret_cast<nvemu::nvme::IdentifyNamespace*>(bytes);
  }
};

Page with_format(uint64_t nsze, uint8_t lbads, uint16_t ms) {
  Page p;
  p.ns().nsze = nsze;
  p.ns().flbas = 2;
  p.ns().lbaf[2].lbads = lbads;
  p.ns().lbaf[2].ms = ms;
  return p;
}

}  // namespace

TEST(BdevNvmeIdentify, AcceptsTheFormatFlbasSelects) {
  Page p = with_format(1 << 20, 12, 0);
  NsInfo ns;
  ASSERT_TRUE(parse_identify_ns(p.bytes, 3, &ns));
  EXPECT_EQ(ns.nsid, 3u);
  EXPECT_EQ(ns.block_size, 4096u);
  EXPECT_EQ(ns.num_blocks, 1u << 20);
}

TEST(BdevNvmeIdentify, InactiveNamespaceIsAllZeroes) {
  Page p;
  NsInfo ns;
  EXPECT_FALSE(parse_identify_ns(p.bytes, 1, &ns));
}

TEST(BdevNvmeIdentify, LeavesOutWhatItCannotServe) {
  NsInfo ns;
  for (uint8_t lbads : {0, 8, 17, 40, 255}) {
    Page p = with_format(1000, lbads, 0);
    EXPECT_FALSE(parse_identify_ns(p.bytes, 1, &ns)) << "lbads " << int(lbads);
  }
  Page md = with_format(1000, 9, 8);
  EXPECT_FALSE(parse_identify_ns(md.bytes, 1, &ns)) << "metadata per block";
  Page huge = with_format(UINT64_MAX >> 8, 9, 0);
  EXPECT_FALSE(parse_identify_ns(huge.bytes, 1, &ns)) << "capacity overflows 64 bits";
}
