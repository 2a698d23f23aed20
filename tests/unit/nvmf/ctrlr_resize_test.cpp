// A bdev that grows under a namespace (bdev_rbd_resize): the namespace added
// with nvmf_subsystem_add_ns follows the bdev, every controller gets a
// Namespace Attribute Changed event and lists the nsid in its Changed
// Namespace List, and Identify reports the new size.
#include <gtest/gtest.h>

#include <algorithm>

#include "bdev/bdev.h"
#include "ctrlr_fixture.h"
#include "nvmf/nvmf_rpc.h"
#include "rpc/registry.h"

namespace nvemu::nvmf::test {
namespace {

namespace aop = nvme::admin_opc;

class ResizeTest : public CtrlrTest {
 protected:
  void SetUp() override {
    CtrlrTest::SetUp();
    bring_up();
    register_subsystem_rpcs();
    saved_state_ = rpc::Registry::instance().state();
    rpc::Registry::instance().set_state(rpc::kRuntime);
  }
  void TearDown() override {
    rpc::Registry::instance().set_state(saved_state_);
    bdev::Registry::instance().remove("Grow0");
    CtrlrTest::TearDown();
  }
  nlohmann::json call(const std::string& method, const nlohmann::json& params) {
    nlohmann::json reply;
    rpc::Responder r(1, [&](const nlohmann::json& j) { reply = j; });
    rpc::Registry::instance().dispatch(method, params, r);
    return reply;
  }
  // Parks an AER and returns it; the caller polls for its completion.
  std::unique_ptr<LoopbackRequest> park_aer(uint16_t cid) {
    auto a = std::make_unique<LoopbackRequest>();
    a->prepare(*aq, sqe(aop::kAsyncEventRequest, 0, 0, 0, 0, cid), 0);
    submit_request(&a->req);
    return a;
  }
  bool completed(const LoopbackRequest& a) {
    return aq->poll_until(
        [&] { return std::count(aq->completed.begin(), aq->completed.end(), &a.req) == 1; });
  }
  void read_changed_list() {
    uint32_t numd = 4096 / 4 - 1;
    admin(sqe(aop::kGetLogPage, 0xffffffff, nvme::lid::kChangedNsList | (numd << 16)), 4096);
  }
  uint64_t nsze(uint32_t nsid) {
    auto r = admin(sqe(aop::kIdentify, nsid, nvme::cns::kNamespace), 4096);
    EXPECT_EQ(r->req.rsp.status, 0);
    nvme::IdentifyNamespace id{};
    std::memcpy(&id, r->data.data(), sizeof id);
    return id.nsze;
  }

  unsigned saved_state_ = rpc::kStartup;
};

TEST_F(ResizeTest, GrownBdevRaisesNamespaceAttributeChanged) {
  admin(sqe(aop::kSetFeatures, 0, nvme::fid::kAsyncEventConfig, nvme::aen::kCfgNsAttr));
  auto b = std::make_shared<RamBdev>("Grow0", 4096, 64);
  ASSERT_TRUE(bdev::Registry::instance().add(b));
  auto reply = call("nvmf_subsystem_add_ns",
                    {{"nqn", kSubNqn}, {"namespace", {{"bdev_name", "Grow0"}, {"nsid", 2u}}}});
  ASSERT_EQ(reply.value("result", nlohmann::json()), 2) << reply.dump();
  // The add itself is a change: take its event and clear the log.
  auto first = park_aer(200);
  ASSERT_TRUE(completed(*first));
  read_changed_list();
  EXPECT_EQ(nsze(2), 64u);

  auto aer = park_aer(201);
  for (int i = 0; i < 5; ++i) reactor.poll_once();
  EXPECT_EQ(std::count(aq->completed.begin(), aq->completed.end(), &aer->req), 0);
  ASSERT_TRUE(b->grow(192));
  ASSERT_TRUE(completed(*aer));
  EXPECT_EQ(aer->req.rsp.status, 0);
  EXPECT_EQ(aer->req.rsp.cdw0,
            nvme::aen::pack(nvme::aen::kTypeNotice, nvme::aen::kNoticeNsAttrChanged,
                            nvme::lid::kChangedNsList));
  uint32_t numd = 4096 / 4 - 1;
  auto l = admin(sqe(aop::kGetLogPage, 0xffffffff, nvme::lid::kChangedNsList | (numd << 16)), 4096);
  uint32_t ids[2];
  std::memcpy(ids, l->data.data(), 8);
  EXPECT_EQ(ids[0], 2u);
  EXPECT_EQ(ids[1], 0u);
  EXPECT_EQ(nsze(2), 192u);

  // After the namespace is removed the bdev's growth no longer concerns it.
  reply = call("nvmf_subsystem_remove_ns", {{"nqn", kSubNqn}, {"nsid", 2u}});
  ASSERT_EQ(reply.value("result", nlohmann::json()), true) << reply.dump();
  auto gone = park_aer(202);
  ASSERT_TRUE(completed(*gone));  // the removal's event
  read_changed_list();
  auto none = park_aer(203);
  ASSERT_TRUE(b->grow(256));
  for (int i = 0; i < 10; ++i) reactor.poll_once();
  EXPECT_EQ(std::count(aq->completed.begin(), aq->completed.end(), &none->req), 0);
  aq->destroy();  // completes the parked AER before it goes out of scope
  EXPECT_EQ(none->req.rsp.status, generic(nvme::sc::kAbortedSqDeletion, false));
}

}  // namespace
}  // namespace nvemu::nvmf::test
