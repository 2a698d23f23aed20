// How a reactor sleeps: without a bound it sleeps until an event; a poller's
// limit_sleep_us() wakes it periodically (vfio-user's doorbell polling), and
// it still sleeps between those wake-ups instead of spinning.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "reactor/reactor.h"

namespace nvemu {
namespace {

using namespace std::chrono_literals;

struct Counted {
  std::atomic<uint64_t> passes{0};
};

// Runs a reactor with one idle poller for `run_for`, returns its passes and
// busy share; the poller bounds each sleep to `limit_us` (0: no bound).
void run_idle(uint64_t limit_us, std::chrono::milliseconds run_for, uint64_t* passes,
              double* busy_share) {
  Reactor r(9, 0);
  r.set_spin_us(100);
  Counted c;
  r.send([&r, &c, limit_us] {
    r.add_poller([&r, &c, limit_us] {
      c.passes.fetch_add(1, std::memory_order_relaxed);
      if (limit_us) r.limit_sleep_us(limit_us);
      return 0;
    });
  });
  r.start_thread();
  std::this_thread::sleep_for(50ms);  // past the spin after start
  uint64_t before = c.passes.load();
  uint64_t busy0 = r.busy_us(), idle0 = r.idle_us();
  std::this_thread::sleep_for(run_for);
  *passes = c.passes.load() - before;
  uint64_t busy = r.busy_us() - busy0, idle = r.idle_us() - idle0;
  *busy_share = busy + idle ? static_cast<double>(busy) / static_cast<double>(busy + idle) : 0;
  r.request_stop();
  r.join();
}

TEST(ReactorSleep, UnboundedIdleReactorSleepsUntilAnEvent) {
  uint64_t passes = 0;
  double busy = 0;
  run_idle(0, 200ms, &passes, &busy);
  EXPECT_LE(passes, 2u) << "an idle reactor without a sleep bound kept polling";
}

TEST(ReactorSleep, LimitSleepWakesPeriodicallyAndStillSleeps) {
  uint64_t passes = 0;
  double busy = 0;
  run_idle(1000, 200ms, &passes, &busy);
  // 200 ms at one wake-up per ~1 ms: ~200 passes. Loose bounds for a
  // loaded machine: it must wake (>= 50) and must not spin (< 2000).
  EXPECT_GE(passes, 50u) << "the bound did not wake the reactor";
  EXPECT_LT(passes, 2000u) << "the bounded reactor spun instead of sleeping";
  EXPECT_LT(busy, 0.5) << "a sleeping reactor should account its time as idle";
}

TEST(ReactorSleep, BoundLastsOnePass) {
  // A poller bounds sleeps only while it asks: once it stops, the reactor
  // sleeps until an event again.
  Reactor r(9, 0);
  r.set_spin_us(100);
  std::atomic<bool> ask{true};
  std::atomic<uint64_t> passes{0};
  r.send([&] {
    r.add_poller([&] {
      passes.fetch_add(1, std::memory_order_relaxed);
      if (ask.load()) r.limit_sleep_us(500);
      return 0;
    });
  });
  r.start_thread();
  std::this_thread::sleep_for(50ms);
  EXPECT_GE(passes.load(), 20u);
  ask = false;
  std::this_thread::sleep_for(10ms);  // the last bounded sleep ends
  uint64_t before = passes.load();
  std::this_thread::sleep_for(100ms);
  EXPECT_LE(passes.load() - before, 1u);
  r.request_stop();
  r.join();
}

}  // namespace
}  // namespace nvemu
