#include "reactor/offload.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "reactor/reactor.h"

namespace nvemu {
namespace {

void unpin_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  long n = sysconf(_SC_NPROCESSORS_CONF);
  for (long i = 0; i < n && i < CPU_SETSIZE; ++i) CPU_SET(static_cast<int>(i), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort
}

// Running workers and where their results go. Closed by shutdown_offload()
// before the reactors are destroyed, so no worker sends to a dead one.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  unsigned running = 0;
  std::vector<std::function<void()>> late;  // results that came after closing
};

Gate& gate() {
  static Gate g;
  return g;
}

}  // namespace

void offload(std::function<void()> job, std::function<void()> done) {
  if (!ReactorSet::instance().created()) {
    std::thread([&job] {
      unpin_this_thread();
      job();
      job = nullptr;
    }).join();
    done();
    return;
  }
  Reactor* main = &ReactorSet::instance().main();
  {
    std::lock_guard lk(gate().mu);
    if (!gate().open) return;  // shutting down: the request goes unanswered
    ++gate().running;
  }
  std::thread([main, job = std::move(job), done = std::move(done)]() mutable {
    unpin_this_thread();
    job();
    job = nullptr;
    Gate& g = gate();
    std::lock_guard lk(g.mu);
    if (g.open)
      main->send(std::move(done));
    else
      g.late.push_back(std::move(done));
    --g.running;
    g.cv.notify_all();
  }).detach();
}

void shutdown_offload(std::chrono::milliseconds wait) {
  Gate& g = gate();
  std::vector<std::function<void()>> late;
  {
    std::unique_lock lk(g.mu);
    g.open = false;
    g.cv.wait_for(lk, wait, [&] { return g.running == 0; });
    late.swap(g.late);
  }
  late.clear();  // what they hold is released on this thread
}

}  // namespace nvemu
