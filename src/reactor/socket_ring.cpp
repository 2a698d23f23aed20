#include "reactor/socket_ring.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace nvemu {
namespace {

constexpr const char* kLog = "sock";
// Each connection has at most one receive and one send in flight, so this
// many connections per reactor fit without the CQ (twice the SQ) overflowing;
// beyond that the kernel holds the overflow (IORING_FEAT_NODROP).
constexpr unsigned kRingEntries = 512;
constexpr unsigned kReapBatch = 64;

// posix by default, as in SPDK: on loopback here the ring measured 3-5 %
// slower than epoll at 4K QD1 and level within the noise at QD32 and QD128
// (docs/performance.md).
std::atomic<bool> g_use_uring{false};

bool eventfd_readable(int efd) {
  struct pollfd p {
    efd, POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void drain_eventfd(int efd) {
  uint64_t v;
  [[maybe_unused]] ssize_t r = ::read(efd, &v, sizeof v);
}

}  // namespace

bool SocketRing::set_default_impl(const std::string& name) {
  if (name == "uring")
    g_use_uring = true;
  else if (name == "posix")
    g_use_uring = false;
  else
    return false;
  return true;
}

std::string SocketRing::default_impl() {
  return g_use_uring ? "uring" : "posix";
}

SocketRing* SocketRing::of(Reactor& reactor) {
  if (!g_use_uring) return nullptr;
  SocketRing& ring = reactor.local<SocketRing>();
  return ring.ok() ? &ring : nullptr;
}

SocketRing::SocketRing(Reactor& reactor) : reactor_(reactor) {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  p.cq_entries = 2 * kRingEntries;
  p.flags |= IORING_SETUP_CQSIZE;
  int rc = io_uring_queue_init_params(kRingEntries, &ring_, &p);
  if (rc < 0) {
    LOG_NOTICE(kLog, "reactor {}: no io_uring with deferred task work ({}); sockets use epoll",
               reactor.core(), strerror(-rc));
    return;
  }
  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0 || io_uring_register_eventfd(&ring_, efd_) != 0) {
    LOG_NOTICE(kLog, "reactor {}: cannot register an eventfd with io_uring; sockets use epoll",
               reactor.core());
    if (efd_ >= 0) ::close(efd_);
    efd_ = -1;
    io_uring_queue_exit(&ring_);
    return;
  }
  // The reactor's sleep relies on the kernel signalling the eventfd when a
  // receive's data arrives (deferred task work). Prove it on a socketpair.
  int sv[2];
  bool signalled = false;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
    char byte = 0;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_recv(sqe, sv[0], &byte, 1, 0);
    io_uring_sqe_set_data(sqe, nullptr);
    io_uring_submit(&ring_);
    drain_eventfd(efd_);
    [[maybe_unused]] ssize_t w = ::write(sv[1], "x", 1);
    signalled = eventfd_readable(efd_);
    io_uring_get_events(&ring_);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring_, &cqe) == 0) io_uring_cqe_seen(&ring_, cqe);
    ::close(sv[0]);
    ::close(sv[1]);
    drain_eventfd(efd_);
  }
  if (!signalled) {
    LOG_NOTICE(kLog,
               "reactor {}: this kernel's io_uring does not signal deferred completions; "
               "sockets use epoll",
               reactor.core());
    io_uring_unregister_eventfd(&ring_);
    ::close(efd_);
    efd_ = -1;
    io_uring_queue_exit(&ring_);
    return;
  }
  ok_ = true;
  io_uring_cq_eventfd_toggle(&ring_, false);
  reactor_.add_fd(efd_, EPOLLIN, [this](uint32_t) { drain_eventfd(efd_); });
  poller_ = reactor_.add_poller([this] { return poll(); });
  sleep_hook_.prepare = [this] { return prepare_sleep(); };
  sleep_hook_.woke = [this] { woke(); };
  reactor_.add_sleep_hook(&sleep_hook_);
  LOG_DEBUG(kLog, "reactor {}: sockets on io_uring", reactor.core());
}

SocketRing::~SocketRing() {
  if (!ok_) return;
  reactor_.remove_sleep_hook(&sleep_hook_);
  reactor_.remove_poller(poller_);
  reactor_.remove_fd(efd_);
  // Operations still in flight belong to connections the reactor stopped
  // under; cancel them so the kernel lets go of their buffers, and deliver
  // the cancellations so their owners can finish.
  if (inflight_ > 0) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data(sqe, nullptr);
    for (int round = 0; inflight_ > 0 && round < 100; ++round) {
      __kernel_timespec ts{0, 1000000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      poll();
    }
  }
  io_uring_unregister_eventfd(&ring_);
  ::close(efd_);
  io_uring_queue_exit(&ring_);
}

io_uring_sqe* SocketRing::next_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (!sqe) {
    // A full SQ goes to the kernel now. It refuses (EBUSY) while CQEs wait
    // in its overflow list; poll() consumed the CQ before its handlers ran,
    // so flushing that list into the CQ makes room.
    if (io_uring_submit(&ring_) == -EBUSY) io_uring_get_events(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  submit_task_.schedule();
  return sqe;
}

void SocketRing::recv(int fd, void* buf, size_t len, Op* op) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_recv(sqe, fd, buf, len, 0);
  io_uring_sqe_set_data(sqe, op);
  ++inflight_;
}

void SocketRing::sendmsg(int fd, const msghdr* msg, int flags, Op* op) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_sendmsg(sqe, fd, msg, static_cast<unsigned>(flags));
  io_uring_sqe_set_data(sqe, op);
  ++inflight_;
}

void SocketRing::submit() {
  if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
}

bool SocketRing::work_pending() const {
  unsigned flags = IO_URING_READ_ONCE(*ring_.sq.kflags);
  return (flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) || io_uring_cq_ready(&ring_) > 0;
}

int SocketRing::poll() {
  if (!work_pending()) return 0;
  // Task work runs the receives whose data arrived; an overflowed CQ is
  // flushed by the same call.
  if (IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))
    io_uring_get_events(&ring_);
  int done = 0;
  io_uring_cqe* cqes[kReapBatch];
  unsigned n;
  // The handlers queue new operations (and may submit when the SQ is
  // full): the CQ is consumed before they run.
  while ((n = io_uring_peek_batch_cqe(&ring_, cqes, kReapBatch)) > 0) {
    struct Done {
      Op* op;
      int res;
    } batch[kReapBatch];
    for (unsigned i = 0; i < n; ++i)
      batch[i] = {static_cast<Op*>(io_uring_cqe_get_data(cqes[i])), cqes[i]->res};
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < n; ++i) {
      if (!batch[i].op) continue;  // set-up probe or cancel request
      --inflight_;
      batch[i].op->on_cqe(batch[i].res);
    }
    done += static_cast<int>(n);
  }
  return done;
}

bool SocketRing::prepare_sleep() {
  io_uring_cq_eventfd_toggle(&ring_, true);
  // Pairs with the kernel setting IORING_SQ_TASKRUN before it reads the
  // eventfd's enable flag: either it signals, or this load sees the flag.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!work_pending()) return true;
  io_uring_cq_eventfd_toggle(&ring_, false);
  return false;
}

void SocketRing::woke() {
  io_uring_cq_eventfd_toggle(&ring_, false);
}

}  // namespace nvemu
