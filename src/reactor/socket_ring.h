// One io_uring per reactor for socket I/O (NVMe/TCP connections), SPDK's
// "uring" sock implementation: chosen with sock_set_default_impl; "posix"
// (epoll) stays the default. A pass costs one memory load when nothing
// happened, and the receives and sends of all connections cost two
// io_uring_enter calls a pass, where epoll spends an epoll_wait per pass plus
// a recv and a sendmsg per connection with work. Fewer system calls did not
// make it faster on loopback here (docs/performance.md): the kernel's TCP
// work is the same, and each receive re-arms a poll.
//
// The ring runs its task work only when this reactor asks
// (IORING_SETUP_DEFER_TASKRUN): no interrupt reaches a spinning reactor when
// data arrives, the kernel only sets IORING_SQ_TASKRUN, which the poller reads.
// While the reactor sleeps in epoll, the ring's eventfd is enabled and wakes
// it. A kernel that does not signal that eventfd for deferred work (probed at
// set-up) or has no such ring gets no SocketRing: of() returns nullptr and the
// sockets stay on epoll.
//
// Operations complete through Op::on_cqe on the reactor's thread, from the
// ring's poller. An Op's owner must stay alive until every operation it
// submitted has completed (shutdown(2) on the socket completes them).
#pragma once

#include <liburing.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "reactor/reactor.h"

namespace nvemu {

class SocketRing {
 public:
  class Op {
   public:
    // res: the operation's result, a byte count or -errno.
    virtual void on_cqe(int res) = 0;

   protected:
    ~Op() = default;
  };

  // Process-wide choice of socket implementation for new connections, as
  // SPDK's sock_set_default_impl: "posix" (epoll, the default) or "uring".
  static bool set_default_impl(const std::string& name);
  static std::string default_impl();

  // This reactor's ring when new connections should use one (impl "uring"
  // and the kernel supports it); nullptr: use epoll. Reactor thread.
  static SocketRing* of(Reactor& reactor);

  explicit SocketRing(Reactor& reactor);
  ~SocketRing();
  SocketRing(const SocketRing&) = delete;
  SocketRing& operator=(const SocketRing&) = delete;

  bool ok() const { return ok_; }
  // Queued now, submitted at the end of the pass.
  void recv(int fd, void* buf, size_t len, Op* op);
  void sendmsg(int fd, const msghdr* msg, int flags, Op* op);

 private:
  io_uring_sqe* next_sqe();
  int poll();
  void submit();
  // Reactor sleep: the eventfd wakes it while no pass reads the ring.
  bool prepare_sleep();
  void woke();
  bool work_pending() const;

  Reactor& reactor_;
  io_uring ring_{};
  bool ok_ = false;
  int efd_ = -1;
  uint32_t inflight_ = 0;
  Reactor::PollerId poller_ = 0;
  Reactor::PassTask submit_task_{reactor_, [this] { submit(); }};
  Reactor::SleepHook sleep_hook_;
};

}  // namespace nvemu
