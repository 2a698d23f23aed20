// The latency histogram behind --metrics' nvemu_bdev_io_latency_seconds:
// bucket i holds I/O of at most 2^i us, the last one everything slower.
#include <gtest/gtest.h>

#include "app/metrics.h"
#include "bdev/bdev.h"

namespace nvemu::bdev {
namespace {

TEST(LatencyBucket, UpperBoundsArePowersOfTwoMicroseconds) {
  EXPECT_EQ(latency_bucket(0), 0u);
  EXPECT_EQ(latency_bucket(1), 0u);
  EXPECT_EQ(latency_bucket(2), 1u);
  EXPECT_EQ(latency_bucket(3), 2u);
  EXPECT_EQ(latency_bucket(4), 2u);
  EXPECT_EQ(latency_bucket(5), 3u);
  EXPECT_EQ(latency_bucket(1024), 10u);
  EXPECT_EQ(latency_bucket(1025), 11u);
  EXPECT_EQ(latency_bucket(1u << 20), 20u);
  EXPECT_EQ(latency_bucket((1u << 20) + 1), kLatencyBuckets - 1);
  EXPECT_EQ(latency_bucket(UINT64_MAX), kLatencyBuckets - 1);
}

TEST(PromEscape, QuotesBackslashesAndNewlines) {
  EXPECT_EQ(app::prom_escape("Malloc0"), "Malloc0");
  EXPECT_EQ(app::prom_escape(R"(a"b\c)"), R"(a\"b\\c)");
  EXPECT_EQ(app::prom_escape("x\ny"), "x\\ny");
}

}  // namespace
}  // namespace nvemu::bdev
