// NVM I/O through the loopback: data round trips, range/namespace/MDTS
// checks, Compare, fused Compare and Write, Write Zeroes, DSM, Flush.
#include "ctrlr_fixture.h"
#include "nvmf/poll_group.h"

namespace nvemu::nvmf::test {
namespace {

namespace nop = nvme::nvm_opc;

class IoTest : public CtrlrTest {
 protected:
  void SetUp() override {
    CtrlrTest::SetUp();
    bring_up();
    q = &add_io_queue(1);
  }
  std::unique_ptr<LoopbackRequest> io(const nvme::Sqe& c, size_t len = 0,
                                      const void* in = nullptr) {
    return run(*q, c, len, in);
  }
  std::unique_ptr<LoopbackRequest> write(uint64_t slba, uint32_t nlb, uint8_t fill) {
    std::vector<uint8_t> buf(nlb * kBlockSize, fill);
    return io(sqe(nop::kWrite, 1, static_cast<uint32_t>(slba), static_cast<uint32_t>(slba >> 32),
                  nlb - 1),
              buf.size(), buf.data());
  }
  std::unique_ptr<LoopbackRequest> read(uint64_t slba, uint32_t nlb) {
    return io(sqe(nop::kRead, 1, static_cast<uint32_t>(slba), 0, nlb - 1), nlb * kBlockSize);
  }
  LoopbackQpair* q = nullptr;
};

TEST_F(IoTest, WriteThenReadBack) {
  auto w = write(10, 4, 0xab);
  EXPECT_EQ(w->req.rsp.status, 0);
  EXPECT_EQ(w->req.rsp.sqid, 1);
  EXPECT_EQ(w->req.rsp.cid, 7);
  auto r = read(10, 4);
  ASSERT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(std::count(r->data.begin(), r->data.end(), 0xab), 4 * 512);
  r = read(9, 1);
  EXPECT_NE(r->data[0], 0xab);
  EXPECT_EQ(PollGroup::of(reactor).channel_count(), 1u);
}

TEST_F(IoTest, RangeNamespaceAndLengthChecks) {
  auto r = read(kBlocks - 1, 2);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kLbaOutOfRange));
  r = io(sqe(nop::kRead, 1, 0xffffffff, 0xffffffff, 0), 512);  // wraps
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kLbaOutOfRange));
  r = io(sqe(nop::kRead, 9, 0, 0, 0), 512);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidNamespaceOrFormat));
  r = io(sqe(nop::kRead, 0, 0, 0, 0), 512);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidNamespaceOrFormat));
  r = io(sqe(nop::kRead, 1, 0, 0, 7), 512);  // 8 blocks, 1 block of buffer
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kDataSglLengthInvalid));
  r = io(sqe(nop::kRead, 1, 0, 0, 256 + 255), 512 * 512);  // 256 KiB > max_io_size
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = io(sqe(0x7e, 1), 0);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidOpcode));
  // FUA is accepted.
  std::vector<uint8_t> buf(512, 1);
  r = io(sqe(nop::kWrite, 1, 0, 0, nvme::rw::kFua), 512, buf.data());
  EXPECT_EQ(r->req.rsp.status, 0);
  // The error log saw the LBA of the failed I/O.
  auto el = admin(sqe(nvme::admin_opc::kGetLogPage, 0xffffffff, 1 | (15u << 16)), 64);
  nvme::ErrorLogEntry e;
  std::memcpy(&e, el->data.data(), sizeof e);
  EXPECT_EQ(e.sqid, 1);
  EXPECT_EQ(e.status, generic(nvme::sc::kInvalidOpcode));
}

TEST_F(IoTest, LongerHostBufferIsTrimmed) {
  write(0, 1, 0x11);
  auto r = io(sqe(nop::kRead, 1, 0, 0, 0), 4096);
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(r->req.length, 512u);
}

TEST_F(IoTest, CompareMatchAndMismatch) {
  write(20, 2, 0x33);
  std::vector<uint8_t> same(1024, 0x33), diff(1024, 0x33);
  diff[700] = 0;
  auto r = io(sqe(nop::kCompare, 1, 20, 0, 1), same.size(), same.data());
  EXPECT_EQ(r->req.rsp.status, 0);
  r = io(sqe(nop::kCompare, 1, 20, 0, 1), diff.size(), diff.data());
  EXPECT_EQ(r->req.rsp.status, st(nvme::Sct::kMediaError, nvme::msc::kCompareFailure, false));
}

TEST_F(IoTest, FusedCompareAndWrite) {
  write(30, 1, 0x44);
  std::vector<uint8_t> expect(512, 0x44), next(512, 0x55);
  auto first = std::make_unique<LoopbackRequest>();
  auto c = sqe(nop::kCompare, 1, 30, 0, 0, 1);
  c.flags = nvme::kFuseFirst;
  first->prepare(*q, c, 512);
  std::memcpy(first->data.data(), expect.data(), 512);
  submit_request(&first->req);
  EXPECT_TRUE(q->completed.empty() || q->completed.back() != &first->req);
  auto w = sqe(nop::kWrite, 1, 30, 0, 0, 2);
  w.flags = nvme::kFuseSecond;
  auto second = run(*q, w, 512, next.data());
  EXPECT_EQ(first->req.rsp.status, 0);
  EXPECT_EQ(second->req.rsp.status, 0);
  EXPECT_EQ(read(30, 1)->data[0], 0x55);
  // Mismatch: compare fails, write aborted, data unchanged.
  first->prepare(*q, c, 512);
  std::memcpy(first->data.data(), expect.data(), 512);  // 0x44 != 0x55
  submit_request(&first->req);
  second = run(*q, w, 512, expect.data());
  EXPECT_EQ(first->req.rsp.status, st(nvme::Sct::kMediaError, nvme::msc::kCompareFailure, false));
  EXPECT_EQ(second->req.rsp.status, generic(nvme::sc::kAbortedFailedFused, false));
  EXPECT_EQ(read(30, 1)->data[0], 0x55);
}

TEST_F(IoTest, FusedMissingHalves) {
  auto w = sqe(nop::kWrite, 1, 0, 0, 0, 2);
  w.flags = nvme::kFuseSecond;
  std::vector<uint8_t> buf(512, 0);
  auto r = io(w, 512, buf.data());
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kAbortedMissingFused, false));
  // First half followed by a plain command: the first is aborted.
  auto first = std::make_unique<LoopbackRequest>();
  auto c = sqe(nop::kCompare, 1, 0, 0, 0, 1);
  c.flags = nvme::kFuseFirst;
  first->prepare(*q, c, 512);
  submit_request(&first->req);
  r = read(0, 1);
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(first->req.rsp.status, generic(nvme::sc::kAbortedMissingFused, false));
}

TEST_F(IoTest, WriteZeroesAndDeallocate) {
  write(40, 8, 0x77);
  auto r = io(sqe(nop::kWriteZeroes, 1, 40, 0, 3));
  EXPECT_EQ(r->req.rsp.status, 0);
  auto d = read(40, 8);
  EXPECT_EQ(std::count(d->data.begin(), d->data.begin() + 2048, 0), 2048);
  EXPECT_EQ(d->data[2048], 0x77);
  r = io(sqe(nop::kWriteZeroes, 1, kBlocks - 1, 0, 1));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kLbaOutOfRange));
  // DSM deallocate of two ranges; one out of range fails the command.
  nvme::DsmRange ranges[2] = {{0, 2, 44}, {0, 1, 47}};
  r = io(sqe(nop::kDatasetManagement, 1, 1, nvme::dsm::kAd), sizeof ranges, ranges);
  EXPECT_EQ(r->req.rsp.status, 0);
  ranges[1].slba = kBlocks;
  r = io(sqe(nop::kDatasetManagement, 1, 1, nvme::dsm::kAd), sizeof ranges, ranges);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kLbaOutOfRange));
  r = io(sqe(nop::kDatasetManagement, 1, 1, nvme::dsm::kAd), 16, ranges);  // 2 ranges, 1 sent
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kDataSglLengthInvalid));
}

TEST_F(IoTest, Flush) {
  EXPECT_EQ(io(sqe(nop::kFlush, 1))->req.rsp.status, 0);
  EXPECT_EQ(io(sqe(nop::kFlush, 0xffffffff))->req.rsp.status, 0);
  EXPECT_EQ(io(sqe(nop::kFlush, 3))->req.rsp.status, generic(nvme::sc::kInvalidNamespaceOrFormat));
}

TEST_F(IoTest, NamespaceRemovalDropsChannel) {
  read(0, 1);
  EXPECT_EQ(PollGroup::of(reactor).channel_count(), 1u);
  subsys->remove_namespace(1);
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_EQ(PollGroup::of(reactor).channel_count(), 0u);
  EXPECT_EQ(read(0, 1)->req.rsp.status, generic(nvme::sc::kInvalidNamespaceOrFormat));
}

TEST_F(IoTest, IoAfterResetIsSequenceError) {
  ASSERT_EQ(prop_set(nvme::reg::kCc, 0), 0);
  EXPECT_EQ(read(0, 1)->req.rsp.status, generic(nvme::sc::kCommandSequenceError));
}

}  // namespace
}  // namespace nvemu::nvmf::test
