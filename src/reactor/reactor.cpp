#include "reactor/reactor.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/clock.h"
#include "common/counter.h"
#include "common/log.h"

namespace nvemu {
namespace {

thread_local Reactor* t_current = nullptr;
std::atomic<size_t> g_next_local_id{0};

}  // namespace

Reactor::Reactor(unsigned index, unsigned core) : index_(index), core_(core) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0)
    throw std::runtime_error(fmt::format("reactor {}: epoll/eventfd: {}", core, strerror(errno)));
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.fd = wakefd_;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
}

Reactor::~Reactor() {
  if (thread_.joinable()) {
    request_stop();
    thread_.join();
  }
  destroy_locals();
  close(wakefd_);
  close(epfd_);
}

Reactor* Reactor::current() {
  return t_current;
}

uint64_t Reactor::loop_us() {
  return t_current ? t_current->loop_now_us_ : now_us();
}

uint64_t Reactor::now_us() {
  return monotonic_us();
}

void Reactor::send(Msg fn) {
  msgs_.push(std::move(fn));
  // Pairs with the seq_cst store in wait_events(): either the reactor sees
  // the message before sleeping or we see it sleeping and wake it.
  if (sleeping_.load(std::memory_order_seq_cst)) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wakefd_, &one, sizeof one);
  }
}

void Reactor::request_stop() {
  stop_ = true;
  send([] {});
}

Reactor::PollerId Reactor::add_poller(PollFn fn) {
  PollerId id = next_id_++;
  pollers_.push_back(std::make_unique<Poller>(Poller{id, std::move(fn)}));
  return id;
}

void Reactor::remove_poller(PollerId id) {
  for (auto& p : pollers_)
    if (p->id == id) {
      p->removed = true;
      pollers_removed_ = true;
    }
}

void Reactor::add_fd(int fd, uint32_t events, FdFn fn) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    throw std::runtime_error(fmt::format("epoll add fd {}: {}", fd, strerror(errno)));
  fds_[fd] = std::make_shared<FdFn>(std::move(fn));
}

void Reactor::modify_fd(int fd, uint32_t events) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.fd = fd;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
}

void Reactor::remove_fd(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  fds_.erase(fd);
}

Reactor::TimerId Reactor::add_timer(std::chrono::microseconds delay, TimerFn fn,
                                    std::chrono::microseconds period) {
  TimerId id = next_id_++;
  timers_[id] = Timer{std::move(fn), static_cast<uint64_t>(period.count())};
  timer_queue_.emplace(now_us() + static_cast<uint64_t>(delay.count()), id);
  return id;
}

void Reactor::cancel_timer(TimerId id) {
  timers_.erase(id);
}

int Reactor::run_messages() {
  int n = 0;
  Msg m;
  // Bounded so a flood of messages cannot starve the pollers.
  while (n < 256 && msgs_.pop(&m)) {
    m();
    ++n;
  }
  return n;
}

void Reactor::run_pass_tasks() {
  // A task may schedule tasks (itself too): run until none is left.
  while (!pass_tasks_.empty()) {
    running_tasks_.swap(pass_tasks_);
    for (PassTask* t : running_tasks_) {
      if (!t) continue;  // destroyed since it was scheduled
      t->scheduled_ = false;
      t->fn_();  // may destroy t or a later task of this batch
    }
    running_tasks_.clear();
  }
}

Reactor::PassTask::~PassTask() {
  if (!scheduled_) return;
  for (auto* list : {&reactor_.pass_tasks_, &reactor_.running_tasks_})
    std::replace(list->begin(), list->end(), this, static_cast<PassTask*>(nullptr));
}

int Reactor::run_pollers() {
  int work = 0;
  // Pollers added during this pass run from the next one.
  const size_t n = pollers_.size();
  for (size_t i = 0; i < n; ++i) {
    Poller* p = pollers_[i].get();
    if (!p->removed) work += p->fn();
  }
  if (pollers_removed_) {
    pollers_removed_ = false;
    std::erase_if(pollers_, [](const auto& p) { return p->removed; });
  }
  return work;
}

void Reactor::run_timers(uint64_t now) {
  while (!timer_queue_.empty() && timer_queue_.begin()->first <= now) {
    TimerId id = timer_queue_.begin()->second;
    timer_queue_.erase(timer_queue_.begin());
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled
    if (it->second.period_us) {
      timer_queue_.emplace(now + it->second.period_us, id);
      TimerFn fn = it->second.fn;  // the callback may cancel itself
      fn();
    } else {
      TimerFn fn = std::move(it->second.fn);
      timers_.erase(it);
      fn();
    }
  }
}

int64_t Reactor::sleep_bound_us(uint64_t now) const {
  uint64_t bound = sleep_limit_us_;
  if (!timer_queue_.empty()) {
    uint64_t due = timer_queue_.begin()->first;
    bound = std::min(bound, due > now ? due - now : 0);
  }
  return bound == UINT64_MAX ? -1 : static_cast<int64_t>(bound);
}

int Reactor::wait_events(int64_t timeout_us) {
  struct epoll_event evs[64];
  if (timeout_us != 0) {
    sleeping_.store(true, std::memory_order_seq_cst);
    if (!msgs_.empty() || stop_) timeout_us = 0;
  }
  int n;
  if (timeout_us <= 0) {
    n = epoll_wait(epfd_, evs, 64, static_cast<int>(timeout_us));
  } else {
    // Microsecond sleeps (epoll_wait counts milliseconds).
    struct timespec ts {
      static_cast<time_t>(timeout_us / 1000000), static_cast<long>(timeout_us % 1000000) * 1000
    };
    n = epoll_pwait2(epfd_, evs, 64, &ts, nullptr);
    if (n < 0 && errno == ENOSYS)  // before Linux 5.11
      n = epoll_wait(epfd_, evs, 64, static_cast<int>((timeout_us + 999) / 1000));
  }
  sleeping_.store(false, std::memory_order_relaxed);
  int handled = 0;
  for (int i = 0; i < n; ++i) {
    int fd = evs[i].data.fd;
    if (fd == wakefd_) {
      uint64_t v;
      [[maybe_unused]] ssize_t r = read(wakefd_, &v, sizeof v);
      continue;
    }
    auto it = fds_.find(fd);
    if (it == fds_.end()) continue;
    std::shared_ptr<FdFn> fn = it->second;  // the handler may remove itself
    ++handled;
    (*fn)(evs[i].events);
  }
  return handled;
}

void Reactor::pin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core_, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
    LOG_WARN("reactor",
             "could not pin reactor to core {} (not in this process's allowed "
             "CPUs?); running unpinned",
             core_);
}

void Reactor::run() {
  t_current = this;
  pin();
  // Sleeps bounded by limit_sleep_us() are latency: no 50 us default slack.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  LOG_NOTICE("reactor", "Reactor started on core {}", core_);
  uint64_t last_work = now_us();
  uint64_t mark = last_work;
  loop_now_us_ = last_work;
  // Spinning, each pass looks at the fds with a non-blocking epoll_wait: a
  // syscall, most of a queue-depth-1 vfio-user round trip, whose work comes
  // from pollers. Once kQuietLooks looks in a row found nothing, the look is
  // made every kFdSkip-th pass only; any event (socket traffic) makes it
  // every pass again, so a TCP stream keeps its per-pass latency.
  constexpr int kQuietLooks = 64, kFdSkip = 16;
  int quiet_fd_looks = 0, skipped = 0;
  while (!stop_) {
    sleep_limit_us_ = UINT64_MAX;
    int work = run_messages() + run_pollers();
    run_pass_tasks();
    uint64_t now = now_us();
    run_timers(now);
    // A timer's callback may schedule pass tasks (a delayed completion
    // queues its TCP send): run them before deciding to sleep, or they
    // wait for the next wake-up, which may never come.
    run_pass_tasks();
    if (work > 0) last_work = now;
    bool spin = work > 0 || now - last_work < spin_us_;
    int64_t timeout = spin ? 0 : sleep_bound_us(now);
    bool hooked = timeout != 0 && !sleep_hooks_.empty();
    if (hooked)
      for (SleepHook* h : sleep_hooks_)
        if (!h->prepare()) timeout = 0;
    // An fd event is work too: keep spinning after socket traffic, so the
    // next request of a queue-depth-1 stream finds the reactor awake
    // instead of paying an epoll wake-up.
    int events = 0;
    uint64_t after = now;  // a skipped look takes no time worth a clock read
    if (timeout == 0 && quiet_fd_looks >= kQuietLooks && skipped < kFdSkip) {
      ++skipped;
    } else {
      skipped = 0;
      events = wait_events(timeout);
      quiet_fd_looks = events > 0 ? 0 : quiet_fd_looks + 1;
      run_pass_tasks();
      after = now_us();
    }
    if (hooked)
      for (SleepHook* h : sleep_hooks_) h->woke();
    loop_now_us_ = after;
    if (events > 0) last_work = after;
    // SPDK's meaning, which spdk_top and load figures rely on: a pass that
    // found work is busy; one that polled and found nothing, or slept, is
    // idle. This thread is the counters' only writer: no locked add per pass.
    add_single_writer(work > 0 || events > 0 ? busy_us_ : idle_us_, after - mark);
    mark = after;
  }
  // Drain what was sent before stop so no completion is lost, and leave no
  // PassTask scheduled: its owner may outlive this reactor.
  run_messages();
  run_pass_tasks();
  destroy_locals();
  t_current = nullptr;
}

size_t Reactor::new_local_id() {
  return g_next_local_id.fetch_add(1, std::memory_order_relaxed);
}

void Reactor::destroy_locals() {
  Reactor* prev = t_current;
  t_current = this;
  // Newest first: a later layer may use an earlier one while it goes.
  while (!locals_.empty()) {
    std::unique_ptr<LocalBase> last = std::move(locals_.back());
    locals_.pop_back();
    last.reset();
  }
  t_current = prev;
}

int Reactor::poll_once() {
  Reactor* prev = t_current;
  t_current = this;
  loop_now_us_ = now_us();
  sleep_limit_us_ = UINT64_MAX;
  int work = run_messages() + run_pollers();
  run_pass_tasks();
  run_timers(now_us());
  t_current = prev;
  return work;
}

void Reactor::start_thread() {
  thread_ = std::thread([this] { run(); });
}

void Reactor::join() {
  if (thread_.joinable()) thread_.join();
}

ReactorSet& ReactorSet::instance() {
  static ReactorSet set;
  return set;
}

void ReactorSet::create(const std::vector<unsigned>& cores, unsigned main_core) {
  reactors_.clear();
  reactors_.push_back(std::make_unique<Reactor>(0, main_core));
  unsigned idx = 1;
  for (unsigned c : cores)
    if (c != main_core) reactors_.push_back(std::make_unique<Reactor>(idx++, c));
}

void ReactorSet::start_others() {
  for (size_t i = 1; i < reactors_.size(); ++i) reactors_[i]->start_thread();
}

void ReactorSet::run_main() {
  reactors_.at(0)->run();
}

void ReactorSet::stop_all() {
  for (auto& r : reactors_) r->request_stop();
}

void ReactorSet::join_others() {
  for (size_t i = 1; i < reactors_.size(); ++i) reactors_[i]->join();
}

void ReactorSet::destroy() {
  reactors_.clear();
}

Reactor& ReactorSet::next() {
  size_t i = rr_.fetch_add(1, std::memory_order_relaxed) % reactors_.size();
  return *reactors_[i];
}

std::vector<unsigned> ReactorSet::cores() const {
  std::vector<unsigned> out;
  for (auto& r : reactors_) out.push_back(r->core());
  return out;
}

}  // namespace nvemu
