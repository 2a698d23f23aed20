#include "bdev/rbd/offload.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <memory>
#include <thread>

#include "reactor/reactor.h"
#include "rpc/registry.h"

namespace nvemu::bdev::rbd {
namespace {

void unpin_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  long n = sysconf(_SC_NPROCESSORS_CONF);
  for (long i = 0; i < n && i < CPU_SETSIZE; ++i) CPU_SET(static_cast<int>(i), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort
}

}  // namespace

void offload(std::function<void()> job, std::function<void()> done) {
  if (rpc::Registry::instance().replaying() || !ReactorSet::instance().created()) {
    std::thread t([&job] {
      unpin_this_thread();
      job();
    });
    t.join();
    done();
    return;
  }
  Reactor* main = &ReactorSet::instance().main();
  std::thread([main, job = std::move(job), done = std::move(done)]() mutable {
    unpin_this_thread();
    job();
    main->send(std::move(done));
  }).detach();
}

}  // namespace nvemu::bdev::rbd
