// The per-queue counters the metrics read (Qpair::IoState): commands in
// flight go up on entry and down on completion, whichever path completes
// them; non-zero statuses count as errors; successful reads and writes count
// commands and 512-byte units. Driven through the loopback transport.
#include "ctrlr_fixture.h"

namespace nvemu::nvmf::test {
namespace {

namespace nop = nvme::nvm_opc;
namespace aop = nvme::admin_opc;

uint64_t get(const std::atomic<uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}

class QpairCountersTest : public CtrlrTest {
 protected:
  void SetUp() override {
    CtrlrTest::SetUp();
    bring_up();
    q = &add_io_queue(1);
  }
  LoopbackQpair* q = nullptr;
};

TEST_F(QpairCountersTest, ReadsWritesBytesAndErrorsPerQueue) {
  std::vector<uint8_t> buf(8 * kBlockSize, 0x5a);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(run(*q, sqe(nop::kWrite, 1, 8 * i, 0, 7), buf.size(), buf.data())->req.rsp.status, 0);
  EXPECT_EQ(run(*q, sqe(nop::kRead, 1, 0, 0, 3), 4 * kBlockSize)->req.rsp.status, 0);
  // Failures: an unknown namespace, an LBA range past the end, an opcode.
  EXPECT_NE(run(*q, sqe(nop::kRead, 9, 0, 0, 0), kBlockSize)->req.rsp.status, 0);
  EXPECT_NE(run(*q, sqe(nop::kWrite, 1, kBlocks, 0, 0), kBlockSize, buf.data())->req.rsp.status, 0);
  EXPECT_NE(run(*q, sqe(0x7e, 1))->req.rsp.status, 0);

  const Qpair::IoState& io = q->io;
  EXPECT_EQ(get(io.write_cmds), 3u);
  EXPECT_EQ(get(io.units_written) * 512, 3u * 8 * kBlockSize);
  EXPECT_EQ(get(io.read_cmds), 1u);
  EXPECT_EQ(get(io.units_read) * 512, 4u * kBlockSize);
  EXPECT_EQ(get(io.errors), 3u);
  EXPECT_EQ(get(io.inflight), 0u);
  // The admin queue's own: Connect, Property Set/Get all succeeded.
  EXPECT_EQ(get(aq->io.errors), 0u);
  EXPECT_EQ(get(aq->io.inflight), 0u);
  EXPECT_EQ(get(aq->io.read_cmds), 0u);
}

TEST_F(QpairCountersTest, ParkedAersAreInFlightUntilAborted) {
  std::vector<std::unique_ptr<LoopbackRequest>> aers;
  for (uint16_t i = 0; i < 2; ++i) {
    aers.push_back(std::make_unique<LoopbackRequest>());
    aers.back()->prepare(*aq, sqe(aop::kAsyncEventRequest, 0, 0, 0, 0, 100 + i), 0);
    submit_request(&aers.back()->req);
  }
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_EQ(get(aq->io.inflight), 2u);
  EXPECT_EQ(get(q->io.inflight), 0u);
  // Abort names the second AER: it completes (SC 07h, an error), the other stays.
  auto ab = admin(sqe(aop::kAbort, 0, 0u | (101u << 16)));
  EXPECT_EQ(ab->req.rsp.status, 0);
  EXPECT_EQ(ab->req.rsp.cdw0 & 1, 0u);
  EXPECT_EQ(get(aq->io.inflight), 1u);
  EXPECT_EQ(get(aq->io.errors), 1u);
  // The queue's teardown completes the last one: nothing stays in flight.
  aq->destroy();
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_EQ(get(aq->io.inflight), 0u);
}

TEST_F(QpairCountersTest, EnumeratedAdminFirstThenByQid) {
  add_io_queue(3);
  add_io_queue(2);
  std::vector<uint16_t> qids;
  std::vector<uint32_t> sizes;
  ctrlr()->for_each_qpair([&](const Qpair& qp) {
    qids.push_back(qp.qid());
    sizes.push_back(qp.sq_size());
  });
  EXPECT_EQ(qids, (std::vector<uint16_t>{0, 1, 2, 3}));
  EXPECT_EQ(sizes, (std::vector<uint32_t>{32, 128, 128, 128}));
  EXPECT_EQ(ctrlr()->qpairs_json().size(), 4u);
}

}  // namespace
}  // namespace nvemu::nvmf::test
