// Fabrics Connect, Property Get/Set and the CC/CSTS state machine.
#include "ctrlr_fixture.h"

namespace nvemu::nvmf::test {
namespace {

TEST_F(CtrlrTest, AdminConnectReturnsCntlidAndCqeFields) {
  auto r = connect(*aq);
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(r->req.rsp.cid, 3);
  EXPECT_EQ(r->req.rsp.sqid, 0);
  uint16_t id = r->req.rsp.cdw0 & 0xffff;
  EXPECT_GE(id, 1);
  ASSERT_TRUE(aq->controller());
  EXPECT_EQ(aq->controller()->cntlid(), id);
  EXPECT_EQ(subsys->find_controller(id), aq->controller());
  auto info = aq->controller()->info_json();
  EXPECT_EQ(info["hostnqn"], kHostNqn);
  EXPECT_EQ(info["hostid"], "01020304-0506-0708-090a-0b0c0d0e0f10");
  EXPECT_EQ(info["num_io_qpairs"], 0);
}

TEST_F(CtrlrTest, CommandBeforeConnectIsSequenceError) {
  auto r = admin(sqe(nvme::admin_opc::kIdentify, 0, 1), 4096);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kCommandSequenceError));
  r = admin(make_property_get(0, true));
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kCommandSequenceError));
}

TEST_F(CtrlrTest, SecondConnectOnSameQpairIsSequenceError) {
  connect(*aq);
  auto r = connect(*aq);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kCommandSequenceError));
}

TEST_F(CtrlrTest, ConnectUnknownSubsystemPointsAtSubnqn) {
  auto r = connect(*aq, 31, 0, 0xffff, "nqn.2016-06.io.nvemu:nope");
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricInvalidParam));
  EXPECT_EQ(r->req.rsp.cdw0, (1u << 16) | 256u);  // IATTR=1 (data), IPO=256
  EXPECT_FALSE(aq->controller());
}

TEST_F(CtrlrTest, ConnectHostNotAllowedIsInvalidHost) {
  subsys->allow_any_host = false;
  auto r = connect(*aq);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricInvalidHost));
  EXPECT_EQ(r->req.rsp.cdw0, (1u << 16) | 512u);
  subsys->add_host(kHostNqn);
  r = connect(*aq);
  EXPECT_EQ(r->req.rsp.status, 0);
}

TEST_F(CtrlrTest, ConnectSqsizeChecks) {
  auto r = connect(*aq, 0);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricInvalidParam));
  EXPECT_EQ(r->req.rsp.cdw0, 44u);  // IATTR=0, IPO=SQSIZE
  r = connect(*aq, 128);            // 129 entries > max_aq_depth 128
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricInvalidParam));
  EXPECT_EQ(r->req.rsp.cdw0, 44u);
}

TEST_F(CtrlrTest, ConnectBadRecfmtAndShortData) {
  auto cmd = make_connect(0, 31, 0);
  cmd.cdw10 = 1;  // RECFMT
  auto data = make_connect_data(kSubNqn, kHostNqn);
  auto r = run(*aq, cmd, data.size(), data.data());
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricIncompatibleFormat));
  r = run(*aq, make_connect(0, 31, 0), 512, data.data());
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
}

TEST_F(CtrlrTest, AdminConnectStaticCntlidRejected) {
  auto r = connect(*aq, 31, 0, 5);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricInvalidParam));
  EXPECT_EQ(r->req.rsp.cdw0, (1u << 16) | 16u);
}

TEST_F(CtrlrTest, PropertiesAndEnableShutdown) {
  connect(*aq);
  nvme::Cap cap{prop_get(nvme::reg::kCap, true)};
  EXPECT_EQ(cap.mqes(), 127);
  EXPECT_TRUE(cap.cqr());
  EXPECT_EQ(cap.css() & 1, 1);
  EXPECT_EQ(cap.mpsmin(), 0);
  EXPECT_EQ(prop_get(nvme::reg::kCap + 4, false), cap.raw >> 32);
  EXPECT_EQ(prop_get(nvme::reg::kVs, false), 0x10300u);
  EXPECT_EQ(prop_get(nvme::reg::kCsts, false), 0u);
  // Admin commands wait for CC.EN.
  auto r = admin(sqe(nvme::admin_opc::kIdentify, 0, 1), 4096);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kCommandSequenceError));
  EXPECT_EQ(prop_set(nvme::reg::kCc, kCcEnable), 0);
  EXPECT_EQ(prop_get(nvme::reg::kCc, false), kCcEnable);
  EXPECT_EQ(prop_get(nvme::reg::kCsts, false), nvme::csts::kRdy);
  // Normal shutdown.
  EXPECT_EQ(prop_set(nvme::reg::kCc, kCcEnable | (1u << 14)), 0);
  EXPECT_EQ(prop_get(nvme::reg::kCsts, false) & nvme::csts::kShstMask, nvme::csts::kShstComplete);
  // Reset: EN 1 -> 0 clears RDY and SHST.
  EXPECT_EQ(prop_set(nvme::reg::kCc, 0), 0);
  EXPECT_EQ(prop_get(nvme::reg::kCsts, false), 0u);
}

TEST_F(CtrlrTest, EnableWithBadMpsSetsCfs) {
  connect(*aq);
  EXPECT_EQ(prop_set(nvme::reg::kCc, kCcEnable | (1u << 7)), 0);  // MPS = 8 KiB > MPSMAX
  EXPECT_EQ(prop_get(nvme::reg::kCsts, false) & nvme::csts::kCfs, nvme::csts::kCfs);
}

TEST_F(CtrlrTest, PropertyInvalidAccesses) {
  connect(*aq);
  auto r = admin(make_property_set(nvme::reg::kCsts, 1, false));  // read-only
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = admin(make_property_get(0x500, false));  // undefined
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  r = admin(make_property_set(nvme::reg::kCc, 1, true));  // wrong size
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
  auto cmd = make_property_get(0, false);
  cmd.cdw10 = 3;  // ATTRIB size 3 undefined
  r = admin(cmd);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidField));
}

TEST_F(CtrlrTest, IoConnectRules) {
  auto r = connect(*aq);
  cntlid = r->req.rsp.cdw0 & 0xffff;
  // Before CC.EN=1 the I/O queue is refused, pointing at QID.
  LoopbackQpair q1(reactor, 1);
  r = connect(q1, 127, 0, cntlid);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricInvalidParam));
  EXPECT_EQ(r->req.rsp.cdw0, 42u);
  ASSERT_EQ(prop_set(nvme::reg::kCc, kCcEnable), 0);
  // Unknown controller ID.
  r = connect(q1, 127, 0, cntlid + 100);
  EXPECT_EQ(r->req.rsp.cdw0, (1u << 16) | 16u);
  // Different host.
  r = connect(q1, 127, 0, cntlid, kSubNqn, "nqn.2014-08.org.example:other");
  EXPECT_EQ(r->req.rsp.cdw0, (1u << 16) | 512u);
  // SQSIZE above max_queue_depth.
  r = connect(q1, 128, 0, cntlid);
  EXPECT_EQ(r->req.rsp.cdw0, 44u);
  r = connect(q1, 127, 0, cntlid);
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_EQ(r->req.rsp.cdw0 & 0xffff, cntlid);
  EXPECT_EQ(ctrlr()->num_io_qpairs(), 1u);
  // Duplicate QID.
  LoopbackQpair q1b(reactor, 1);
  r = connect(q1b, 127, 0, cntlid);
  EXPECT_EQ(r->req.rsp.status, cmd_specific(nvme::csc::kFabricInvalidParam));
  EXPECT_EQ(r->req.rsp.cdw0, 42u);
  // QID above max_io_qpairs_per_ctrlr.
  LoopbackQpair q200(reactor, 200);
  r = connect(q200, 127, 0, cntlid);
  EXPECT_EQ(r->req.rsp.cdw0, 42u);
  auto qj = ctrlr()->qpairs_json();
  ASSERT_EQ(qj.size(), 2u);
  EXPECT_EQ(qj[1]["qid"], 1);
  EXPECT_EQ(qj[1]["listen_address"]["trtype"], "LOOPBACK");
  q1.destroy();
  EXPECT_EQ(ctrlr()->num_io_qpairs(), 0u);
}

TEST_F(CtrlrTest, AdminQpairGoneDestroysControllerAfterIoQueues) {
  bring_up();
  auto& q = add_io_queue(1);
  std::weak_ptr<Controller> weak = ctrlr();
  aq->destroy();
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_TRUE(q.disconnect_requested);
  EXPECT_TRUE(subsys->find_controller(cntlid));  // I/O queue still there
  q.destroy();
  EXPECT_FALSE(subsys->find_controller(cntlid));
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_TRUE(weak.expired());
}

TEST_F(CtrlrTest, ResetDisconnectsIoQueues) {
  bring_up();
  auto& q = add_io_queue(1);
  EXPECT_EQ(prop_set(nvme::reg::kCc, 0), 0);
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_TRUE(q.disconnect_requested);
  EXPECT_FALSE(aq->disconnect_requested);
}

TEST_F(CtrlrTest, SubsystemRemovalDisconnectsAll) {
  bring_up();
  auto& q = add_io_queue(1);
  ctrlr()->on_subsystem_removed();
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_TRUE(q.disconnect_requested);
  EXPECT_TRUE(aq->disconnect_requested);
}

TEST_F(CtrlrTest, KeepAliveExpiryFailsController) {
  bring_up(100);
  EXPECT_EQ(ctrlr()->kato_ms(), 100u);
  auto r = admin(sqe(nvme::admin_opc::kKeepAlive));
  EXPECT_EQ(r->req.rsp.status, 0);
  EXPECT_FALSE(aq->disconnect_requested);
  EXPECT_TRUE(
      aq->poll_until([&] { return aq->disconnect_requested; }, std::chrono::milliseconds(1500)));
  EXPECT_EQ(ctrlr()->csts() & nvme::csts::kCfs, nvme::csts::kCfs);
}

TEST_F(CtrlrTest, KeepAliveKeepsControllerAlive) {
  bring_up(200);
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(600);
  while (std::chrono::steady_clock::now() < until) {
    admin(sqe(nvme::admin_opc::kKeepAlive));
    aq->poll_until([] { return false; }, std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(aq->disconnect_requested);
}

TEST_F(CtrlrTest, UnknownFabricsCommandIsInvalidOpcode) {
  connect(*aq);
  auto cmd = make_property_get(0, false);
  reinterpret_cast<uint8_t*>(&cmd)[4] = 0x10;
  auto r = admin(cmd);
  EXPECT_EQ(r->req.rsp.status, generic(nvme::sc::kInvalidOpcode));
}

}  // namespace
}  // namespace nvemu::nvmf::test
