// Shared harness for the controller tests: a reactor polled on the test
// thread, one subsystem with a malloc namespace, loopback qpairs.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "ctrlr_ram_bdev.h"
#include "nvme/fabrics.h"
#include "nvme/identify.h"
#include "nvme/log.h"
#include "nvme/nvm.h"
#include "nvme/registers.h"
#include "nvmf/controller.h"
#include "nvmf/loopback.h"
#include "nvmf/target.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf::test {

constexpr const char* kSubNqn = "nqn.2016-06.io.nvemu:cnode1";
constexpr const char* kHostNqn =
    "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
constexpr uint32_t kBlocks = 1024;
constexpr uint32_t kBlockSize = 512;

inline nvme::Sqe sqe(uint8_t opc, uint32_t nsid = 0, uint32_t cdw10 = 0, uint32_t cdw11 = 0,
                     uint32_t cdw12 = 0, uint16_t cid = 7) {
  nvme::Sqe s{};
  s.opc = opc;
  s.cid = cid;
  s.nsid = nsid;
  s.cdw10 = cdw10;
  s.cdw11 = cdw11;
  s.cdw12 = cdw12;
  return s;
}

class CtrlrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Target::instance().clear();
    subsys = Target::instance().add_subsystem(kSubNqn, Subsystem::Type::kNvme);
    ASSERT_TRUE(subsys);
    subsys->allow_any_host = true;
    subsys->serial_number = "SN123";
    subsys->model_number = "nvemu test";
    std::string err;
    ram = std::make_shared<RamBdev>("Ram0", kBlockSize, kBlocks);
    bdev = ram;
    Namespace ns;
    ns.nsid = 1;
    ns.bdev = bdev;
    ns.has_nguid = true;
    for (int i = 0; i < 16; ++i) ns.nguid[i] = static_cast<uint8_t>(0xa0 + i);
    ASSERT_EQ(subsys->add_namespace(ns, &err), 1u) << err;
    aq = std::make_unique<LoopbackQpair>(reactor, 0, 32);
  }
  void TearDown() override {
    for (auto& q : ioqs) q->destroy();
    ioqs.clear();
    if (aq) aq->destroy();
    aq.reset();
    for (int i = 0; i < 10; ++i) reactor.poll_once();
    Target::instance().clear();
  }

  // Runs cmd on qp with a buffer of len bytes (host data in `in` if given).
  std::unique_ptr<LoopbackRequest> run(LoopbackQpair& qp, const nvme::Sqe& cmd, size_t len = 0,
                                       const void* in = nullptr) {
    auto r = std::make_unique<LoopbackRequest>();
    r->prepare(qp, cmd, len);
    if (in) std::memcpy(r->data.data(), in, len);
    EXPECT_TRUE(qp.run(&r->req)) << "command did not complete";
    return r;
  }
  std::unique_ptr<LoopbackRequest> admin(const nvme::Sqe& cmd, size_t len = 0,
                                         const void* in = nullptr) {
    return run(*aq, cmd, len, in);
  }

  std::unique_ptr<LoopbackRequest> connect(LoopbackQpair& qp, uint16_t sqsize = 31,
                                           uint32_t kato = 0, uint16_t cntlid = 0xffff,
                                           const std::string& subnqn = kSubNqn,
                                           const std::string& hostnqn = kHostNqn) {
    auto data = make_connect_data(subnqn, hostnqn, cntlid, hostid);
    return run(qp, make_connect(qp.qid(), sqsize, kato, 3), data.size(), data.data());
  }
  uint64_t prop_get(uint32_t off, bool eight) {
    auto r = admin(make_property_get(off, eight));
    EXPECT_EQ(r->req.rsp.status, 0);
    return uint64_t{r->req.rsp.cdw0} | uint64_t{r->req.rsp.cdw1} << 32;
  }
  uint16_t prop_set(uint32_t off, uint64_t v, bool eight = false) {
    return admin(make_property_set(off, v, eight))->req.rsp.status;
  }
  static constexpr uint32_t kCcEnable = 1 | (6u << 16) | (4u << 20);

  // Admin connect + CC.EN=1.
  void bring_up(uint32_t kato = 0) {
    auto r = connect(*aq, 31, kato);
    ASSERT_EQ(r->req.rsp.status, 0);
    cntlid = r->req.rsp.cdw0 & 0xffff;
    ASSERT_EQ(prop_set(nvme::reg::kCc, kCcEnable), 0);
    ASSERT_EQ(prop_get(nvme::reg::kCsts, false) & 1, 1u);
  }
  LoopbackQpair& add_io_queue(uint16_t qid) {
    ioqs.push_back(std::make_unique<LoopbackQpair>(reactor, qid, 128));
    auto r = connect(*ioqs.back(), 127, 0, cntlid);
    EXPECT_EQ(r->req.rsp.status, 0) << "I/O connect sc " << int(r->req.rsp.sc());
    return *ioqs.back();
  }
  std::shared_ptr<Controller> ctrlr() { return aq->controller(); }

  Reactor reactor{0, 0};
  std::shared_ptr<Subsystem> subsys;
  std::shared_ptr<RamBdev> ram;
  std::shared_ptr<bdev::Bdev> bdev;
  std::unique_ptr<LoopbackQpair> aq;
  std::vector<std::unique_ptr<LoopbackQpair>> ioqs;
  uint16_t cntlid = 0;
  uint8_t hostid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
};

// Expected CQE status field (phase 0) for an SCT/SC/DNR.
inline uint16_t st(nvme::Sct sct, uint8_t sc, bool dnr) {
  return nvme::Status{sct, sc, dnr, false, 0xffff}.field();
}
inline uint16_t generic(uint8_t sc, bool dnr = true) {
  return st(nvme::Sct::kGeneric, sc, dnr);
}
inline uint16_t cmd_specific(uint8_t sc, bool dnr = true) {
  return st(nvme::Sct::kCommandSpecific, sc, dnr);
}

}  // namespace nvemu::nvmf::test
