// A call site's RateLimit: a burst per window, the drops counted and
// reported with the next line let through.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/log.h"

namespace nvemu::log {
namespace {

TEST(LogRateLimit, BurstThenCountedDrops) {
  RateLimit rl(3, 50'000);  // 3 lines per 50 ms
  uint64_t sup = 99;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(rl.allow(&sup)) << i;
    EXPECT_EQ(sup, 0u);
  }
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(rl.allow(&sup));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  ASSERT_TRUE(rl.allow(&sup));  // a new window: the ten drops are reported once
  EXPECT_EQ(sup, 10u);
  ASSERT_TRUE(rl.allow(&sup));
  EXPECT_EQ(sup, 0u);
}

TEST(LogRateLimit, ManyThreadsNeverExceedTheBurst) {
  RateLimit rl(5, 60'000'000);
  uint64_t first;
  ASSERT_TRUE(rl.allow(&first));  // opens the window (its roll-over is approximate)
  std::atomic<int> allowed{1};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      uint64_t sup;
      for (int i = 0; i < 1000; ++i)
        if (rl.allow(&sup)) allowed++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(allowed.load(), 5);
}

}  // namespace
}  // namespace nvemu::log
