// bdev_nvme's pieces that need no remote: SPDK's timeout rules and the
// per-reactor path's queue-while-reconnecting behaviour, driven through a
// fake qpair on a reactor polled by hand.
#include <gtest/gtest.h>

#include <vector>

#include "bdev/nvme/channel.h"
#include "bdev/nvme/options.h"

namespace nvemu::bdev::nvme {
namespace {

namespace n = ::nvemu::nvme;

TEST(BdevNvmeResiliency, SpdkRules) {
  struct Case {
    int32_t loss;
    uint32_t delay, fast;
    bool ok;
  };
  const Case cases[] = {
      {0, 0, 0, true},   {-1, 1, 0, true},   {-1, 0, 0, false}, {-2, 1, 0, false},
      {-1, 2, 1, false}, {-1, 2, 2, true},   {10, 0, 0, false}, {10, 11, 0, false},
      {10, 2, 1, false}, {10, 2, 11, false}, {10, 2, 10, true}, {0, 1, 0, false},
      {0, 0, 1, false},  {3, 1, 2, true},
  };
  for (const auto& c : cases)
    EXPECT_EQ(check_resiliency({c.loss, c.delay, c.fast}).empty(), c.ok)
        << c.loss << " " << c.delay << " " << c.fast;
  EXPECT_NE(check_resiliency({10, 0, 0}).find("reconnect_delay_sec can't be 0"), std::string::npos);
}

// Completes what it holds when polled, or fails like a dropped connection.
class FakeQpair final : public IoQpair {
 public:
  struct Cmd {
    uint8_t opc;
    uint64_t slba;
    IoCallback cb;
    void* ctx;
  };
  std::vector<Cmd> cmds;
  bool fail_next = false, failed_ = false;
  size_t capacity = 64;

  bool submit(uint8_t opc, uint32_t, uint64_t slba, uint32_t, const struct iovec*, int, uint32_t,
              IoCallback cb, void* ctx) override {
    if (failed_ || cmds.size() >= capacity) return false;
    cmds.push_back({opc, slba, cb, ctx});
    return true;
  }
  int poll() override {
    auto run = std::move(cmds);
    cmds.clear();
    n::Cqe c{};
    if (fail_next) {
      failed_ = true;
      c.status = static_cast<uint16_t>(n::sc::kTransientTransportError << 1);
    }
    for (auto& cmd : run) cmd.cb(cmd.ctx, c);
    return failed_ ? -1 : static_cast<int>(run.size());
  }
  int fd() const override { return -1; }
  uint32_t outstanding() const override { return static_cast<uint32_t>(cmds.size()); }
  bool failed() const override { return failed_; }
  std::string error() const override { return failed_ ? "dropped" : ""; }
};

class FakeBdev final : public Bdev {
 public:
  FakeBdev() : Bdev("Fake0n1", "NVMe disk", 512, 1024) {}
  bool supports(IoType) const override { return true; }
  std::unique_ptr<Channel> open_channel() override { return nullptr; }
  std::string module_name() const override { return "nvme"; }
  nlohmann::json config_entry() const override { return nullptr; }
};

struct Done {
  std::vector<IoStatus> statuses;
};

void record(BdevIo* io, IoStatus s) {
  static_cast<Done*>(io->ctx)->statuses.push_back(s);
}

class ReactorPathTest : public ::testing::Test {
 protected:
  Reactor r{9, 0};
  FakeBdev bdev;
  std::vector<uint64_t> lost;
  int asked = 0;
  std::shared_ptr<ReactorPath> path = std::make_shared<ReactorPath>(
      r, [this](uint64_t gen) { lost.push_back(gen); }, [this] { ++asked; });
  Done done;
  uint8_t buf[512]{};
  struct iovec iov {
    buf, sizeof buf
  };
  std::vector<BdevIo> ios = std::vector<BdevIo>(8);

  BdevIo* io(size_t i, IoType t = IoType::kWrite) {
    BdevIo* b = &ios[i];
    b->type = t;
    b->offset_blocks = i;
    b->num_blocks = 1;
    b->iovs = &iov;
    b->iovcnt = 1;
    b->cb = record;
    b->ctx = &done;
    return b;
  }
  FakeQpair* attach(uint64_t gen) {
    auto qp = std::make_unique<FakeQpair>();
    FakeQpair* raw = qp.get();
    path->attach(std::move(qp), gen);
    return raw;
  }
  void TearDown() override { path->shutdown(); }
};

TEST_F(ReactorPathTest, QueuedUntilAQpairArrivesThenSent) {
  NsChannel ch(bdev, 1, path);
  ch.submit(io(0));
  ch.submit(io(1));
  r.poll_once();
  EXPECT_TRUE(done.statuses.empty());
  EXPECT_EQ(path->queued(), 2u);
  FakeQpair* qp = attach(1);
  EXPECT_EQ(qp->cmds.size(), 2u);
  EXPECT_EQ(qp->cmds[0].slba, 0u);  // in order
  r.poll_once();
  EXPECT_EQ(done.statuses, (std::vector<IoStatus>{IoStatus::kSuccess, IoStatus::kSuccess}));
}

TEST_F(ReactorPathTest, LostQpairRequeuesInFlightIoAndReportsItsGeneration) {
  NsChannel ch(bdev, 1, path);
  FakeQpair* qp = attach(7);
  ch.submit(io(0));
  ch.submit(io(1, IoType::kRead));
  ASSERT_EQ(qp->cmds.size(), 2u);
  qp->fail_next = true;
  r.poll_once();
  EXPECT_TRUE(done.statuses.empty()) << "path errors must queue, not fail";
  EXPECT_EQ(lost, std::vector<uint64_t>{7});
  EXPECT_EQ(path->queued(), 2u);
  ch.submit(io(2));  // arrives while disconnected
  EXPECT_EQ(path->queued(), 3u);
  FakeQpair* qp2 = attach(8);
  ASSERT_EQ(qp2->cmds.size(), 3u);
  EXPECT_EQ(qp2->cmds[0].slba, 0u);
  EXPECT_EQ(qp2->cmds[2].slba, 2u);
  r.poll_once();
  EXPECT_EQ(done.statuses.size(), 3u);
  for (auto s : done.statuses) EXPECT_EQ(s, IoStatus::kSuccess);
}

TEST_F(ReactorPathTest, FailFastFailsQueuedAndNewIoUntilTheNextQpair) {
  NsChannel ch(bdev, 1, path);
  ch.submit(io(0));
  path->fail_fast();
  EXPECT_EQ(done.statuses, std::vector<IoStatus>{IoStatus::kError});
  ch.submit(io(1));
  EXPECT_EQ(done.statuses.size(), 2u);
  EXPECT_EQ(done.statuses[1], IoStatus::kError);
  attach(2);
  ch.submit(io(2));
  r.poll_once();
  EXPECT_EQ(done.statuses.back(), IoStatus::kSuccess);
}

TEST_F(ReactorPathTest, ClosingChannelAbortsItsQueuedIo) {
  {
    NsChannel ch(bdev, 1, path);
    ch.submit(io(0));
    ch.submit(io(1));
  }
  EXPECT_EQ(done.statuses, (std::vector<IoStatus>{IoStatus::kAborted, IoStatus::kAborted}));
  EXPECT_EQ(path->queued(), 0u);
}

TEST_F(ReactorPathTest, FullQpairQueuesTheRestInOrder) {
  NsChannel ch(bdev, 1, path);
  FakeQpair* qp = attach(1);
  qp->capacity = 1;
  ch.submit(io(0));
  ch.submit(io(1));
  ch.submit(io(2));
  EXPECT_EQ(qp->cmds.size(), 1u);
  EXPECT_EQ(path->queued(), 2u);
  for (int i = 0; i < 3; ++i) r.poll_once();
  EXPECT_EQ(done.statuses.size(), 3u);
  EXPECT_EQ(path->queued(), 0u);
}

TEST_F(ReactorPathTest, FirstChannelAsksForAQpairOnce) {
  {
    NsChannel ch(bdev, 1, path);
    EXPECT_EQ(asked, 1);
    NsChannel ch2(bdev, 2, path);
    EXPECT_EQ(asked, 1);
  }
  NsChannel ch3(bdev, 1, path);
  EXPECT_EQ(asked, 1);  // asked already; the qpair is on its way
}

TEST(ReactorPathAttached, NoAskWhenTheQpairIsThere) {
  Reactor r(9, 0);
  FakeBdev bdev;
  int asked = 0;
  auto path = std::make_shared<ReactorPath>(r, nullptr, [&] { ++asked; });
  path->attach(std::make_unique<FakeQpair>(), 1);
  { NsChannel ch(bdev, 1, path); }
  EXPECT_EQ(asked, 0);
  path->shutdown();
}

}  // namespace
}  // namespace nvemu::bdev::nvme
