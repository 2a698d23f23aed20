// How a reactor accounts its time (framework_get_reactors): as SPDK does, a
// pass counts as busy only when it found work. A reactor spinning over
// pollers with nothing to do is idle, so a target's busy share says how
// loaded it is, not whether it polls.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "reactor/reactor.h"

namespace nvemu {
namespace {

using namespace std::chrono_literals;

// Runs a spinning reactor (it never reaches its sleep) whose one poller
// reports `work` each pass; returns the busy share of 100 ms.
double busy_share_of_spin(int work) {
  Reactor r(9, 0);
  r.set_spin_us(UINT64_MAX / 2);
  std::atomic<uint64_t> passes{0};
  r.send([&r, &passes, work] {
    r.add_poller([&passes, work] {
      passes.fetch_add(1, std::memory_order_relaxed);
      return work;
    });
  });
  r.start_thread();
  std::this_thread::sleep_for(20ms);
  uint64_t busy0 = r.busy_us(), idle0 = r.idle_us(), passes0 = passes.load();
  std::this_thread::sleep_for(100ms);
  uint64_t busy = r.busy_us() - busy0, idle = r.idle_us() - idle0;
  uint64_t ran = passes.load() - passes0;
  r.request_stop();
  r.join();
  EXPECT_GT(ran, 100u) << "the reactor did not spin";
  EXPECT_GT(busy + idle, 50'000u) << "the reactor accounted too little of 100 ms";
  return busy + idle ? static_cast<double>(busy) / static_cast<double>(busy + idle) : 0;
}

TEST(ReactorLoad, SpinningWithoutWorkIsIdle) {
  EXPECT_LT(busy_share_of_spin(0), 0.1);
}

TEST(ReactorLoad, PassesThatFindWorkAreBusy) {
  EXPECT_GT(busy_share_of_spin(1), 0.9);
}

}  // namespace
}  // namespace nvemu
