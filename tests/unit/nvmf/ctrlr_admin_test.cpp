// Admin commands through the loopback: Identify, Get Log Page, features,
// AER, Abort, opcode table.
#include "ctrlr_fixture.h"

namespace nvemu::nvmf::test {
namespace {

namespace aop = nvme::admin_opc;

template <typename T>
T as_struct(const std::vector<uint8_t>& d) {
  T t;
  std::memcpy(&t, d.data(), sizeof t);
  return t;
}

class AdminTest : public CtrlrTest {
 protected:
  void SetUp() override {
    CtrlrTest::SetUp();
    bring_up();
  }
  std::unique_ptr<LoopbackRequest> get_log(uint8_t lid, uint32_t len, uint64_t off = 0,
                                           bool rae = false, uint32_t nsid = 0xffffffff) {
    uint32_t numd = len / 4 - 1;
    auto c = sqe(aop::kGetLogPage, nsid, lid | (rae ? 1u << 15 : 0) | (numd & 0xffff) << 16,
                 numd >> 16, static_cast<uint32_t>(off));
    c.cdw13 = static_cast<uint32_t>(off >> 32);
    return admin(c, len);
  }
};

TEST_F(AdminTest, IdentifyController) {
  auto r = admin(sqe(aop::kIdentify, 0, nvme::cns::kController), 4096);
  ASSERT_EQ(r->req.rsp.status, 0);
  auto id = as_struct<nvme::IdentifyController>(r->data);
  EXPECT_EQ(std::string(id.sn, 20), "SN123               ");
  EXPECT_EQ(std::string(id.mn, 10), "nvemu test");
  EXPECT_EQ(id.mn[39], ' ');
  EXPECT_EQ(id.cntlid, cntlid);
  EXPECT_EQ(id.ver, 0x10300u);
  EXPECT_EQ(id.mdts, 5);  // 128 KiB / 4 KiB = 32
  EXPECT_EQ(id.cntrltype, 1);
  EXPECT_EQ(id.sqes, 0x66);
  EXPECT_EQ(id.cqes, 0x44);
  EXPECT_EQ(id.nn, 32u);
  EXPECT_EQ(id.oncs, 0x1d);
  EXPECT_EQ(id.fuses, 1);
  EXPECT_EQ(id.vwc, 0);
  EXPECT_EQ(id.aerl, 3);
  EXPECT_EQ(id.lpa, 0x06);
  EXPECT_EQ(id.elpe, 63);
  EXPECT_EQ(id.kas, 10);
  EXPECT_EQ(id.oaes, 1u << 8);
  EXPECT_EQ(id.sgls & 0x3, 1u);
  EXPECT_EQ(id.ioccsz, (4096u + 64) / 16);
  EXPECT_EQ(id.iorcsz, 1u);
  EXPECT_EQ(id.msdbd, 1);
  EXPECT_EQ(id.cmic, 2);
  EXPECT_STREQ(id.subnqn, kSubNqn);
  EXPECT_EQ(r->req.rsp.cid, 7);
}

TEST_F(AdminTest, IdentifyNamespaceAndLists) {
  auto r = admin(sqe(aop::kIdentify, 1, nvme::cns::kNamespace), 4096);
  ASSERT_EQ(r->req.rsp.status, 0);
  auto ns = as_struct<nvme::IdentifyNamespace>(r->data);
  EXPECT_EQ(ns.nsze, kBlocks);
  EXPECT_EQ(ns.ncap, kBlocks);
  EXPECT_EQ(ns.nlbaf, 0);
  EXPECT_EQ(ns.flbas, 0);
  EXPECT_EQ(ns.lbaf[0].lbads, 9);
  EXPECT_EQ(ns.nmic, 1);
  EXPECT_EQ(ns.nguid[0], 0xa0);
  // Inactive but valid NSID: zeroes.
  r = admin(sqe(aop::kIdentify, 5, nvme::cns::kNamespace), 4096);
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(as_struct<nvme::IdentifyNamespace>(r->data).nsze, 0u);
  // NSID 0 and beyond NN.
  r = admin(sqe(aop::kIdentify, 0, nvme::cns::kNamespace), 4096);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidNamespaceOrFormat));
  r = admin(sqe(aop::kIdentify, 33, nvme::cns::kNamespace), 4096);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidNamespaceOrFormat));
  // Active list.
  r = admin(sqe(aop::kIdentify, 0, nvme::cns::kActiveNsList), 4096);
  uint32_t list[2];
  std::memcpy(list, r->data.data(), 8);
  EXPECT_EQ(list[0], 1u);
  EXPECT_EQ(list[1], 0u);
  r = admin(sqe(aop::kIdentify, 1, nvme::cns::kActiveNsList), 4096);
  std::memcpy(list, r->data.data(), 4);
  EXPECT_EQ(list[0], 0u);
  // Descriptors: NGUID, UUID (from the bdev), CSI.
  r = admin(sqe(aop::kIdentify, 1, nvme::cns::kNsIdDescriptors), 4096);
  ASSERT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(r->data[0], nvme::nidt::kNguid);
  EXPECT_EQ(r->data[1], 16);
  EXPECT_EQ(r->data[4], 0xa0);
  EXPECT_EQ(r->data[20], nvme::nidt::kUuid);
  EXPECT_EQ(r->data[40], nvme::nidt::kCsi);
  EXPECT_EQ(r->data[41], 1);
  r = admin(sqe(aop::kIdentify, 2, nvme::cns::kNsIdDescriptors), 4096);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidNamespaceOrFormat));
  // CSI-specific controller for NVM, and a wrong CSI.
  r = admin(sqe(aop::kIdentify, 0, nvme::cns::kIoCsController, 0), 4096);
  EXPECT_EQ(r->req.rsp.status, 0);
  r = admin(sqe(aop::kIdentify, 0, nvme::cns::kIoCsController, 2u << 24), 4096);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = admin(sqe(aop::kIdentify, 0, 0x42), 4096);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // Short buffer.
  r = admin(sqe(aop::kIdentify, 0, nvme::cns::kController), 1024);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kDataSglLengthInvalid));
}

TEST_F(AdminTest, UnsupportedAndPcieOnlyOpcodes) {
  for (uint8_t opc :
       {aop::kCreateIoSq, aop::kDeleteIoCq, aop::kNsManagement, aop::kFormatNvm, uint8_t{0xc0}}) {
    auto r = admin(sqe(opc));
    EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidOpcode)) << int(opc);
  }
  auto c = sqe(aop::kKeepAlive);
  c.flags = nvme::kFuseFirst;
  EXPECT_EQ(admin(c)->req.rsp.status, generic(nvme::sc::kInvalidField));
}

TEST_F(AdminTest, CommandsEffectsLog) {
  auto r = get_log(nvme::lid::kCommandsEffects, 4096);
  ASSERT_EQ(r->req.rsp.status, 0);
  auto l = as_struct<nvme::CommandsEffectsLog>(r->data);
  EXPECT_EQ(l.admin[aop::kIdentify], nvme::effects::kCsupp);
  EXPECT_EQ(l.admin[aop::kCreateIoSq], 0u);  // fabrics
  EXPECT_EQ(l.io[nvme::nvm_opc::kWrite], nvme::effects::kCsupp | nvme::effects::kLbcc);
  EXPECT_EQ(l.io[nvme::nvm_opc::kRead], nvme::effects::kCsupp);
  EXPECT_EQ(l.io[0x04], 0u);
}

TEST_F(AdminTest, ErrorLogRecordsFailures) {
  admin(sqe(aop::kIdentify, 0, 0x42, 0, 0, 0x55), 4096);
  auto r = get_log(nvme::lid::kErrorInfo, 128);
  ASSERT_EQ(r->req.rsp.status, 0);
  auto e = as_struct<nvme::ErrorLogEntry>(r->data);
  EXPECT_EQ(e.error_count, 1u);
  EXPECT_EQ(e.cid, 0x55);
  EXPECT_EQ(e.sqid, 0);
  EXPECT_EQ(e.status, generic(nvme::sc::kInvalidField));
  EXPECT_EQ(e.param_error_location, nvme::loc::kCdw10);
  EXPECT_EQ(r->data[64], 0);  // second entry empty
}

TEST_F(AdminTest, LogPageOffsetsAndErrors) {
  auto r = get_log(0x06, 512);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kInvalidLogPage));
  r = get_log(nvme::lid::kDiscovery, 1024);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kInvalidLogPage));
  r = get_log(nvme::lid::kSmartHealth, 512, 2);  // not dword aligned
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = get_log(nvme::lid::kSmartHealth, 4, 1024);  // beyond the page
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = get_log(nvme::lid::kSmartHealth, 512, 0, false, 1);  // no per-namespace SMART
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // A window: bytes 4..7 of the SMART log are spare threshold etc.
  r = get_log(nvme::lid::kSmartHealth, 4, 0);
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(r->data[3], 100);  // available spare
  r = get_log(nvme::lid::kFirmwareSlot, 512);
  EXPECT_EQ(r->data[0], 1);
  EXPECT_EQ(r->data[8], '0');
}

TEST_F(AdminTest, FeaturesGetSet) {
  auto r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kNumberOfQueues));
  EXPECT_EQ(r->req.rsp.cdw0, (126u << 16) | 126u);
  r = admin(sqe(aop::kSetFeatures, 0, nvme::fid::kNumberOfQueues, (3u << 16) | 3u));
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(r->req.rsp.cdw0, (126u << 16) | 126u);
  r = admin(sqe(aop::kSetFeatures, 0, nvme::fid::kNumberOfQueues, 0xffff));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // Temperature threshold round trip, and invalid THSEL.
  admin(sqe(aop::kSetFeatures, 0, nvme::fid::kTemperatureThreshold, 0x150));
  r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kTemperatureThreshold));
  EXPECT_EQ(r->req.rsp.cdw0, 0x150u);
  r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kTemperatureThreshold | (1u << 8)));  // default
  EXPECT_EQ(r->req.rsp.cdw0, 0x157u);
  r = admin(sqe(aop::kSetFeatures, 0, nvme::fid::kTemperatureThreshold, 3u << 20));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // Power state beyond NPSS.
  r = admin(sqe(aop::kSetFeatures, 0, nvme::fid::kPowerManagement, 1));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // No volatile write cache on a malloc bdev.
  r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kVolatileWriteCache));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // Saveable? No.
  r = admin(sqe(aop::kSetFeatures, 0, nvme::fid::kArbitration | (1u << 31), 0));
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFeatureIdNotSaveable));
  r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kArbitration | (3u << 8)));
  EXPECT_EQ(r->req.rsp.cdw0, 0x4u);
  // Keep alive timer: 0 invalid, else rounded up to KAS.
  r = admin(sqe(aop::kSetFeatures, 0, nvme::fid::kKeepAliveTimer, 0));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kKeepAliveInvalid));
  admin(sqe(aop::kSetFeatures, 0, nvme::fid::kKeepAliveTimer, 1500));
  r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kKeepAliveTimer));
  EXPECT_EQ(r->req.rsp.cdw0, 2000u);
  // Host identifier: 16 bytes from Connect; set over fabrics refused.
  r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kHostIdentifier, 1), 16);
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(0, std::memcmp(r->data.data(), hostid, 16));
  r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kHostIdentifier, 0), 16);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = admin(sqe(aop::kSetFeatures, 0, nvme::fid::kHostIdentifier, 1), 16);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kCommandSequenceError));
  r = admin(sqe(aop::kGetFeatures, 0, 0x7e));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // Async event config keeps only supported bits.
  admin(sqe(aop::kSetFeatures, 0, nvme::fid::kAsyncEventConfig, 0xffffffff));
  r = admin(sqe(aop::kGetFeatures, 0, nvme::fid::kAsyncEventConfig));
  EXPECT_EQ(r->req.rsp.cdw0, 0x1ffu);
}

TEST_F(AdminTest, NumberOfQueuesAfterIoQueueIsSequenceError) {
  add_io_queue(1);
  auto r = admin(sqe(aop::kSetFeatures, 0, nvme::fid::kNumberOfQueues, 0));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kCommandSequenceError));
}

TEST_F(AdminTest, AerNamespaceChangeAndLimit) {
  admin(sqe(aop::kSetFeatures, 0, nvme::fid::kAsyncEventConfig, nvme::aen::kCfgNsAttr));
  std::vector<std::unique_ptr<LoopbackRequest>> aers;
  for (int i = 0; i < 4; ++i) {
    aers.push_back(std::make_unique<LoopbackRequest>());
    aers.back()->prepare(*aq, sqe(aop::kAsyncEventRequest, 0, 0, 0, 0, 100 + i), 0);
    submit_request(&aers.back()->req);
  }
  EXPECT_TRUE(aq->completed.empty() || aq->completed.back() != &aers.back()->req);  // parked
  auto r = admin(sqe(aop::kAsyncEventRequest, 0, 0, 0, 0, 104));
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kAsyncEventRequestLimitExceeded));

  // Add namespace 2: Changed NS List + AEN.
  std::string err;
  auto b2 = std::make_shared<RamBdev>("Ram1", 4096, 64);
  Namespace ns2;
  ns2.nsid = 2;
  ns2.bdev = b2;
  ASSERT_EQ(subsys->add_namespace(ns2, &err), 2u) << err;
  ASSERT_TRUE(aq->poll_until(
      [&] { return std::count(aq->completed.begin(), aq->completed.end(), &aers[0]->req) == 1; }));
  EXPECT_EQ(aers[0]->req.rsp.status, 0);
  EXPECT_EQ(aers[0]->req.rsp.cdw0, nvme::aen::pack(2, 0, 4));
  EXPECT_EQ(aers[0]->req.rsp.cid, 100);
  // A second change is masked until the log is read.
  subsys->remove_namespace(2);
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_EQ(std::count(aq->completed.begin(), aq->completed.end(), &aers[1]->req), 0);
  auto l = get_log(nvme::lid::kChangedNsList, 4096);
  uint32_t ids[2];
  std::memcpy(ids, l->data.data(), 8);
  EXPECT_EQ(ids[0], 2u);
  EXPECT_EQ(ids[1], 0u);
  l = get_log(nvme::lid::kChangedNsList, 4096);  // cleared by the read
  std::memcpy(ids, l->data.data(), 4);
  EXPECT_EQ(ids[0], 0u);
  // Identify sees namespace 2 gone.
  auto id = admin(sqe(aop::kIdentify, 2, nvme::cns::kNsIdDescriptors), 4096);
  EXPECT_EQ(id->req.rsp.status, generic(nvme::sc::kInvalidNamespaceOrFormat));
  // Abort a parked AER: aborted (cdw0 bit 0 = 0); unknown cid: not aborted.
  auto a = admin(sqe(aop::kAbort, 0, 0 | (101u << 16)));
  EXPECT_EQ(a->req.rsp.status, 0);
  EXPECT_EQ(a->req.rsp.cdw0, 0u);
  EXPECT_EQ(aers[1]->req.rsp.status, generic(nvme::sc::kAbortedByRequest, false));
  a = admin(sqe(aop::kAbort, 0, 1 | (999u << 16)));
  EXPECT_EQ(a->req.rsp.cdw0, 1u);
  // Destroying the admin queue completes the rest as aborted.
  aq->destroy();
  EXPECT_EQ(aers[3]->req.rsp.status, generic(nvme::sc::kAbortedSqDeletion, false));
}

TEST_F(AdminTest, SmartCountsIo) {
  auto& q = add_io_queue(1);
  std::vector<uint8_t> buf(8 * kBlockSize, 0x5a);
  for (int i = 0; i < 3; ++i)
    run(q, sqe(nvme::nvm_opc::kWrite, 1, 0, 0, 7), buf.size(), buf.data());
  run(q, sqe(nvme::nvm_opc::kRead, 1, 0, 0, 7), buf.size());
  auto r = get_log(nvme::lid::kSmartHealth, 512);
  auto s = as_struct<nvme::SmartLog>(r->data);
  EXPECT_EQ(s.host_write_commands[0], 3u);
  EXPECT_EQ(s.host_read_commands[0], 1u);
  EXPECT_EQ(s.data_units_written[0], 1u);  // 24 units of 512 B, rounded up to 1 thousand
  EXPECT_EQ(s.data_units_read[0], 1u);
  EXPECT_EQ(s.temperature[0] | s.temperature[1] << 8, 308);
  EXPECT_EQ(s.power_cycles[0], 1u);
  // The counts are per queue; a queue that goes leaves them with the
  // controller, and a new queue adds to them.
  q.destroy();
  auto& q2 = add_io_queue(2);
  run(q2, sqe(nvme::nvm_opc::kRead, 1, 0, 0, 7), buf.size());
  s = as_struct<nvme::SmartLog>(get_log(nvme::lid::kSmartHealth, 512)->data);
  EXPECT_EQ(s.host_write_commands[0], 3u);
  EXPECT_EQ(s.host_read_commands[0], 2u);
}

}  // namespace
}  // namespace nvemu::nvmf::test
