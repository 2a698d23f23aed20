// Reactor::PassTask: what many completions of one pass schedule runs once at
// the end of that pass, and a task destroyed before then never runs (the
// TCP flush and the vfio-user interrupt flush rely on both).
#include <gtest/gtest.h>

#include <memory>

#include "reactor/reactor.h"

namespace nvemu {
namespace {

// A poller that schedules `task` `times` times in the pass it runs in.
void schedule_from_poller(Reactor& r, Reactor::PassTask** task, int times) {
  r.add_poller([task, times] {
    for (int i = 0; i < times && *task; ++i) (*task)->schedule();
    return 1;
  });
}

TEST(PassTask, RunsOncePerPassHoweverOftenScheduled) {
  Reactor r(9, 0);
  int runs = 0;
  Reactor::PassTask task(r, [&runs] { ++runs; });
  Reactor::PassTask* p = &task;
  schedule_from_poller(r, &p, 5);
  r.poll_once();
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(task.scheduled());
  r.poll_once();
  EXPECT_EQ(runs, 2);
}

TEST(PassTask, DestroyedBeforeThePassEndsNeverRuns) {
  Reactor r(9, 0);
  int runs = 0;
  auto task = std::make_unique<Reactor::PassTask>(r, [&runs] { ++runs; });
  task->schedule();
  task.reset();
  r.poll_once();
  EXPECT_EQ(runs, 0);
}

TEST(PassTask, ATaskMayDestroyALaterOneOfTheSameBatch) {
  Reactor r(9, 0);
  int later_runs = 0;
  auto later = std::make_unique<Reactor::PassTask>(r, [&later_runs] { ++later_runs; });
  Reactor::PassTask first(r, [&later] { later.reset(); });
  first.schedule();
  later->schedule();
  r.poll_once();
  EXPECT_EQ(later, nullptr);
  EXPECT_EQ(later_runs, 0);
}

TEST(PassTask, ATaskMayScheduleItselfAgainInTheSamePass) {
  // A flush that frees requests can start waiters whose PDUs need another
  // flush: it runs again before the pass ends.
  Reactor r(9, 0);
  int runs = 0;
  std::unique_ptr<Reactor::PassTask> task;
  task = std::make_unique<Reactor::PassTask>(r, [&] {
    if (++runs < 3) task->schedule();
  });
  task->schedule();
  r.poll_once();
  EXPECT_EQ(runs, 3);
}

}  // namespace
}  // namespace nvemu
