// Whole-stack vfio-user tests in one process: a reactor thread serves an
// Endpoint (controller + malloc namespace); nvemu's host driver
// (host/vfio_user) drives it over the real Unix socket from the test thread.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>

#include "bdev/bdev.h"
#include "host/vfio_user/device.h"
#include "nvme/identify.h"
#include "nvme/registers.h"
#include "nvmf/controller.h"
#include "nvmf/target.h"
#include "nvmf/vfio_user/endpoint.h"
#include "reactor/reactor.h"

using namespace nvemu;
namespace vu = nvemu::vfio_user;
using host::vfio_user::Device;

namespace {

constexpr const char* kNqn = "nqn.2016-06.io.nvemu:vfu1";
constexpr uint32_t kBlocks = 4096;
constexpr uint32_t kBlockSize = 512;
constexpr uint64_t kIova = 0x40000000;

// A plain heap-backed bdev, so these tests depend only on the bdev contract.
class MemBdev final : public bdev::Bdev {
 public:
  MemBdev()
      : Bdev("VfuMem0", "test memory", kBlockSize, kBlocks), data_(size_t{kBlocks} * kBlockSize) {}
  bool supports(bdev::IoType t) const override { return t != bdev::IoType::kUnmap; }
  std::unique_ptr<bdev::Channel> open_channel() override { return std::make_unique<Chan>(*this); }
  std::string module_name() const override { return "test"; }
  nlohmann::json config_entry() const override { return nlohmann::json::object(); }

 private:
  class Chan final : public bdev::Channel {
   public:
    explicit Chan(MemBdev& b) : Channel(b), b_(b) {}
    void do_submit(bdev::BdevIo* io) override {
      uint8_t* p = b_.data_.data() + io->offset_blocks * kBlockSize;
      size_t len = io->num_blocks * kBlockSize, done = 0;
      if (io->type == bdev::IoType::kWriteZeroes) std::memset(p, 0, len);
      for (int i = 0; i < io->iovcnt && done < len; ++i) {
        size_t n = std::min(len - done, io->iovs[i].iov_len);
        if (io->type == bdev::IoType::kRead) std::memcpy(io->iovs[i].iov_base, p + done, n);
        if (io->type == bdev::IoType::kWrite) std::memcpy(p + done, io->iovs[i].iov_base, n);
        done += n;
      }
      complete(io, bdev::IoStatus::kSuccess);
    }
    MemBdev& b_;
  };
  std::vector<uint8_t> data_;
};

class VfioUserE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    nvmf::Target::instance().clear();
    subsys = nvmf::Target::instance().add_subsystem(kNqn, nvmf::Subsystem::Type::kNvme);
    ASSERT_TRUE(subsys);
    std::string err;
    auto bdev = std::make_shared<MemBdev>();
    nvmf::Namespace ns;
    ns.nsid = 1;
    ns.bdev = bdev;
    ASSERT_EQ(subsys->add_namespace(ns, &err), 1u) << err;
    char tmpl[] = "/tmp/nvemu-vfu-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir = tmpl;
    reactor = std::make_unique<Reactor>(7, 0);
    reactor->start_thread();
    nvmf::TransportOpts opts;
    opts.trtype = "VFIOUSER";
    opts.max_queue_depth = 256;
    opts.specific = {{"idle_poll_us", 100}};
    ep = vu::Endpoint::create(dir, subsys, *reactor, opts, &err);
    ASSERT_TRUE(ep) << err;
  }
  void TearDown() override {
    if (ep) {
      std::promise<void> done;
      ep->destroy([&] { done.set_value(); });
      ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
      ep.reset();
    }
    reactor->request_stop();
    reactor->join();
    reactor.reset();
    nvmf::Target::instance().clear();
    std::filesystem::remove_all(dir);
  }

  // Connects, shares 8 MiB, enables the controller and creates I/O queue 1.
  std::unique_ptr<Device> attach(bool io_queue = true) {
    std::string err;
    auto d = Device::connect(dir, &err);
    EXPECT_TRUE(d) << err;
    if (!d) return nullptr;
    EXPECT_TRUE(d->setup_memory(8 << 20, kIova, &err)) << err;
    EXPECT_TRUE(d->enable(32, &err)) << err;
    if (io_queue) {
      EXPECT_TRUE(d->create_io_queue(1, 64, true, &err)) << err;
    }
    return d;
  }

  std::shared_ptr<nvmf::Subsystem> subsys;
  std::string dir;
  std::unique_ptr<Reactor> reactor;
  std::shared_ptr<vu::Endpoint> ep;
};

vu::Message raw(Device& d, uint16_t cmd, const void* p, size_t len) {
  vu::Message r;
  std::string err;
  EXPECT_TRUE(d.request(cmd, p, len, &r, &err)) << err;
  return r;
}

}  // namespace

TEST_F(VfioUserE2E, IdentifyWriteReadCompare) {
  auto d = attach();
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->doorbells_mapped());
  EXPECT_EQ(d->config_read32(0), 0x00014e58u);
  EXPECT_EQ(d->config_read32(8) >> 8, 0x010802u);
  std::string err;
  std::vector<uint8_t> id(4096);
  ASSERT_TRUE(d->identify(1, 0, id.data(), &err)) << err;
  nvme::IdentifyController ic;
  std::memcpy(&ic, id.data(), sizeof ic);
  EXPECT_EQ(std::string(ic.mn, 6), "nvemu ");
  ASSERT_TRUE(d->identify(0, 1, id.data(), &err)) << err;

  // MSI-X for queue 1's vector.
  int efd = eventfd(0, EFD_NONBLOCK);
  ASSERT_TRUE(d->set_msix_eventfd(1, efd, &err)) << err;

  // 3 pages, unaligned start: PRP1 + a PRP list.
  const uint32_t len = 24 * kBlockSize;
  auto* wbuf = static_cast<uint8_t*>(d->alloc(len + 4096)) + 512;
  auto* rbuf = static_cast<uint8_t*>(d->alloc(len + 4096)) + 1024;
  for (uint32_t i = 0; i < len; ++i) wbuf[i] = static_cast<uint8_t>(i * 7 + 3);
  nvme::Cqe cqe{};
  ASSERT_TRUE(d->io(1, 0x01, 1, 100, 24, wbuf, len, &cqe, &err)) << err;
  EXPECT_EQ(cqe.sc(), 0) << "write status " << int(cqe.sct()) << "/" << int(cqe.sc());
  ASSERT_TRUE(d->io(1, 0x02, 1, 100, 24, rbuf, len, &cqe, &err)) << err;
  EXPECT_EQ(cqe.sc(), 0);
  EXPECT_EQ(std::memcmp(wbuf, rbuf, len), 0);
  EXPECT_EQ(cqe.sqid, 1);
  struct pollfd p {
    efd, POLLIN, 0
  };
  EXPECT_EQ(poll(&p, 1, 1000), 1) << "no MSI-X interrupt for CQ 1";
  close(efd);

  // Many commands in flight wrap the 64-entry queues (phase tags).
  for (int round = 0; round < 5; ++round) {
    int done = 0;
    for (int i = 0; i < 50; ++i) {
      nvme::Sqe c{};
      c.opc = 0x02;
      c.nsid = 1;
      c.cid = static_cast<uint16_t>(i);
      c.cdw10 = i;
      ASSERT_TRUE(d->build_prps(1, c.cid, &c, rbuf, 512));
      ASSERT_GE(d->submit(1, c), 0);
    }
    // Bounded by time, not spins: the target's reactor may be asleep on its
    // idle timer when the doorbell is rung.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (done < 50 && std::chrono::steady_clock::now() < deadline)
      done += d->poll(1, [](const nvme::Cqe& e) { EXPECT_EQ(e.sc(), 0); });
    EXPECT_EQ(done, 50);
  }
}

// Waits (bounded by time: the target may be asleep on its idle timer) for
// one completion on qid.
template <typename Device>
bool wait_cqe(Device& d, uint16_t qid, nvme::Cqe* out) {
  bool got = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!got && std::chrono::steady_clock::now() < deadline)
    d.poll(qid, [&](const nvme::Cqe& e) {
      *out = e;
      got = true;
    });
  return got;
}

TEST_F(VfioUserE2E, BadDataPointersGetSpecStatus) {
  auto d = attach();
  ASSERT_TRUE(d);
  std::string err;
  nvme::Cqe cqe{};
  // PRP1 outside every DMA map: Data Transfer Error, and the daemon goes on.
  nvme::Sqe c{};
  c.opc = 0x02;
  c.nsid = 1;
  c.cid = 1;
  c.dptr.prp.prp1 = 0xdead000;
  ASSERT_GE(d->submit(1, c), 0);
  bool got = wait_cqe(*d, 1, &cqe);
  ASSERT_TRUE(got);
  EXPECT_EQ(cqe.sc(), nvme::sc::kDataTransferError);
  EXPECT_TRUE(cqe.dnr());
  // Two pages with a misaligned PRP2: Invalid PRP Offset.
  auto* buf = static_cast<uint8_t*>(d->alloc(8192));
  c.cid = 2;
  c.cdw12 = 15;  // 16 blocks = 8 KiB
  c.dptr.prp.prp1 = d->iova(buf);
  c.dptr.prp.prp2 = d->iova(buf) + 4096 + 8;
  ASSERT_GE(d->submit(1, c), 0);
  got = wait_cqe(*d, 1, &cqe);
  ASSERT_TRUE(got);
  EXPECT_EQ(cqe.sc(), nvme::sc::kInvalidPrpOffset);
  // Still serving.
  ASSERT_TRUE(d->io(1, 0x02, 1, 0, 1, buf, 512, &cqe, &err)) << err;
  EXPECT_EQ(cqe.sc(), 0);
  // The transport failed the first two itself, so the controller's count of
  // queue 1's commands in flight (nvemu_qpair_queue_depth) never saw them.
  auto ctrlrs = subsys->controllers();
  ASSERT_EQ(ctrlrs.size(), 1u);
  uint64_t inflight = ~uint64_t{0}, read_cmds = 0;
  ctrlrs[0]->for_each_qpair([&](const nvmf::Qpair& qp) {
    if (qp.qid() != 1) return;
    inflight = qp.io.inflight.load(std::memory_order_relaxed);
    read_cmds = qp.io.read_cmds.load(std::memory_order_relaxed);
  });
  EXPECT_EQ(inflight, 0u);
  EXPECT_EQ(read_cmds, 1u);
}

// A queue created again under the same ID starts with head = tail = 0
// (NVMe Base 2.0, 3.3.1.2): the old queue's doorbell values must not make
// the controller fetch entries the host never submitted (SPDK's
// nvme_compliance saw "cpl does not map to outstanding cmd" from this).
TEST_F(VfioUserE2E, RecreatedQueueStartsAtZero) {
  auto d = attach();
  ASSERT_TRUE(d);
  std::string err;
  nvme::Cqe cqe{};
  auto* buf = static_cast<uint8_t*>(d->alloc(4096));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(d->io(1, 0x02, 1, i, 1, buf, 512, &cqe, &err)) << err;
    ASSERT_EQ(cqe.sc(), 0);
  }
  ASSERT_TRUE(d->delete_io_queue(1, &err)) << err;
  ASSERT_TRUE(d->create_io_queue(1, 64, false, &err)) << err;
  // Nothing was submitted: no completion may appear.
  int stray = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < until) stray += d->poll(1, [](const nvme::Cqe&) {});
  EXPECT_EQ(stray, 0);
  // And the new queue works from entry 0.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(d->io(1, 0x02, 1, i, 1, buf, 512, &cqe, &err)) << err;
    EXPECT_EQ(cqe.sc(), 0);
    EXPECT_EQ(cqe.sqhd, i + 1);
  }
}

TEST_F(VfioUserE2E, DoorbellBeyondQueueSizeFailsController) {
  auto d = attach();
  ASSERT_TRUE(d);
  d->ring_sq(1, 1000);  // the queue has 64 entries
  uint32_t csts = 0;
  for (int i = 0; i < 2000; ++i) {
    csts = d->read32(nvme::reg::kCsts);
    if (csts & nvme::csts::kCfs) break;
    usleep(1000);
  }
  EXPECT_TRUE(csts & nvme::csts::kCfs) << "CSTS " << csts;
  // A reset brings it back.
  std::string err;
  d.reset();
  auto d2 = attach();
  ASSERT_TRUE(d2);
  std::vector<uint8_t> id(4096);
  EXPECT_TRUE(d2->identify(1, 0, id.data(), &err)) << err;
}

TEST_F(VfioUserE2E, MalformedMessagesGetErrors) {
  auto d = attach(false);
  ASSERT_TRUE(d);
  // Unknown command.
  auto r = raw(*d, 200, nullptr, 0);
  EXPECT_TRUE(r.hdr.flags & vu::kFlagError);
  EXPECT_NE(r.hdr.error, 0u);
  // Short payloads.
  uint8_t few[3] = {};
  for (uint16_t cmd :
       {vu::kDmaMap, vu::kDmaUnmap, vu::kDeviceGetInfo, vu::kDeviceGetRegionInfo,
        vu::kDeviceGetIrqInfo, vu::kDeviceSetIrqs, vu::kRegionRead, vu::kRegionWrite}) {
    r = raw(*d, cmd, few, sizeof few);
    EXPECT_TRUE(r.hdr.flags & vu::kFlagError) << vu::command_name(cmd);
    EXPECT_EQ(r.hdr.error, static_cast<uint32_t>(EINVAL)) << vu::command_name(cmd);
  }
  // Region access out of range, bad region, count mismatch.
  vu::RegionAccess a{0x3ffe, vu::kBar0, 4};
  r = raw(*d, vu::kRegionRead, &a, sizeof a);
  EXPECT_TRUE(r.hdr.flags & vu::kFlagError);
  a = {0, 42, 4};
  r = raw(*d, vu::kRegionRead, &a, sizeof a);
  EXPECT_TRUE(r.hdr.flags & vu::kFlagError);
  a = {0xfff, vu::kConfig, 8};
  r = raw(*d, vu::kRegionRead, &a, sizeof a);
  EXPECT_TRUE(r.hdr.flags & vu::kFlagError);
  struct {
    vu::RegionAccess a;
    uint8_t v[4];
  } w{{0x14, vu::kBar0, 3}, {}};
  r = raw(*d, vu::kRegionWrite, &w, sizeof w);  // count does not match the data
  EXPECT_TRUE(r.hdr.flags & vu::kFlagError);
  r = raw(*d, vu::kRegionWrite, &w, sizeof w - 1);  // a 3-byte register write
  EXPECT_TRUE(r.hdr.flags & vu::kFlagError);
  // DMA_MAP overlapping the existing map; unmap that splits it; bad irq index.
  vu::DmaMap dm{sizeof dm, vu::kDmaMapRead, 0, kIova + 4096, 4096};
  r = raw(*d, vu::kDmaMap, &dm, sizeof dm);
  EXPECT_EQ(r.hdr.error, static_cast<uint32_t>(EEXIST));
  vu::DmaUnmap du{sizeof du, 0, kIova, 4096};
  r = raw(*d, vu::kDmaUnmap, &du, sizeof du);
  EXPECT_EQ(r.hdr.error, static_cast<uint32_t>(EINVAL));
  vu::IrqSet is{sizeof is, vu::kIrqSetDataNone | vu::kIrqSetActionTrigger, 9, 0, 1};
  r = raw(*d, vu::kDeviceSetIrqs, &is, sizeof is);
  EXPECT_EQ(r.hdr.error, static_cast<uint32_t>(EINVAL));
  // Region info: small argsz asks for more; full argsz carries the sparse cap + fd.
  vu::RegionInfo ri{sizeof ri, 0, vu::kBar0, 0, 0, 0};
  r = raw(*d, vu::kDeviceGetRegionInfo, &ri, sizeof ri);
  ASSERT_TRUE(r.get(&ri));
  EXPECT_EQ(ri.argsz, 64u);
  EXPECT_FALSE(ri.flags & vu::kRegionFlagCaps);
  EXPECT_TRUE(r.fds.empty());
  // The function still works.
  std::string err;
  ASSERT_TRUE(d->create_io_queue(1, 16, false, &err)) << err;
  auto* buf = d->alloc(4096);
  nvme::Cqe cqe{};
  ASSERT_TRUE(d->io(1, 0x02, 1, 0, 8, buf, 4096, &cqe, &err)) << err;
  EXPECT_EQ(cqe.sc(), 0);
}

TEST_F(VfioUserE2E, GarbageStreamClosesOnlyThatClient) {
  {
    // A header claiming 4 GiB: the stream is dropped, the daemon lives.
    struct sockaddr_un sa {};
    sa.sun_family = AF_UNIX;
    std::string path = dir + "/cntrl";
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    vu::Header h{1, vu::kVersion, 0xffffffff, 0, 0};
    ASSERT_EQ(write(s, &h, sizeof h), static_cast<ssize_t>(sizeof h));
    char c;
    struct pollfd p {
      s, POLLIN, 0
    };
    ASSERT_EQ(poll(&p, 1, 2000), 1);
    EXPECT_EQ(read(s, &c, 1), 0);  // closed by the server
    close(s);
  }
  auto d = attach();
  ASSERT_TRUE(d);
}

TEST_F(VfioUserE2E, SocketClosedMidIoThenSecondClient) {
  {
    auto d = attach();
    ASSERT_TRUE(d);
    auto* buf = d->alloc(64 * 4096);
    for (int i = 0; i < 60; ++i) {
      nvme::Sqe c{};
      c.opc = 0x01;
      c.nsid = 1;
      c.cid = static_cast<uint16_t>(i);
      c.cdw10 = i * 8;
      c.cdw12 = 7;
      ASSERT_TRUE(d->build_prps(1, c.cid, &c, static_cast<uint8_t*>(buf) + i * 4096, 4096));
      ASSERT_GE(d->submit(1, c), 0);
    }
    // Close without waiting: the server must drop the queues safely.
  }
  // A second client while the first is attached is refused; after it leaves
  // a new one is served.
  auto d2 = attach();
  ASSERT_TRUE(d2);
  std::string err;
  auto d3 = Device::connect(dir, &err);
  EXPECT_FALSE(d3) << "a second simultaneous client must be refused";
  auto* buf = d2->alloc(4096);
  nvme::Cqe cqe{};
  ASSERT_TRUE(d2->io(1, 0x02, 1, 8, 8, buf, 4096, &cqe, &err)) << err;
  EXPECT_EQ(cqe.sc(), 0);
}
