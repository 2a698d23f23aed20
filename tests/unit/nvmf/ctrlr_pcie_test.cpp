// A PCIe controller: BAR0 register model and the queue admin commands
// forwarded to a fake QueueHost.
#include "ctrlr_fixture.h"

namespace nvemu::nvmf::test {
namespace {

struct FakeHost : QueueHost {
  bool enabled = false, disabled = false, shut = false;
  std::vector<std::string> calls;
  bool on_enable() override { return enabled = true; }
  void on_disable() override { disabled = true; }
  void on_shutdown() override { shut = true; }
  nvme::Status create_io_cq(uint16_t qid, uint32_t qsize, uint64_t, bool, bool, uint16_t) override {
    calls.push_back("cq" + std::to_string(qid) + "/" + std::to_string(qsize));
    return {};
  }
  nvme::Status create_io_sq(uint16_t qid, uint32_t qsize, uint64_t, bool, uint16_t cqid,
                            uint8_t) override {
    calls.push_back("sq" + std::to_string(qid) + "/" + std::to_string(qsize) + "->" +
                    std::to_string(cqid));
    return {};
  }
  nvme::Status delete_io_cq(uint16_t qid) override {
    calls.push_back("dcq" + std::to_string(qid));
    return {};
  }
  nvme::Status delete_io_sq(uint16_t qid) override {
    calls.push_back("dsq" + std::to_string(qid));
    return {};
  }
};

TEST_F(CtrlrTest, PcieRegistersAndQueueCommands) {
  FakeHost host;
  TransportOpts opts;
  opts.trtype = "VFIOUSER";
  auto c = Controller::create_pcie(subsys, &host, reactor, opts);
  ASSERT_TRUE(c);
  EXPECT_GE(c->cntlid(), 1);
  c->write_register(nvme::reg::kAqa, 0x001f001f, 4);
  c->write_register(nvme::reg::kAsq, 0x123456789000ull, 8);
  c->write_register(nvme::reg::kAcq, 0x1000, 4);
  c->write_register(nvme::reg::kAcq + 4, 0x2, 4);
  EXPECT_EQ(c->read_register(nvme::reg::kAqa, 4), 0x001f001fu);
  EXPECT_EQ(c->read_register(nvme::reg::kAsq, 8), 0x123456789000ull);
  EXPECT_EQ(c->read_register(nvme::reg::kAcq, 8), 0x200001000ull);
  c->write_register(nvme::reg::kCc, kCcEnable, 4);
  EXPECT_TRUE(host.enabled);
  EXPECT_EQ(c->read_register(nvme::reg::kCsts, 4), nvme::csts::kRdy);
  // Admin queues fixed while enabled.
  c->write_register(nvme::reg::kAqa, 0, 4);
  EXPECT_EQ(c->read_register(nvme::reg::kAqa, 4), 0x001f001fu);
  c->write_register(nvme::reg::kIntms, 0x3, 4);
  c->write_register(nvme::reg::kIntmc, 0x1, 4);
  EXPECT_EQ(c->read_register(nvme::reg::kIntms, 4), 0x2u);

  LoopbackQpair q0(reactor, 0);
  c->attach_qpair(&q0);
  auto r = run(q0, sqe(nvme::admin_opc::kCreateIoCq, 0, 1 | (63u << 16), 1));
  EXPECT_EQ(r->req.rsp.status, 0);
  r = run(q0, sqe(nvme::admin_opc::kCreateIoSq, 0, 1 | (63u << 16), 1 | (1u << 16)));
  EXPECT_EQ(r->req.rsp.status, 0);
  r = run(q0, sqe(nvme::admin_opc::kCreateIoSq, 0, 0 | (63u << 16), 1 | (1u << 16)));
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kInvalidQueueIdentifier));
  r = run(q0, sqe(nvme::admin_opc::kCreateIoCq, 0, 2 | (0u << 16), 1));
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kInvalidQueueSize));
  r = run(q0, sqe(nvme::admin_opc::kCreateIoCq, 0, 2 | (15u << 16), 0));  // PC=0 with CQR
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // CQID 0 names the admin CQ: Invalid Queue Identifier, as SPDK's
  // nvme_compliance (admin_create_io_sq_verify_qsize_cqid) expects.
  r = run(q0, sqe(nvme::admin_opc::kCreateIoSq, 0, 2 | (15u << 16), 1));  // CQID 0
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kInvalidQueueIdentifier));
  r = run(q0, sqe(nvme::admin_opc::kDeleteIoSq, 0, 1));
  r = run(q0, sqe(nvme::admin_opc::kDeleteIoCq, 0, 1));
  EXPECT_EQ(host.calls, (std::vector<std::string>{"cq1/64", "sq1/64->1", "dsq1", "dcq1"}));
  // Identify over PCIe: no fabrics fields, PRPs only.
  r = run(q0, sqe(nvme::admin_opc::kIdentify, 0, 1), 4096);
  nvme::IdentifyController id;
  std::memcpy(&id, r->data.data(), sizeof id);
  EXPECT_EQ(id.ioccsz, 0u);
  EXPECT_EQ(id.sgls, 0u);
  LoopbackQpair q1(reactor, 1);
  EXPECT_EQ(c->data_length(sqe(nvme::nvm_opc::kRead, 1, 0, 0, 7), q1), 8 * kBlockSize);
  EXPECT_EQ(c->data_length(sqe(nvme::nvm_opc::kRead, 9, 0, 0, 7), q1), 0u);  // no namespace 9
  EXPECT_EQ(c->data_length(sqe(nvme::admin_opc::kGetLogPage, 0, 2 | (127u << 16)), q0), 512u);
  // Shutdown, then reset.
  c->write_register(nvme::reg::kCc, kCcEnable | (1u << 14), 4);
  EXPECT_TRUE(host.shut);
  EXPECT_EQ(c->read_register(nvme::reg::kCsts, 4) & nvme::csts::kShstMask,
            nvme::csts::kShstComplete);
  c->write_register(nvme::reg::kCc, 0, 4);
  EXPECT_TRUE(host.disabled);
  EXPECT_EQ(c->read_register(nvme::reg::kCsts, 4), 0u);
  qpair_destroyed(&q0);
  EXPECT_TRUE(subsys->find_controller(c->cntlid()));  // PCIe controllers outlive queues
}

TEST_F(CtrlrTest, WriteZeroesEmulatedAndVwcReported) {
  ram->write_zeroes = false;
  ram->write_cache = true;
  bring_up();
  ioqs.push_back(std::make_unique<LoopbackQpair>(reactor, 1, 128));
  auto& q = *ioqs.back();
  ASSERT_EQ(connect(q, 127, 0, cntlid)->req.rsp.status, 0);
  std::fill(ram->mem().begin(), ram->mem().end(), 0x99);
  auto r = run(q, sqe(nvme::nvm_opc::kWriteZeroes, 1, 0, 0, 299));  // 300 blocks > one chunk
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(std::count(ram->mem().begin(), ram->mem().begin() + 300 * 512, 0), 300 * 512);
  EXPECT_EQ(ram->mem()[300 * 512], 0x99);
  auto id = admin(sqe(nvme::admin_opc::kIdentify, 0, 1), 4096);
  nvme::IdentifyController ic;
  std::memcpy(&ic, id->data.data(), sizeof ic);
  EXPECT_EQ(ic.vwc, 1);
  auto f = admin(sqe(nvme::admin_opc::kGetFeatures, 0, nvme::fid::kVolatileWriteCache));
  EXPECT_EQ(f->req.rsp.status, 0);
  EXPECT_EQ(f->req.rsp.cdw0, 1u);
  admin(sqe(nvme::admin_opc::kSetFeatures, 0, nvme::fid::kVolatileWriteCache, 0));
  f = admin(sqe(nvme::admin_opc::kGetFeatures, 0, nvme::fid::kVolatileWriteCache));
  EXPECT_EQ(f->req.rsp.cdw0, 0u);
}

}  // namespace
}  // namespace nvemu::nvmf::test
