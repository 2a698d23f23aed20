// One reactor per core in the app's mask: a pinned thread that runs pollers,
// fd handlers, timers and messages to completion. Everything a reactor owns
// (qpairs, bdev channels, connections) is touched only on its thread; other
// threads reach it with send(). When no poller has work the reactor sleeps in
// epoll_wait, so an idle target costs (almost) no CPU, unlike SPDK's
// always-spinning reactors.
#pragma once

#include <sys/epoll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "reactor/mpsc_queue.h"

namespace nvemu {

class Reactor {
 public:
  using Msg = std::function<void()>;
  // Returns how much work it did; 0 means idle. A reactor keeps polling while
  // any poller is busy and for spin_us after the last work.
  using PollFn = std::function<int()>;
  using FdFn = std::function<void(uint32_t events)>;
  using TimerFn = std::function<void()>;
  using PollerId = uint64_t;
  using TimerId = uint64_t;

  Reactor(unsigned index, unsigned core);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  unsigned index() const { return index_; }
  unsigned core() const { return core_; }
  // The reactor whose thread is running, or nullptr off-reactor.
  static Reactor* current();
  bool on_thread() const { return current() == this; }

  // Any thread. Runs fn on this reactor's thread, in order of sending.
  void send(Msg fn);
  void request_stop();

  // Work that many completions of one pass trigger (a socket flush, an
  // interrupt) and that should run once, at the end of the pass: after the
  // pollers, or after the fd handlers when scheduled from one. Owned by the
  // object whose work it is; destroying it unschedules it, so no lifetime
  // token (weak_ptr) is taken per pass, and scheduling allocates nothing.
  class PassTask {
   public:
    PassTask(Reactor& reactor, std::function<void()> fn) : reactor_(reactor), fn_(std::move(fn)) {}
    // On the reactor's thread if still scheduled.
    ~PassTask();
    PassTask(const PassTask&) = delete;
    PassTask& operator=(const PassTask&) = delete;
    // Owner thread only. Runs fn once this pass, however often it is called.
    void schedule() {
      if (scheduled_) return;
      scheduled_ = true;
      reactor_.pass_tasks_.push_back(this);
    }
    bool scheduled() const { return scheduled_; }

   private:
    friend class Reactor;
    Reactor& reactor_;
    std::function<void()> fn_;
    bool scheduled_ = false;
  };

  // For a poller whose work no fd announces while the reactor spins but one
  // can while it sleeps (an io_uring with deferred task work): prepare() runs
  // before each sleep and returns false if work turned up after all (the
  // reactor then does not sleep); woke() runs after it. Owner thread only;
  // the hook must outlive its registration.
  struct SleepHook {
    std::function<bool()> prepare;
    std::function<void()> woke;
  };
  void add_sleep_hook(SleepHook* hook) { sleep_hooks_.push_back(hook); }
  void remove_sleep_hook(SleepHook* hook) { std::erase(sleep_hooks_, hook); }

  // Owner thread only.
  PollerId add_poller(PollFn fn);
  void remove_poller(PollerId id);
  // An event on the fd counts as work: the reactor keeps spinning after it.
  void add_fd(int fd, uint32_t events, FdFn fn);
  void modify_fd(int fd, uint32_t events);
  void remove_fd(int fd);
  TimerId add_timer(std::chrono::microseconds delay, TimerFn fn,
                    std::chrono::microseconds period = std::chrono::microseconds(0));
  void cancel_timer(TimerId id);
  void set_spin_us(uint64_t us) { spin_us_ = us; }
  // For a poller that watches memory no fd signals (vfio-user doorbells):
  // called in a pass, it bounds how long the reactor may sleep after that
  // pass, so the memory is looked at again within `us`. The bound lasts one
  // pass and arms a kernel timer only when the reactor does go to sleep: a
  // periodic timer running while the reactor spins would interrupt it
  // thousands of times a second (each a VM exit on a virtual machine) and
  // cost a queue-depth-1 stream a third of its latency.
  void limit_sleep_us(uint64_t us) { sleep_limit_us_ = std::min(sleep_limit_us_, us); }

  // Runs the loop on the calling thread until request_stop(); pins the thread
  // to core() (best effort: a core outside the allowed set only warns).
  void run();
  // Tests and single-threaded harnesses: one pass of messages, pollers and
  // due timers on the calling thread, which acts as this reactor's thread for
  // the call. Never sleeps. Returns the work done (0 = idle).
  int poll_once();
  // Starts run() on a new thread.
  void start_thread();
  void join();

  static uint64_t now_us();
  // The calling reactor's clock as of its current loop pass (read once per
  // pass, when it woke or finished polling), or now_us() off-reactor. For
  // per-I/O timestamps that need no more than a pass's resolution.
  static uint64_t loop_us();

  // Per-reactor state of a layer above (the controller's poll group): one T
  // per reactor, made on first use as T(*this), touched only on this
  // reactor's thread.
  // Destroyed on that thread when the loop ends (after its last messages),
  // or with the reactor, with current() set to this reactor in both cases,
  // so what T holds (bdev channels registered on this epoll) is released
  // where it lives.
  template <typename T>
  T& local();

  // For framework_get_reactors: time in passes that found work vs passes
  // that found none or slept (a spinning reactor with nothing to do is idle).
  uint64_t busy_us() const { return busy_us_.load(std::memory_order_relaxed); }
  uint64_t idle_us() const { return idle_us_.load(std::memory_order_relaxed); }
  size_t poller_count() const { return pollers_.size(); }

 private:
  struct LocalBase {
    virtual ~LocalBase() = default;
  };
  template <typename T>
  struct LocalOf final : LocalBase {
    explicit LocalOf(Reactor& r) : value(r) {}
    T value;
  };
  static size_t new_local_id();
  void destroy_locals();

  int run_messages();
  void run_pass_tasks();
  int run_pollers();
  int run_timers(uint64_t now);  // how many fired
  // How long the reactor may sleep from `now`: the next timer or the pass's
  // sleep limit, whichever is first; -1 for no bound.
  int64_t sleep_bound_us(uint64_t now) const;
  // Handles ready fds; returns how many had events (the wake-up fd excluded).
  // timeout_us: 0 looks without blocking, -1 blocks until an event.
  int wait_events(int64_t timeout_us);
  void pin();

  struct Timer {
    TimerFn fn;
    uint64_t period_us;
  };

  unsigned index_;
  unsigned core_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> sleeping_{false};
  MpscQueue<Msg> msgs_;
  struct Poller {
    PollerId id;
    PollFn fn;
    bool removed = false;
  };
  // Entries are heap-stable so a poller may add or remove pollers (itself
  // included) while it runs; removed ones are freed after the pass.
  std::vector<std::unique_ptr<Poller>> pollers_;
  bool pollers_removed_ = false;
  std::unordered_map<int, std::shared_ptr<FdFn>> fds_;
  std::multimap<uint64_t, TimerId> timer_queue_;
  std::unordered_map<TimerId, Timer> timers_;
  uint64_t next_id_ = 1;
  uint64_t spin_us_ = 200;
  uint64_t sleep_limit_us_ = UINT64_MAX;
  std::thread thread_;
  std::atomic<uint64_t> busy_us_{0};
  std::atomic<uint64_t> idle_us_{0};
  std::vector<std::unique_ptr<LocalBase>> locals_;
  uint64_t loop_now_us_ = 0;
  // Scheduled PassTasks; a destroyed one leaves a nullptr behind.
  std::vector<PassTask*> pass_tasks_, running_tasks_;
  std::vector<SleepHook*> sleep_hooks_;
};

template <typename T>
T& Reactor::local() {
  static const size_t id = new_local_id();
  if (id >= locals_.size()) locals_.resize(id + 1);
  if (!locals_[id]) locals_[id] = std::make_unique<LocalOf<T>>(*this);
  return static_cast<LocalOf<T>*>(locals_[id].get())->value;
}

// All reactors of the process: one per core of the mask, the main core's
// reactor first. The main reactor runs on the thread that calls run_main().
class ReactorSet {
 public:
  static ReactorSet& instance();

  // main_core must be in cores.
  void create(const std::vector<unsigned>& cores, unsigned main_core);
  void start_others();  // threads for every reactor but main
  void run_main();      // blocks until stop_all()
  void stop_all();
  void join_others();
  void destroy();

  size_t size() const { return reactors_.size(); }
  Reactor& main() { return *reactors_.at(0); }
  Reactor& at(size_t i) { return *reactors_.at(i); }
  // Spreads new connections/qpairs over the reactors, round robin.
  Reactor& next();
  std::vector<unsigned> cores() const;
  bool created() const { return !reactors_.empty(); }

 private:
  std::vector<std::unique_ptr<Reactor>> reactors_;
  std::atomic<size_t> rr_{0};
};

}  // namespace nvemu
