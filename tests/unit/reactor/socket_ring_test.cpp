// The reactor's io_uring for sockets: receives and sends complete on the
// reactor's thread, a sleeping reactor wakes for a receive's data (the
// eventfd that deferred task work signals), and shutdown(2) completes what
// is pending, as TcpConnection's teardown relies on.
#include "reactor/socket_ring.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <type_traits>

namespace nvemu {
namespace {

using namespace std::chrono_literals;

struct Done final : SocketRing::Op {
  std::promise<int> res;
  bool on_reactor = false;
  Reactor* reactor = nullptr;
  void on_cqe(int r) override {
    on_reactor = reactor && reactor->on_thread();
    res.set_value(r);
  }
};

class SocketRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_), 0);
    ASSERT_TRUE(SocketRing::set_default_impl("uring"));
    reactor_.set_spin_us(100);
    reactor_.start_thread();
    ring_ = on_reactor([this] { return SocketRing::of(reactor_); });
    if (!ring_) GTEST_SKIP() << "this kernel has no io_uring for sockets";
  }
  void TearDown() override {
    reactor_.request_stop();
    reactor_.join();
    SocketRing::set_default_impl("posix");
    ::close(sv_[0]);
    ::close(sv_[1]);
  }
  template <typename Fn>
  std::invoke_result_t<Fn> on_reactor(Fn fn) {
    std::promise<std::invoke_result_t<Fn>> p;
    reactor_.send([&] { p.set_value(fn()); });
    return p.get_future().get();
  }
  // The reactor is asleep once its busy and idle counters stop moving.
  void wait_until_asleep() {
    std::this_thread::sleep_for(20ms);
    for (int i = 0; i < 100; ++i) {
      uint64_t t = reactor_.busy_us() + reactor_.idle_us();
      std::this_thread::sleep_for(5ms);
      if (reactor_.busy_us() + reactor_.idle_us() == t) return;
    }
    FAIL() << "the reactor never went to sleep";
  }

  Reactor reactor_{7, 0};
  int sv_[2] = {-1, -1};
  SocketRing* ring_ = nullptr;
};

TEST_F(SocketRingTest, SleepingReactorWakesForReceivedData) {
  char buf[16] = {};
  Done d;
  d.reactor = &reactor_;
  on_reactor([&] {
    ring_->recv(sv_[0], buf, sizeof buf, &d);
    return 0;
  });
  wait_until_asleep();
  ASSERT_EQ(::write(sv_[1], "hello", 5), 5);
  auto f = d.res.get_future();
  ASSERT_EQ(f.wait_for(2s), std::future_status::ready) << "the data did not wake the reactor";
  EXPECT_EQ(f.get(), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_TRUE(d.on_reactor);
}

TEST_F(SocketRingTest, SendmsgSendsEveryIovec) {
  char a[] = "abc", b[] = "defgh";
  struct iovec iov[2] = {{a, 3}, {b, 5}};
  struct msghdr msg {};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  Done d;
  on_reactor([&] {
    ring_->sendmsg(sv_[0], &msg, MSG_NOSIGNAL, &d);
    return 0;
  });
  auto f = d.res.get_future();
  ASSERT_EQ(f.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(f.get(), 8);
  char in[16] = {};
  ASSERT_EQ(::read(sv_[1], in, sizeof in), 8);
  EXPECT_EQ(std::string(in, 8), "abcdefgh");
}

TEST_F(SocketRingTest, ShutdownCompletesAPendingReceive) {
  char buf[16];
  Done d;
  on_reactor([&] {
    ring_->recv(sv_[0], buf, sizeof buf, &d);
    return 0;
  });
  wait_until_asleep();
  on_reactor([&] { return ::shutdown(sv_[0], SHUT_RDWR); });
  auto f = d.res.get_future();
  ASSERT_EQ(f.wait_for(2s), std::future_status::ready) << "shutdown left the receive pending";
  EXPECT_EQ(f.get(), 0);
}

TEST(SocketRingImpl, NamesAsSpdkAndPosixMeansNoRing) {
  EXPECT_EQ(SocketRing::default_impl(), "posix");
  EXPECT_FALSE(SocketRing::set_default_impl("ssl"));
  EXPECT_EQ(SocketRing::default_impl(), "posix");
  Reactor r(8, 0);
  r.start_thread();
  std::promise<SocketRing*> p;
  r.send([&] { p.set_value(SocketRing::of(r)); });
  EXPECT_EQ(p.get_future().get(), nullptr);
  r.request_stop();
  r.join();
}

}  // namespace
}  // namespace nvemu
