// Fused Compare and Write against writes from another qpair on another
// reactor (NVMe Base 2.0, 3.4.2): the pair is atomic against them. Two
// reactors polled in turn on the test thread; the RAM bdev holds I/O in
// flight on demand, so each interleaving is forced, not hoped for.
#include <algorithm>

#include "ctrlr_fixture.h"
#include "nvmf/fabrics.h"
#include "nvmf/poll_group.h"

namespace nvemu::nvmf::test {
namespace {

namespace nop = nvme::nvm_opc;

class FusedTest : public CtrlrTest {
 protected:
  void SetUp() override {
    CtrlrTest::SetUp();
    bring_up();
    qa = &add_io_queue(1);  // on `reactor`
    ioqs.push_back(std::make_unique<LoopbackQpair>(reactor_b, 2, 128));
    qb = ioqs.back().get();
    auto r = connect(*qb, 127, 0, cntlid);
    ASSERT_EQ(r->req.rsp.status, 0);
  }
  void TearDown() override {
    ram->hold_reads = ram->hold_writes = false;
    release();
    CtrlrTest::TearDown();
    for (int i = 0; i < 10; ++i) reactor_b.poll_once();
  }

  void poll_both(int rounds = 20) {
    for (int i = 0; i < rounds; ++i) {
      reactor.poll_once();
      reactor_b.poll_once();
    }
  }
  // Submits on the qpair's own reactor and lets both reactors run.
  std::unique_ptr<LoopbackRequest> submit(LoopbackQpair& qp, nvme::Sqe cmd, size_t len,
                                          uint8_t fill) {
    auto r = std::make_unique<LoopbackRequest>();
    r->prepare(qp, cmd, len);
    std::fill(r->data.begin(), r->data.end(), fill);
    Request* req = &r->req;
    qp.reactor().send([req] { submit_request(req); });
    poll_both();
    return r;
  }
  static bool done(LoopbackQpair& qp, const LoopbackRequest& r) {
    return std::find(qp.completed.begin(), qp.completed.end(), &r.req) != qp.completed.end();
  }
  // Runs the I/O the bdev holds on the reactor it came from.
  void release() {
    reactor.send([this] { ram->release_held(); });
    reactor_b.send([this] { ram->release_held(); });
    poll_both();
  }
  nvme::Sqe rw(uint8_t opc, uint64_t slba, uint32_t nlb, uint8_t fuse = 0, uint16_t cid = 9) {
    nvme::Sqe c = sqe(opc, 1, static_cast<uint32_t>(slba), 0, nlb - 1, cid);
    c.flags = fuse;
    return c;
  }
  uint8_t block(uint64_t lba) { return ram->mem()[lba * kBlockSize]; }
  void fill(uint64_t lba, uint32_t nlb, uint8_t v) {
    std::fill_n(ram->mem().begin() + lba * kBlockSize, nlb * kBlockSize, v);
  }

  Reactor reactor_b{1, 1};
  LoopbackQpair* qa = nullptr;
  LoopbackQpair* qb = nullptr;
};

// A write from B is in flight when A's Compare and Write arrives: the
// compare must see that write's data, never the blocks before it.
TEST_F(FusedTest, WaitsForWritesInFlightOnOtherReactors) {
  fill(100, 4, 0x11);
  ram->hold_writes = true;
  auto wb = submit(*qb, rw(nop::kWrite, 100, 4), 4 * kBlockSize, 0x22);
  ASSERT_EQ(ram->held_count(), 1u);
  ram->hold_writes = false;

  auto cmp = submit(*qa, rw(nop::kCompare, 101, 2, nvme::kFuseFirst, 1), 2 * kBlockSize, 0x22);
  auto wr = submit(*qa, rw(nop::kWrite, 101, 2, nvme::kFuseSecond, 2), 2 * kBlockSize, 0x33);
  // The compare's read has not run: the lock waits for B's write.
  EXPECT_FALSE(done(*qa, *cmp));
  EXPECT_EQ(block(101), 0x11);

  release();  // B's write lands; B acknowledges; the pair runs
  ASSERT_TRUE(done(*qb, *wb));
  ASSERT_TRUE(done(*qa, *cmp) && done(*qa, *wr));
  EXPECT_EQ(cmp->req.rsp.status, 0);
  EXPECT_EQ(wr->req.rsp.status, 0);
  EXPECT_EQ(block(100), 0x22);
  EXPECT_EQ(block(101), 0x33);
  EXPECT_EQ(block(102), 0x33);
  EXPECT_EQ(block(103), 0x22);
}

// While the pair holds the range, B's overlapping write waits and lands
// after the pair's write; B's write elsewhere goes straight through.
TEST_F(FusedTest, HoldsBackOverlappingWritesUntilThePairCompletes) {
  fill(200, 4, 0x44);
  ram->hold_reads = true;  // stop the pair between lock and compare
  auto cmp = submit(*qa, rw(nop::kCompare, 200, 4, nvme::kFuseFirst, 1), 4 * kBlockSize, 0x44);
  auto wr = submit(*qa, rw(nop::kWrite, 200, 4, nvme::kFuseSecond, 2), 4 * kBlockSize, 0x55);
  ASSERT_EQ(ram->held_count(), 1u);  // the compare's read: the lock is granted

  auto overlap = submit(*qb, rw(nop::kWrite, 203, 2), 2 * kBlockSize, 0x66);
  auto elsewhere = submit(*qb, rw(nop::kWrite, 300, 1), kBlockSize, 0x77);
  EXPECT_TRUE(done(*qb, *elsewhere));
  EXPECT_EQ(elsewhere->req.rsp.status, 0);
  EXPECT_EQ(block(300), 0x77);
  EXPECT_FALSE(done(*qb, *overlap));
  EXPECT_EQ(block(203), 0x44);
  EXPECT_EQ(PollGroup::of(reactor_b).find(subsys->find_namespace(1).get())->held.size(), 1u);

  ram->hold_reads = false;
  release();
  ASSERT_TRUE(done(*qa, *cmp) && done(*qa, *wr) && done(*qb, *overlap));
  EXPECT_EQ(cmp->req.rsp.status, 0);
  EXPECT_EQ(overlap->req.rsp.status, 0);
  EXPECT_EQ(block(202), 0x55);  // the pair's write only
  EXPECT_EQ(block(203), 0x66);  // B's write came after the pair's
  EXPECT_EQ(block(204), 0x66);
}

// Two overlapping pairs on different reactors run one after the other: the
// second compares against the first one's write.
TEST_F(FusedTest, OverlappingPairsSerialise) {
  fill(400, 2, 0x01);
  ram->hold_reads = true;
  auto c1 = submit(*qa, rw(nop::kCompare, 400, 2, nvme::kFuseFirst, 1), 2 * kBlockSize, 0x01);
  auto w1 = submit(*qa, rw(nop::kWrite, 400, 2, nvme::kFuseSecond, 2), 2 * kBlockSize, 0x02);
  auto c2 = submit(*qb, rw(nop::kCompare, 401, 1, nvme::kFuseFirst, 3), kBlockSize, 0x02);
  auto w2 = submit(*qb, rw(nop::kWrite, 401, 1, nvme::kFuseSecond, 4), kBlockSize, 0x03);
  EXPECT_EQ(ram->held_count(), 1u);  // only the first pair's read has started
  ram->hold_reads = false;
  release();
  poll_both();
  ASSERT_TRUE(done(*qa, *c1) && done(*qa, *w1) && done(*qb, *c2) && done(*qb, *w2));
  EXPECT_EQ(c1->req.rsp.status, 0);
  EXPECT_EQ(c2->req.rsp.status, 0);  // saw 0x02, the first pair's data
  EXPECT_EQ(block(400), 0x02);
  EXPECT_EQ(block(401), 0x03);
}

// A miscompare releases the range too: B's held write then lands, and the
// Write half reports Aborted due to Failed Fused Command.
TEST_F(FusedTest, MiscompareReleasesTheRange) {
  fill(500, 1, 0x0a);
  ram->hold_reads = true;
  auto cmp = submit(*qa, rw(nop::kCompare, 500, 1, nvme::kFuseFirst, 1), kBlockSize, 0x0b);
  auto wr = submit(*qa, rw(nop::kWrite, 500, 1, nvme::kFuseSecond, 2), kBlockSize, 0x0c);
  auto wb = submit(*qb, rw(nop::kWrite, 500, 1), kBlockSize, 0x0d);
  EXPECT_FALSE(done(*qb, *wb));
  ram->hold_reads = false;
  release();
  ASSERT_TRUE(done(*qa, *cmp) && done(*qa, *wr) && done(*qb, *wb));
  EXPECT_EQ(cmp->req.rsp.status, st(nvme::Sct::kMediaError, nvme::msc::kCompareFailure, false));
  EXPECT_EQ(wr->req.rsp.status, generic(nvme::sc::kAbortedFailedFused, false));
  EXPECT_EQ(wb->req.rsp.status, 0);
  EXPECT_EQ(block(500), 0x0d);
}

}  // namespace
}  // namespace nvemu::nvmf::test
