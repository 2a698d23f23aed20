// The error and delay vbdevs over a malloc base, and name-based UUIDs.
// Channels opened off-reactor run I/O inline (malloc) so most cases are
// synchronous; the clear-on-reactor and delay cases run on a real Reactor.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <vector>

#include "bdev/delay/delay_bdev.h"
#include "bdev/error/error_bdev.h"
#include "bdev/malloc.h"
#include "bdev/uring.h"
#include "reactor/reactor.h"

namespace nvemu::bdev {
namespace {

using namespace std::chrono_literals;

struct Io {
  BdevIo io;
  iovec iov{};
  std::vector<uint8_t> buf;
  int calls = 0;
  IoStatus status = IoStatus::kSuccess;
  uint64_t done_us = 0;
  std::promise<void>* done = nullptr;

  Io(IoType type, uint64_t lba, uint64_t blocks, uint8_t fill = 0) : buf(blocks * 512, fill) {
    io.type = type;
    io.offset_blocks = lba;
    io.num_blocks = blocks;
    iov = {buf.data(), buf.size()};
    io.iovs = &iov;
    io.iovcnt = 1;
    io.ctx = this;
    io.cb = [](BdevIo* b, IoStatus s) {
      auto* self = static_cast<Io*>(b->ctx);
      ++self->calls;
      self->status = s;
      self->done_us = Reactor::now_us();
      if (self->done) self->done->set_value();
    };
  }
};

std::shared_ptr<Bdev> malloc_bdev(const std::string& name) {
  MallocParams p;
  p.name = name;
  p.num_blocks = 64;
  p.block_size = 512;
  std::string err;
  auto b = create_malloc_bdev(p, &err);
  EXPECT_TRUE(b) << err;
  return b;
}

class ErrorBdevTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = malloc_bdev("M0");
    std::string err;
    ee_ = error::create(base_, "", &err);
    ASSERT_TRUE(ee_) << err;
    ch_ = ee_->open_channel();
    ASSERT_TRUE(ch_);
  }
  void TearDown() override {
    ch_.reset();
    if (ee_) ee_->release_base();
  }
  IoStatus run(Io& io) {
    ch_->submit(&io.io);
    EXPECT_EQ(io.calls, 1);
    return io.status;
  }

  std::shared_ptr<Bdev> base_;
  std::shared_ptr<error::ErrorBdev> ee_;
  std::unique_ptr<Channel> ch_;
};

TEST_F(ErrorBdevTest, NamedAfterBaseClaimsItAndPassesDataThrough) {
  EXPECT_EQ(ee_->name(), "EE_M0");
  EXPECT_EQ(base_->claimed_by(), "EE_M0");
  EXPECT_EQ(ee_->num_blocks(), 64u);
  std::string err;
  EXPECT_FALSE(error::create(base_, "", &err));  // claimed once only
  EXPECT_NE(err.find("already claimed by EE_M0"), std::string::npos) << err;
  Io w(IoType::kWrite, 3, 2, 0xab);
  EXPECT_EQ(run(w), IoStatus::kSuccess);
  Io r(IoType::kRead, 3, 2);
  EXPECT_EQ(run(r), IoStatus::kSuccess);
  EXPECT_EQ(r.buf, w.buf);
  ee_->release_base();
  EXPECT_EQ(base_->claimed_by(), "");
}

TEST_F(ErrorBdevTest, FailureHitsTheNextNumIosOfThatTypeOnly) {
  error::InjectOpts o;
  o.io_type = IoType::kWrite;
  o.type = error::ErrorType::kFailure;
  o.num = 2;
  ee_->inject(o);
  Io r(IoType::kRead, 0, 1);
  EXPECT_EQ(run(r), IoStatus::kSuccess);
  for (int i = 0; i < 2; ++i) {
    Io w(IoType::kWrite, 0, 1, 0x11);
    EXPECT_EQ(run(w), IoStatus::kError) << i;
  }
  Io w3(IoType::kWrite, 0, 1, 0x22);
  EXPECT_EQ(run(w3), IoStatus::kSuccess);
  Io check(IoType::kRead, 0, 1);
  run(check);
  EXPECT_EQ(check.buf[0], 0x22);  // the failed writes never reached the base
}

TEST_F(ErrorBdevTest, AllAndClearDisarm) {
  error::InjectOpts o;
  o.all = true;
  o.type = error::ErrorType::kFailure;
  o.num = 5;
  ee_->inject(o);
  Io f(IoType::kFlush, 0, 64);
  EXPECT_EQ(run(f), IoStatus::kError);
  error::InjectOpts c;
  c.clear = true;
  ee_->inject(c);
  Io r(IoType::kRead, 0, 1);
  EXPECT_EQ(run(r), IoStatus::kSuccess);
}

TEST_F(ErrorBdevTest, PendingHoldsUntilClearThenFails) {
  error::InjectOpts o;
  o.io_type = IoType::kRead;
  o.type = error::ErrorType::kPending;
  o.num = 1;
  ee_->inject(o);
  Io r(IoType::kRead, 0, 1);
  ch_->submit(&r.io);
  EXPECT_EQ(r.calls, 0);
  EXPECT_EQ(ee_->held(), 1u);
  Io r2(IoType::kRead, 0, 1);
  EXPECT_EQ(run(r2), IoStatus::kSuccess);  // num was 1
  error::InjectOpts c;
  c.clear = true;
  ee_->inject(c);
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.status, IoStatus::kError);
  EXPECT_EQ(ee_->held(), 0u);
}

TEST_F(ErrorBdevTest, PendingIosAbortWhenTheChannelCloses) {
  error::InjectOpts o;
  o.io_type = IoType::kWrite;
  o.type = error::ErrorType::kPending;
  o.num = 3;
  ee_->inject(o);
  Io a(IoType::kWrite, 0, 1), b(IoType::kWrite, 1, 1);
  ch_->submit(&a.io);
  ch_->submit(&b.io);
  EXPECT_EQ(a.calls + b.calls, 0);
  ch_.reset();
  EXPECT_EQ(a.calls, 1);
  EXPECT_EQ(b.calls, 1);
  EXPECT_EQ(a.status, IoStatus::kAborted);
  EXPECT_EQ(b.status, IoStatus::kAborted);
}

TEST_F(ErrorBdevTest, CorruptDataXorsOneByteOfReadsAndWrites) {
  Io w(IoType::kWrite, 5, 1, 0x5a);
  run(w);
  error::InjectOpts o;
  o.io_type = IoType::kRead;
  o.type = error::ErrorType::kCorruptData;
  o.corrupt_offset = 7;
  o.corrupt_value = 0xff;
  o.num = 1;
  ee_->inject(o);
  Io r(IoType::kRead, 5, 1);
  EXPECT_EQ(run(r), IoStatus::kSuccess);
  EXPECT_EQ(r.buf[7], 0x5a ^ 0xff);
  EXPECT_EQ(r.buf[6], 0x5a);
  Io r2(IoType::kRead, 5, 1);
  run(r2);
  EXPECT_EQ(r2.buf[7], 0x5a);  // one read only

  o.io_type = IoType::kWrite;
  o.corrupt_offset = 0;
  o.corrupt_value = 0x01;
  ee_->inject(o);
  Io w2(IoType::kWrite, 6, 1, 0x40);
  run(w2);
  Io r3(IoType::kRead, 6, 1);
  run(r3);
  EXPECT_EQ(r3.buf[0], 0x41);
  EXPECT_EQ(r3.buf[1], 0x40);
}

TEST_F(ErrorBdevTest, QueueDepthGatesInjection) {
  error::InjectOpts o;
  o.io_type = IoType::kRead;
  o.type = error::ErrorType::kFailure;
  o.queue_depth = 1;  // only while at least one I/O is in the base
  ee_->inject(o);
  Io r(IoType::kRead, 0, 1);
  EXPECT_EQ(run(r), IoStatus::kSuccess);  // malloc off-reactor: nothing is ever in flight
}

TEST(ErrorBdevReactor, ClearReleasesHeldIosOnTheOwningReactor) {
  auto base = malloc_bdev("M1");
  std::string err;
  auto ee = error::create(base, "", &err);
  ASSERT_TRUE(ee);
  Reactor reactor(0, 0);
  reactor.start_thread();
  std::unique_ptr<Channel> ch;
  Io r(IoType::kRead, 0, 1);
  std::promise<void> done;
  r.done = &done;
  error::InjectOpts o;
  o.io_type = IoType::kRead;
  o.type = error::ErrorType::kPending;
  ee->inject(o);
  std::promise<void> opened;
  reactor.send([&] {
    ch = ee->open_channel();
    ch->submit(&r.io);
    opened.set_value();
  });
  opened.get_future().wait();
  EXPECT_EQ(ee->held(), 1u);
  error::InjectOpts c;
  c.clear = true;
  ee->inject(c);  // from this (the "RPC") thread
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(r.status, IoStatus::kError);
  std::promise<void> closed;
  reactor.send([&] {
    ch.reset();
    closed.set_value();
  });
  closed.get_future().wait();
  reactor.request_stop();
  reactor.join();
  ee->release_base();
}

TEST(DelayBdev, RejectsP99BelowAverageAndDerivesAStableUuid) {
  auto base = malloc_bdev("M2");
  delay::Latencies lat;
  lat.us[delay::kAvgRead] = 100;
  lat.us[delay::kP99Read] = 50;
  std::string err;
  EXPECT_FALSE(delay::create("D0", base, lat, "", &err));
  EXPECT_NE(err.find("p99 latency below the average"), std::string::npos) << err;
  EXPECT_EQ(base->claimed_by(), "");  // nothing half-created
  lat.us[delay::kP99Read] = 100;
  auto d = delay::create("D0", base, lat, "", &err);
  ASSERT_TRUE(d) << err;
  std::string uuid = d->uuid();
  d->release_base();
  d.reset();
  auto d2 = delay::create("D0", base, lat, "", &err);
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->uuid(), uuid);
  EXPECT_EQ(d2->config_entry()["params"]["avg_read_latency"], 100);
  d2->release_base();
}

TEST(DelayBdev, ReadsAndWritesCompleteAfterTheirLatencyOnAReactor) {
  auto base = malloc_bdev("M3");
  delay::Latencies lat;
  lat.us[delay::kAvgRead] = lat.us[delay::kP99Read] = 20000;
  lat.us[delay::kAvgWrite] = lat.us[delay::kP99Write] = 40000;
  std::string err;
  auto d = delay::create("D1", base, lat, "", &err);
  ASSERT_TRUE(d) << err;
  Reactor reactor(0, 0);
  reactor.start_thread();
  std::unique_ptr<Channel> ch;
  Io w(IoType::kWrite, 0, 1, 0x77), r(IoType::kRead, 0, 1);
  std::promise<void> wd, rd;
  w.done = &wd;
  r.done = &rd;
  uint64_t t0 = Reactor::now_us();
  reactor.send([&] {
    ch = d->open_channel();
    ch->submit(&w.io);
  });
  ASSERT_EQ(wd.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_GE(w.done_us - t0, 40000u);
  uint64_t t1 = Reactor::now_us();
  d->set_latency_us(delay::kAvgRead, 0);  // update_latency: applies to the next I/O
  d->set_latency_us(delay::kP99Read, 0);
  reactor.send([&] { ch->submit(&r.io); });
  ASSERT_EQ(rd.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_LT(r.done_us - t1, 15000u);
  EXPECT_EQ(r.buf[0], 0x77);
  std::promise<void> closed;
  reactor.send([&] {
    ch.reset();
    closed.set_value();
  });
  closed.get_future().wait();
  reactor.request_stop();
  reactor.join();
  d->release_base();
}

TEST(NameBasedUuid, MatchesRfc4122Version5) {
  // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
  EXPECT_EQ(name_based_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org"),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

TEST(NameBasedUuid, UringBdevIdentityFollowsNameAndPath) {
  char tmpl[] = "/tmp/nvemu-uuid-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 1 << 20), 0);
  close(fd);
  std::string err;
  auto a = create_uring_bdev("u0", tmpl, 0, &err);
  ASSERT_TRUE(a) << err;
  std::string first = a->uuid();
  a.reset();
  auto b = create_uring_bdev("u0", tmpl, 0, &err);
  EXPECT_EQ(b->uuid(), first);  // a restart replaying the same RPC
  auto c = create_uring_bdev("u1", tmpl, 0, &err);
  EXPECT_NE(c->uuid(), first);
  auto d = create_uring_bdev("u0", tmpl, 0, &err, "11111111-2222-3333-4444-555555555555");
  EXPECT_EQ(d->uuid(), "11111111-2222-3333-4444-555555555555");
  EXPECT_EQ(b->config_entry()["params"]["uuid"], first);
  unlink(tmpl);
}

}  // namespace
}  // namespace nvemu::bdev
