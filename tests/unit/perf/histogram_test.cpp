#include "host/perf/histogram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

namespace nvemu::host::perf {
namespace {

TEST(PerfHistogram, BucketsCoverEveryValueOnce) {
  // Bucket edges are contiguous: each bucket starts one past the previous end.
  for (unsigned b = 1; b < Histogram::kBuckets; ++b)
    ASSERT_EQ(Histogram::bucket_low(b), Histogram::bucket_high(b - 1) + 1) << b;
  EXPECT_EQ(Histogram::bucket_high(Histogram::kBuckets - 1), UINT64_MAX);
  const uint64_t values[] = {
      0, 1, 127, 128, 129, 255, 256, 1000, 123456789, (uint64_t{1} << 40) + 12345, UINT64_MAX};
  for (uint64_t v : values) {
    unsigned b = Histogram::bucket_of(v);
    EXPECT_LE(Histogram::bucket_low(b), v) << v;
    EXPECT_GE(Histogram::bucket_high(b), v) << v;
  }
}

TEST(PerfHistogram, RelativeErrorIsBounded) {
  for (uint64_t v = 1; v < (1ull << 50); v = v * 3 + 7) {
    unsigned b = Histogram::bucket_of(v);
    double width = static_cast<double>(Histogram::bucket_high(b) - Histogram::bucket_low(b));
    EXPECT_LE(width / static_cast<double>(v), 1.0 / Histogram::kSub) << v;
  }
}

TEST(PerfHistogram, EmptyIsZero) {
  auto h = std::make_unique<Histogram>();
  EXPECT_EQ(h->count(), 0u);
  EXPECT_EQ(h->min(), 0u);
  EXPECT_EQ(h->max(), 0u);
  EXPECT_EQ(h->mean(), 0.0);
  EXPECT_EQ(h->percentile(99), 0u);
}

TEST(PerfHistogram, StatsAndPercentiles) {
  auto h = std::make_unique<Histogram>();
  for (uint64_t v = 1; v <= 10000; ++v) h->record(v);
  EXPECT_EQ(h->count(), 10000u);
  EXPECT_EQ(h->min(), 1u);
  EXPECT_EQ(h->max(), 10000u);
  EXPECT_DOUBLE_EQ(h->mean(), 5000.5);
  auto near = [](uint64_t got, double want) {
    return std::abs(static_cast<double>(got) - want) <= want / Histogram::kSub + 1;
  };
  EXPECT_TRUE(near(h->percentile(50), 5000)) << h->percentile(50);
  EXPECT_TRUE(near(h->percentile(90), 9000)) << h->percentile(90);
  EXPECT_TRUE(near(h->percentile(99), 9900)) << h->percentile(99);
  EXPECT_TRUE(near(h->percentile(99.99), 9999)) << h->percentile(99.99);
  EXPECT_EQ(h->percentile(100), 10000u);
  EXPECT_LE(h->percentile(50), h->percentile(90));
}

TEST(PerfHistogram, SmallValuesAreExact) {
  auto h = std::make_unique<Histogram>();
  for (int i = 0; i < 99; ++i) h->record(5);
  h->record(100);
  EXPECT_EQ(h->percentile(50), 5u);
  EXPECT_EQ(h->percentile(99), 5u);
  EXPECT_EQ(h->percentile(99.9), 100u);
}

TEST(PerfHistogram, MergeAddsUp) {
  auto a = std::make_unique<Histogram>();
  auto b = std::make_unique<Histogram>();
  a->record(10);
  a->record(1000);
  b->record(3);
  b->record(1u << 20);
  a->merge(*b);
  EXPECT_EQ(a->count(), 4u);
  EXPECT_EQ(a->min(), 3u);
  EXPECT_EQ(a->max(), 1u << 20);
  EXPECT_EQ(a->sum(), 10u + 1000u + 3u + (1u << 20));
  a->clear();
  EXPECT_EQ(a->count(), 0u);
  EXPECT_EQ(a->percentile(50), 0u);
}

}  // namespace
}  // namespace nvemu::host::perf
