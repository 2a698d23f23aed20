// bdev_nvme's TCP path against an in-process NVMe/TCP target: bring-up;
// I/O whose data is scattered over several iovecs (writes sent from the
// pieces, reads bounced) or lies in one, read back; a qpair closed with
// bounced I/O out completes it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "../nvmf/ctrlr_ram_bdev.h"
#include "bdev/nvme/path.h"
#include "nvmf/target.h"
#include "nvmf/tcp/tcp.h"
#include "nvmf/tcp/transport.h"
#include "reactor/reactor.h"

namespace nvemu::bdev::nvme {
namespace {

namespace n = ::nvemu::nvme;
constexpr const char* kNqn = "nqn.2016-06.io.nvemu:bdev-nvme-path";

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t l = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
  close(fd);
  return ntohs(a.sin_port);
}

struct Result {
  bool done = false;
  uint16_t status = 0xffff;
};

void on_done(void* ctx, const n::Cqe& c) {
  auto* r = static_cast<Result*>(ctx);
  r->done = true;
  r->status = c.status >> 1;
}

class BdevNvmeTcpPath : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    std::vector<unsigned> cores;
    for (unsigned c = 0; c < CPU_SETSIZE && cores.empty(); ++c)
      if (CPU_ISSET(c, &set)) cores.push_back(c);
    auto& rs = ReactorSet::instance();
    rs.create(cores, cores[0]);
    main_thread_ = new std::thread([] { ReactorSet::instance().run_main(); });
    nvmf::tcp::register_transport();
    auto& t = nvmf::Target::instance();
    t.clear();
    auto* s = t.add_subsystem(kNqn, nvmf::Subsystem::Type::kNvme).get();
    s->allow_any_host = true;
    std::string err;
    nvmf::Namespace ns;
    ns.nsid = 1;
    ns.bdev = std::make_shared<nvmf::test::RamBdev>("PathRam0", 512, 4096);
    ASSERT_EQ(s->add_namespace(ns, &err), 1u) << err;
    nvmf::TransportOpts o;
    o.trtype = "TCP";
    t.apply_defaults(o);
    auto* tr = dynamic_cast<nvmf::tcp::TcpTransport*>(t.add_transport(o, &err));
    ASSERT_TRUE(tr) << err;
    port_ = free_port();
    nvmf::ListenAddress addr{"TCP", "IPv4", "127.0.0.1", std::to_string(port_)};
    ASSERT_EQ(tr->listen(addr), "");
    s->add_listener(addr);
  }
  static void TearDownTestSuite() {
    nvmf::Target::instance().clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto& rs = ReactorSet::instance();
    rs.stop_all();
    main_thread_->join();
    delete main_thread_;
    rs.destroy();
  }

  std::unique_ptr<AdminPath> connect(CtrlrInfo* info, bool ddgst = false) {
    Trid t;
    t.traddr = "127.0.0.1";
    t.trsvcid = std::to_string(port_);
    t.subnqn = kNqn;
    PathOptions o;
    o.kato_ms = 0;
    o.hdgst = o.ddgst = ddgst;
    std::string err;
    int eno = 0;
    auto p = connect_path(t, o, &err, &eno);
    EXPECT_TRUE(p) << err;
    if (p) {
      EXPECT_EQ(p->bring_up(info), "");
    }
    return p;
  }
  static void wait(IoQpair& qp, const Result& r) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!r.done && std::chrono::steady_clock::now() < end) {
      if (qp.poll() < 0) break;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  static inline std::thread* main_thread_ = nullptr;
  static inline uint16_t port_ = 0;
};

TEST_F(BdevNvmeTcpPath, BringUpSeesTheNamespace) {
  CtrlrInfo info;
  auto p = connect(&info);
  ASSERT_TRUE(p);
  ASSERT_EQ(info.namespaces.size(), 1u);
  EXPECT_EQ(info.namespaces[0].nsid, 1u);
  EXPECT_EQ(info.namespaces[0].block_size, 512u);
  EXPECT_EQ(info.namespaces[0].num_blocks, 4096u);
  EXPECT_EQ(info.subnqn, kNqn);
}

TEST_F(BdevNvmeTcpPath, ScatteredAndContiguousDataRoundTrip) {
  CtrlrInfo info;
  auto p = connect(&info);
  ASSERT_TRUE(p);
  std::string err;
  auto qp = p->create_io_qpair(1, 16, &err);
  ASSERT_TRUE(qp) << err;
  // 8 blocks written from three pieces of uneven size (bounced) ...
  std::vector<uint8_t> a(512), b(1024 + 100), c(4096);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 13 + 1);
  for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<uint8_t>(i * 3 + 5);
  struct iovec w[3] = {{a.data(), 512}, {b.data(), 1024}, {c.data(), 2560}};
  Result r;
  ASSERT_TRUE(qp->submit(0x01, 1, 10, 8, w, 3, 4096, on_done, &r));
  wait(*qp, r);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.status, 0);
  // ... read back into one buffer (sent as is) and into two (bounced).
  std::vector<uint8_t> flat(4096), want;
  want.insert(want.end(), a.begin(), a.end());
  want.insert(want.end(), b.begin(), b.begin() + 1024);
  want.insert(want.end(), c.begin(), c.begin() + 2560);
  struct iovec one = {flat.data(), flat.size()};
  Result r2;
  ASSERT_TRUE(qp->submit(0x02, 1, 10, 8, &one, 1, 4096, on_done, &r2));
  wait(*qp, r2);
  ASSERT_EQ(r2.status, 0);
  EXPECT_EQ(flat, want);
  std::vector<uint8_t> x(1000), y(3096);
  struct iovec two[2] = {{x.data(), x.size()}, {y.data(), y.size()}};
  Result r3;
  ASSERT_TRUE(qp->submit(0x02, 1, 10, 8, two, 2, 4096, on_done, &r3));
  wait(*qp, r3);
  ASSERT_EQ(r3.status, 0);
  EXPECT_TRUE(std::equal(x.begin(), x.end(), want.begin()));
  EXPECT_TRUE(std::equal(y.begin(), y.end(), want.begin() + 1000));
}

// Writes in uneven pieces go out from where they lie: in the capsule when
// small, through R2T/H2CData when large, with and without data digests.
TEST_F(BdevNvmeTcpPath, ScatteredWritesOfEverySize) {
  for (bool dg : {false, true}) {
    CtrlrInfo info;
    auto p = connect(&info, dg);
    ASSERT_TRUE(p);
    std::string err;
    auto qp = p->create_io_qpair(1, 16, &err);
    ASSERT_TRUE(qp) << err;
    for (uint32_t len : {4096u, 65536u + 512u}) {
      std::vector<uint8_t> data(len);
      for (size_t i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(i * 31 + len + dg);
      // Pieces of 100, 412, 3000, ... bytes: never block-aligned.
      std::vector<struct iovec> iov;
      size_t off = 0, piece = 100;
      while (off < len) {
        size_t k = std::min(piece, len - off);
        iov.push_back({data.data() + off, k});
        off += k;
        piece = piece * 3 + 112;
      }
      ASSERT_LE(iov.size(), 16u);
      Result w;
      ASSERT_TRUE(qp->submit(0x01, 1, 100, len / 512, iov.data(), static_cast<int>(iov.size()), len,
                             on_done, &w));
      wait(*qp, w);
      ASSERT_TRUE(w.done);
      ASSERT_EQ(w.status, 0) << len << " ddgst " << dg;
      std::vector<uint8_t> back(len);
      struct iovec one = {back.data(), len};
      Result r;
      ASSERT_TRUE(qp->submit(0x02, 1, 100, len / 512, &one, 1, len, on_done, &r));
      wait(*qp, r);
      ASSERT_EQ(r.status, 0);
      EXPECT_EQ(back, data) << len << " ddgst " << dg;
    }
  }
}

TEST_F(BdevNvmeTcpPath, ClosingWithBouncedIoOutCompletesIt) {
  CtrlrInfo info;
  auto p = connect(&info);
  ASSERT_TRUE(p);
  std::string err;
  auto qp = p->create_io_qpair(1, 16, &err);
  ASSERT_TRUE(qp) << err;
  std::vector<uint8_t> a(2048), b(2048);
  struct iovec w[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  Result r;  // a scattered read: bounced
  ASSERT_TRUE(qp->submit(0x02, 1, 0, 8, w, 2, 4096, on_done, &r));
  qp.reset();  // never polled: still out
  EXPECT_TRUE(r.done);
  EXPECT_NE(r.status, 0);
}

}  // namespace
}  // namespace nvemu::bdev::nvme
