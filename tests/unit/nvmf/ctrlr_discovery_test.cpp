// The discovery controller: Identify, log 70h with offsets, allowed commands.
#include "ctrlr_fixture.h"

namespace nvemu::nvmf::test {
namespace {

class DiscoveryTest : public CtrlrTest {
 protected:
  void SetUp() override {
    CtrlrTest::SetUp();
    disc = Target::instance().add_subsystem(kDiscoveryNqn, Subsystem::Type::kDiscovery);
    if (!disc) disc = Target::instance().find_subsystem(kDiscoveryNqn);
    disc->allow_any_host = true;
    subsys->add_listener({"TCP", "IPv4", "127.0.0.1", "4420"});
    subsys->add_listener({"VFIOUSER", "", "/tmp/x", ""});
    auto other =
        Target::instance().add_subsystem("nqn.2016-06.io.nvemu:private", Subsystem::Type::kNvme);
    other->add_listener({"TCP", "IPv4", "127.0.0.1", "4421"});  // host not allowed
    auto r = connect(*aq, 31, 0, 0xffff, kDiscoveryNqn);
    ASSERT_EQ(r->req.rsp.status, 0);
    ASSERT_EQ(prop_set(nvme::reg::kCc, kCcEnable), 0);
  }
  std::shared_ptr<Subsystem> disc;
};

TEST_F(DiscoveryTest, IdentifyAndKato) {
  auto r = admin(sqe(nvme::admin_opc::kIdentify, 0, nvme::cns::kController), 4096);
  ASSERT_EQ(r->req.rsp.status, 0);
  nvme::IdentifyController id;
  std::memcpy(&id, r->data.data(), sizeof id);
  EXPECT_EQ(id.cntrltype, 2);
  EXPECT_EQ(id.oaes, 1u << 31);
  EXPECT_EQ(id.nn, 0u);
  EXPECT_STREQ(id.subnqn, kDiscoveryNqn);
  EXPECT_EQ(ctrlr()->kato_ms(), 120000u);  // default for discovery
  r = admin(sqe(nvme::admin_opc::kIdentify, 1, nvme::cns::kNamespace), 4096);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = admin(sqe(nvme::admin_opc::kAbort));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidOpcode));
  r = admin(sqe(nvme::admin_opc::kGetFeatures, 0, nvme::fid::kNumberOfQueues));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  // No I/O queues on discovery.
  LoopbackQpair q1(reactor, 1);
  r = connect(q1, 31, 0, cntlid, kDiscoveryNqn);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricInvalidParam));
}

TEST_F(DiscoveryTest, LogPageEntriesAndOffsets) {
  auto r = admin(sqe(nvme::admin_opc::kGetLogPage, 0, 0x70 | (255u << 16)), 1024);
  ASSERT_EQ(r->req.rsp.status, 0);
  nvme::DiscoveryLogHeader h;
  std::memcpy(&h, r->data.data(), sizeof h);
  EXPECT_EQ(h.numrec, 1u);  // only the TCP listener of the allowed subsystem
  EXPECT_EQ(h.genctr, Target::instance().discovery_genctr());
  r = admin(sqe(nvme::admin_opc::kGetLogPage, 0, 0x70 | (255u << 16), 0, 1024), 1024);
  ASSERT_EQ(r->req.rsp.status, 0);
  nvme::DiscoveryLogEntry e;
  std::memcpy(&e, r->data.data(), sizeof e);
  EXPECT_EQ(e.trtype, 3);
  EXPECT_EQ(e.adrfam, 1);
  EXPECT_EQ(e.subtype, 2);
  EXPECT_EQ(e.cntlid, 0xffff);
  EXPECT_EQ(e.asqsz, 128);
  EXPECT_EQ(std::string(e.trsvcid, 5), "4420 ");
  EXPECT_EQ(std::string(e.traddr, 10), "127.0.0.1 ");
  EXPECT_STREQ(e.subnqn, kSubNqn);
  // Past the end of the page.
  r = admin(sqe(nvme::admin_opc::kGetLogPage, 0, 0x70 | (255u << 16), 0, 4096), 1024);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = admin(sqe(nvme::admin_opc::kGetLogPage, 0, 0x02 | (127u << 16)), 512);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kInvalidLogPage));
}

TEST_F(DiscoveryTest, DiscoveryChangeAen) {
  admin(sqe(nvme::admin_opc::kSetFeatures, 0, nvme::fid::kAsyncEventConfig, 1u << 31));
  LoopbackRequest aer;
  aer.prepare(*aq, sqe(nvme::admin_opc::kAsyncEventRequest, 0, 0, 0, 0, 9), 0);
  submit_request(&aer.req);
  ctrlr()->on_discovery_changed();
  ASSERT_TRUE(aq->poll_until(
      [&] { return std::count(aq->completed.begin(), aq->completed.end(), &aer.req) == 1; }));
  EXPECT_EQ(aer.req.rsp.cdw0, nvme::aen::pack(2, 0xf0, 0x70));
}

}  // namespace
}  // namespace nvemu::nvmf::test
