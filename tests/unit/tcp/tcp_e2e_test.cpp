// Whole-stack NVMe/TCP: real reactors on their own threads, a malloc bdev in
// a subsystem, the TCP transport listening on 127.0.0.1, and nvemu's
// initiator (or a raw socket forging PDUs) on the test thread.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "../nvmf/ctrlr_ram_bdev.h"
#include "bdev/malloc.h"
#include "host/tcp/host.h"
#include "nvmf/target.h"
#include "nvmf/tcp/tcp.h"
#include "nvmf/tcp/transport.h"
#include "reactor/reactor.h"
#include "reactor/socket_ring.h"
#include "wire/tcp/pdu_codec.h"

using namespace nvemu;
using namespace nvemu::nvmf::tcp;
using namespace nvemu::wire::tcp;
using host::tcp::ConnectParams;
using host::tcp::Dir;
using host::tcp::Host;
using host::tcp::Queue;

namespace {

constexpr const char* kNqn = "nqn.2016-06.io.nvemu:tcp-test";
constexpr uint32_t kBlockSize = 512;
constexpr uint64_t kBlocks = 16384;  // 8 MiB

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

template <typename Pred>
bool eventually(Pred p, int ms = 3000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!p()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A bare socket speaking NVMe/TCP by hand, to forge bad PDUs.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() { close(fd_); }
  bool ok() const { return ok_; }
  void send(const void* p, size_t n) { ASSERT_EQ(::send(fd_, p, n, MSG_NOSIGNAL), ssize_t(n)); }
  // Reads exactly n bytes; false on EOF/timeout.
  bool recv_exact(void* p, size_t n, int ms = 3000) {
    auto* b = static_cast<uint8_t*>(p);
    while (n) {
      pollfd pf{fd_, POLLIN, 0};
      if (poll(&pf, 1, ms) != 1) return false;
      ssize_t r = ::recv(fd_, b, n, 0);
      if (r <= 0) return false;
      b += r;
      n -= size_t(r);
    }
    return true;
  }
  // Reads one whole PDU.
  bool recv_pdu(std::vector<uint8_t>* out) {
    out->resize(8);
    if (!recv_exact(out->data(), 8)) return false;
    CommonHeader ch;
    std::memcpy(&ch, out->data(), 8);
    if (ch.plen < 8 || ch.plen > 1 << 20) return false;
    out->resize(ch.plen);
    return recv_exact(out->data() + 8, ch.plen - 8);
  }
  bool at_eof(int ms = 3000) {
    pollfd pf{fd_, POLLIN, 0};
    if (poll(&pf, 1, ms) != 1) return false;
    char c;
    return ::recv(fd_, &c, 1, 0) <= 0;
  }
  void icreq(bool hd = false, bool dd = false) {
    uint8_t b[128];
    send(b, build_icreq(b, 0, hd, dd, 0));
    std::vector<uint8_t> resp;
    ASSERT_TRUE(recv_pdu(&resp));
    ASSERT_EQ(resp[0], uint8_t(PduType::kICResp));
  }
  // Expects a C2HTermReq with fes (and fei when >= 0), then the close.
  void expect_term(Fes fes, int64_t fei = -1) {
    std::vector<uint8_t> pdu;
    ASSERT_TRUE(recv_pdu(&pdu)) << "no C2HTermReq";
    ASSERT_EQ(pdu[0], uint8_t(PduType::kC2HTermReq));
    TermReq t;
    std::memcpy(&t, pdu.data(), sizeof t);
    EXPECT_EQ(t.fes, uint16_t(fes)) << fes_name(Fes(t.fes));
    uint32_t got_fei;
    std::memcpy(&got_fei, t.fei, 4);
    if (fei >= 0) {
      EXPECT_EQ(got_fei, uint32_t(fei));
    }
    EXPECT_TRUE(at_eof()) << "connection stayed open after C2HTermReq";
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

struct IoWait {
  int pending = 0;
  int errors = 0;
  std::string last_error;
  static void cb(void* ctx, const nvme::Cqe& c) {
    auto* w = static_cast<IoWait*>(ctx);
    --w->pending;
    if (!host::tcp::cqe_ok(c)) {
      ++w->errors;
      w->last_error = host::tcp::cqe_status_string(c);
    }
  }
};

}  // namespace

class TcpE2EBase : public ::testing::Test {
 protected:
  // Every case runs on both socket implementations (sock_set_default_impl).
  void use_impl(const char* impl) {
    ASSERT_TRUE(SocketRing::set_default_impl(impl));
    if (std::string(impl) != "uring") return;
    // A kernel without the ring's features serves TCP on epoll; then these
    // cases would not test the ring, so they say so instead of passing.
    std::promise<bool> has_ring;
    Reactor& r = ReactorSet::instance().at(ReactorSet::instance().size() - 1);
    r.send([&] { has_ring.set_value(SocketRing::of(r) != nullptr); });
    if (!has_ring.get_future().get()) GTEST_SKIP() << "this kernel has no io_uring for sockets";
  }
  void TearDown() override { SocketRing::set_default_impl("posix"); }

  static void SetUpTestSuite() {
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    std::vector<unsigned> cores;
    for (unsigned c = 0; c < CPU_SETSIZE && cores.size() < 2; ++c)
      if (CPU_ISSET(c, &set)) cores.push_back(c);
    auto& rs = ReactorSet::instance();
    rs.create(cores, cores[0]);
    rs.start_others();
    main_thread_ = new std::thread([] { ReactorSet::instance().run_main(); });

    register_transport();
    auto& t = nvmf::Target::instance();
    t.clear();
    subsys_ = t.add_subsystem(kNqn, nvmf::Subsystem::Type::kNvme).get();
    subsys_->allow_any_host = true;
    // A heap-backed test bdev: the malloc module's hugepage mapping is not
    // what this test is about.
    std::string err;
    auto b = std::make_shared<nvmf::test::RamBdev>("TcpRam0", kBlockSize, kBlocks);
    nvmf::Namespace ns;
    ns.nsid = 1;
    ns.bdev = b;
    ASSERT_EQ(subsys_->add_namespace(ns, &err), 1u) << err;
    // And a malloc one: reads of memory bdevs are sent from the bdev itself.
    bdev::MallocParams mp;
    mp.name = "TcpMalloc0";
    mp.num_blocks = kBlocks;
    mp.block_size = kBlockSize;
    malloc_ = bdev::create_malloc_bdev(mp, &err);
    ASSERT_TRUE(malloc_) << err;
    nvmf::Namespace ns2;
    ns2.nsid = 2;
    ns2.bdev = malloc_;
    ASSERT_EQ(subsys_->add_namespace(ns2, &err), 2u) << err;

    nvmf::TransportOpts o;
    o.trtype = "TCP";
    t.apply_defaults(o);
    transport_ = dynamic_cast<TcpTransport*>(t.add_transport(o, &err));
    ASSERT_TRUE(transport_) << err;
    port_ = free_port();
    addr_ = {"TCP", "IPv4", "127.0.0.1", std::to_string(port_)};
    ASSERT_EQ(transport_->listen(addr_), "");
    subsys_->add_listener(addr_);
    t.find_subsystem(nvmf::kDiscoveryNqn)->add_listener(addr_);
  }
  static void TearDownTestSuite() {
    nvmf::Target::instance().clear();
    malloc_.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto& rs = ReactorSet::instance();
    rs.stop_all();
    main_thread_->join();
    delete main_thread_;
    rs.join_others();
    rs.destroy();
  }

  ConnectParams params(bool hd = false, bool dd = false) {
    ConnectParams p;
    p.traddr = "127.0.0.1";
    p.port = port_;
    p.subnqn = kNqn;
    p.hdgst = hd;
    p.ddgst = dd;
    return p;
  }

  // Writes pattern buffers of the given sizes, reads them back, compares.
  void write_read_verify(Host& h, Queue& q, const std::vector<uint32_t>& sizes, uint32_t nsid = 1) {
    std::mt19937 rng(1234);
    uint64_t lba = 0;
    for (uint32_t len : sizes) {
      std::vector<uint8_t> out(len), in(len, 0xee);
      for (auto& b : out) b = static_cast<uint8_t>(rng());
      uint32_t nlb = len / kBlockSize;
      IoWait w;
      w.pending = 1;
      ASSERT_TRUE(host::tcp::submit_write(q, nsid, lba, nlb, out.data(), len, IoWait::cb, &w));
      ASSERT_TRUE(q.wait([&] { return w.pending == 0; }, 5000)) << q.error();
      ASSERT_EQ(w.errors, 0) << "write of " << len << " bytes failed";
      w.pending = 1;
      ASSERT_TRUE(host::tcp::submit_read(q, nsid, lba, nlb, in.data(), len, IoWait::cb, &w));
      ASSERT_TRUE(q.wait([&] { return w.pending == 0; }, 5000)) << q.error();
      ASSERT_EQ(w.errors, 0);
      ASSERT_EQ(0, std::memcmp(out.data(), in.data(), len)) << "data mismatch, " << len << " bytes";
      lba += nlb;
    }
    (void)h;
  }

  static inline std::thread* main_thread_ = nullptr;
  static inline nvmf::Subsystem* subsys_ = nullptr;
  static inline std::shared_ptr<bdev::Bdev> malloc_;
  static inline TcpTransport* transport_ = nullptr;
  static inline uint16_t port_ = 0;
  static inline nvmf::ListenAddress addr_;
};

class TcpE2E : public TcpE2EBase, public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override { use_impl(GetParam()); }
};

TEST_P(TcpE2E, ConnectIdentify) {
  Host h;
  ASSERT_EQ(h.connect(params()), "");
  alignas(4096) uint8_t id[4096];
  ASSERT_EQ(h.identify(1, 0, id), "");
  EXPECT_EQ(std::string(reinterpret_cast<char*>(id + 768)), kNqn);  // SUBNQN
  EXPECT_EQ(h.io_max_icd(), 4096u);
  ASSERT_EQ(h.identify(0, 1, id), "");
  uint64_t nsze;
  std::memcpy(&nsze, id, 8);
  EXPECT_EQ(nsze, kBlocks);
}

class TcpE2EDigest : public TcpE2EBase,
                     public ::testing::WithParamInterface<std::tuple<const char*, bool, bool>> {
 protected:
  void SetUp() override { use_impl(std::get<0>(GetParam())); }
};

TEST_P(TcpE2EDigest, WriteReadPattern) {
  auto [impl, hd, dd] = GetParam();
  Host h;
  ASSERT_EQ(h.connect(params(hd, dd)), "");
  Queue q;
  ASSERT_EQ(h.connect_io_queue(&q, 1, 32), "");
  EXPECT_EQ(q.hdgst(), hd);
  EXPECT_EQ(q.ddgst(), dd);
  // In-capsule (512, 4096), R2T-sized (8 KiB .. 128 KiB).
  write_read_verify(h, q, {512, 4096, 8192, 65536, 131072, 4096 * 3});
  // The malloc namespace: its reads up to 64 KiB leave the target straight
  // from the bdev's memory (digests computed there too), larger ones through
  // the connection's buffer; once sent, no request holds the bdev any more.
  {  // a write opens the queue's channel to it
    std::vector<uint8_t> buf(kBlockSize, 1);
    IoWait w;
    w.pending = 1;
    ASSERT_TRUE(host::tcp::submit_write(q, 2, 0, 1, buf.data(), kBlockSize, IoWait::cb, &w));
    ASSERT_TRUE(q.wait([&] { return w.pending == 0; }, 5000)) << q.error();
  }
  long before = malloc_.use_count();
  write_read_verify(h, q, {4096, 8192, 131072}, 2);
  EXPECT_TRUE(eventually([&] { return malloc_.use_count() == before; }))
      << malloc_.use_count() << " references, " << before << " before";
}

std::string digest_case_name(
    const ::testing::TestParamInfo<std::tuple<const char*, bool, bool>>& info) {
  const auto& [impl, hd, dd] = info.param;
  return std::string(impl) + (hd ? "_hdgst" : "") + (dd ? "_ddgst" : "");
}

INSTANTIATE_TEST_SUITE_P(Digests, TcpE2EDigest,
                         ::testing::Combine(::testing::Values("posix", "uring"), ::testing::Bool(),
                                            ::testing::Bool()),
                         digest_case_name);

TEST_P(TcpE2E, ManyOutstandingIos) {
  Host h;
  ASSERT_EQ(h.connect(params(false, true)), "");
  Queue q;
  ASSERT_EQ(h.connect_io_queue(&q, 1, 64), "");
  constexpr int kIos = 64;
  constexpr uint32_t kLen = 32768;  // needs R2T and a big buffer each
  std::vector<std::vector<uint8_t>> out(kIos, std::vector<uint8_t>(kLen));
  std::vector<std::vector<uint8_t>> in(kIos, std::vector<uint8_t>(kLen));
  for (int i = 0; i < kIos; ++i)
    for (uint32_t j = 0; j < kLen; ++j) out[i][j] = static_cast<uint8_t>(i * 31 + j);
  IoWait w;
  for (int i = 0; i < kIos; ++i) {
    ++w.pending;
    ASSERT_TRUE(
        host::tcp::submit_write(q, 1, 2048 + i * 64, 64, out[i].data(), kLen, IoWait::cb, &w));
  }
  ASSERT_TRUE(q.wait([&] { return w.pending == 0; }, 10000)) << q.error();
  ASSERT_EQ(w.errors, 0) << w.last_error;
  for (int i = 0; i < kIos; ++i) {
    ++w.pending;
    ASSERT_TRUE(
        host::tcp::submit_read(q, 1, 2048 + i * 64, 64, in[i].data(), kLen, IoWait::cb, &w));
  }
  ASSERT_TRUE(q.wait([&] { return w.pending == 0; }, 10000)) << q.error();
  ASSERT_EQ(w.errors, 0);
  for (int i = 0; i < kIos; ++i) ASSERT_EQ(out[i], in[i]) << "I/O " << i;
  IoWait f;
  f.pending = 1;
  ASSERT_TRUE(host::tcp::submit_flush(q, 1, IoWait::cb, &f));
  ASSERT_TRUE(q.wait([&] { return f.pending == 0; }, 5000));
  EXPECT_EQ(f.errors, 0);
}

TEST_P(TcpE2E, DiscoveryLogPage) {
  Host h;
  ConnectParams p = params();
  p.subnqn = nvmf::kDiscoveryNqn;
  ASSERT_EQ(h.connect(p), "");
  std::vector<uint8_t> log(4096);
  ASSERT_EQ(h.get_log_page(0x70, log.data(), 4096), "");
  uint64_t numrec;
  std::memcpy(&numrec, log.data() + 8, 8);
  EXPECT_GE(numrec, 1u);
}

TEST_P(TcpE2E, TermReqOnUnknownPduType) {
  RawClient c(port_);
  ASSERT_TRUE(c.ok());
  c.icreq();
  uint8_t b[24] = {};
  CommonHeader ch{0x08, 0, 24, 0, 24};
  std::memcpy(b, &ch, 8);
  c.send(b, 24);
  c.expect_term(Fes::kInvalidHeaderField, 0);
}

TEST_P(TcpE2E, TermReqOnOversizedICReq) {
  RawClient c(port_);
  uint8_t b[256] = {};
  build_icreq(b, 0, false, false, 0);
  reinterpret_cast<CommonHeader*>(b)->plen = 256;
  c.send(b, 128);
  c.expect_term(Fes::kInvalidHeaderField, offsetof(CommonHeader, plen));
}

TEST_P(TcpE2E, TermReqOnBadPfvAndBadHlen) {
  {
    RawClient c(port_);
    uint8_t b[128];
    build_icreq(b, 0, false, false, 0);
    reinterpret_cast<ICReq*>(b)->pfv = 7;
    c.send(b, 128);
    c.expect_term(Fes::kUnsupportedParameter, offsetof(ICReq, pfv));
  }
  {
    RawClient c(port_);
    c.icreq();
    uint8_t b[128];
    nvme::Sqe sqe{};
    build_capsule_cmd(b, sqe, 0, false, false, 0);
    reinterpret_cast<CommonHeader*>(b)->hlen = 64;
    c.send(b, 72);
    c.expect_term(Fes::kInvalidHeaderField, offsetof(CommonHeader, hlen));
  }
  {
    RawClient c(port_);  // capsule before ICReq
    uint8_t b[128];
    nvme::Sqe sqe{};
    c.send(b, build_capsule_cmd(b, sqe, 0, false, false, 0));
    c.expect_term(Fes::kPduSequenceError);
  }
}

TEST_P(TcpE2E, TermReqOnHeaderDigestMismatch) {
  RawClient c(port_);
  c.icreq(true, false);
  uint8_t b[128];
  nvme::Sqe sqe{};
  size_t n = build_capsule_cmd(b, sqe, 0, true, false, 0);
  b[72] ^= 0xff;  // corrupt the digest
  c.send(b, n);
  c.expect_term(Fes::kHeaderDigestError);
}

TEST_P(TcpE2E, TermReqOnInCapsuleDataTooLarge) {
  Host h;
  ASSERT_EQ(h.connect(params()), "");
  RawClient c(port_);
  c.icreq();
  // I/O queue Connect, then a 16 KiB in-capsule write: over in_capsule_data_size.
  std::vector<uint8_t> pdu(8192 + 2048);
  nvme::Sqe con{};
  con.opc = 0x7f;
  con.nsid = 0x01;
  con.cdw10 = 1u << 16;
  con.cdw11 = 31;
  uint8_t data[1024] = {};
  std::memcpy(data, h.params().hostid.data(), 16);
  uint16_t cntlid = h.cntlid();
  std::memcpy(data + 16, &cntlid, 2);
  std::strcpy(reinterpret_cast<char*>(data + 256), kNqn);
  std::strcpy(reinterpret_cast<char*>(data + 512), h.params().hostnqn.c_str());
  con.dptr.sgl1.length = 1024;
  con.dptr.sgl1.type = kSglInCapsule;
  size_t n = build_capsule_cmd(pdu.data(), con, 1024, false, false, 0);
  std::memcpy(pdu.data() + n, data, 1024);
  c.send(pdu.data(), n + 1024);
  std::vector<uint8_t> resp;
  ASSERT_TRUE(c.recv_pdu(&resp));
  ASSERT_EQ(resp[0], uint8_t(PduType::kCapsuleResp));
  CapsuleResp r;
  std::memcpy(&r, resp.data(), sizeof r);
  ASSERT_EQ(r.cqe.status >> 1, 0) << "I/O Connect failed";

  std::vector<uint8_t> big(16384 + 128);
  nvme::Sqe w{};
  w.opc = 0x01;
  w.nsid = 1;
  w.cdw12 = 31;
  w.dptr.sgl1.length = 16384;
  w.dptr.sgl1.type = kSglInCapsule;
  n = build_capsule_cmd(big.data(), w, 16384, false, false, 0);
  c.send(big.data(), n);
  c.expect_term(Fes::kDataLimitExceeded);
  // The other connection is untouched.
  alignas(4096) uint8_t id[4096];
  EXPECT_EQ(h.identify(1, 0, id), "");
}

TEST_P(TcpE2E, TermReqOnH2CDataBeyondR2T) {
  Host h;
  ASSERT_EQ(h.connect(params()), "");
  RawClient c(port_);
  c.icreq();
  std::vector<uint8_t> pdu(4096);
  nvme::Sqe con{};
  con.opc = 0x7f;
  con.nsid = 0x01;
  con.cdw10 = 2u << 16;
  con.cdw11 = 31;
  uint8_t data[1024] = {};
  std::memcpy(data, h.params().hostid.data(), 16);
  uint16_t cntlid = h.cntlid();
  std::memcpy(data + 16, &cntlid, 2);
  std::strcpy(reinterpret_cast<char*>(data + 256), kNqn);
  std::strcpy(reinterpret_cast<char*>(data + 512), h.params().hostnqn.c_str());
  con.dptr.sgl1.length = 1024;
  con.dptr.sgl1.type = kSglInCapsule;
  size_t n = build_capsule_cmd(pdu.data(), con, 1024, false, false, 0);
  std::memcpy(pdu.data() + n, data, 1024);
  c.send(pdu.data(), n + 1024);
  std::vector<uint8_t> resp;
  ASSERT_TRUE(c.recv_pdu(&resp));
  ASSERT_EQ(resp[0], uint8_t(PduType::kCapsuleResp));

  nvme::Sqe w{};
  w.opc = 0x01;
  w.cid = 5;
  w.nsid = 1;
  w.cdw12 = 15;  // 8 KiB
  w.dptr.sgl1.length = 8192;
  w.dptr.sgl1.type = kSglTransport;
  c.send(pdu.data(), build_capsule_cmd(pdu.data(), w, 0, false, false, 0));
  ASSERT_TRUE(c.recv_pdu(&resp));
  ASSERT_EQ(resp[0], uint8_t(PduType::kR2T));
  R2T r2t;
  std::memcpy(&r2t, resp.data(), sizeof r2t);
  EXPECT_EQ(r2t.cccid, 5);
  EXPECT_EQ(r2t.r2to, 0u);
  EXPECT_EQ(r2t.r2tl, 8192u);
  // 8 KiB + 512 bytes of data: beyond what the R2T asked for.
  std::vector<uint8_t> h2c(24 + 8704);
  build_data(h2c.data(), PduType::kH2CData, 5, r2t.ttag, 0, 8704, pdu_flags::kLastPdu, false, false,
             0);
  c.send(h2c.data(), h2c.size());
  c.expect_term(Fes::kDataOutOfRange);
  alignas(4096) uint8_t id[4096];
  EXPECT_EQ(h.identify(1, 0, id), "");
}

TEST_P(TcpE2E, HostVanishesMidIo) {
  // Connections of earlier tests may still be winding down.
  ASSERT_TRUE(eventually([&] { return transport_->connection_count() == 0; }));
  size_t before = 0;
  {
    // Outlive the queue: its destructor fails the pending writes into w.
    IoWait w;
    std::vector<uint8_t> buf(65536, 0x5a);
    Host h;
    ASSERT_EQ(h.connect(params()), "");
    Queue q;
    ASSERT_EQ(h.connect_io_queue(&q, 1, 32), "");
    for (int i = 0; i < 8; ++i) {
      ++w.pending;
      host::tcp::submit_write(q, 1, i * 128, 128, buf.data(), 65536, IoWait::cb, &w);
    }
    q.poll();  // capsules out, then drop both sockets
    EXPECT_EQ(transport_->connection_count(), before + 2);
  }
  EXPECT_TRUE(eventually([&] { return transport_->connection_count() == before; }))
      << transport_->connection_count() << " connections left";
}

TEST_P(TcpE2E, DisconnectSubsystemDropsHosts) {
  Host h;
  ASSERT_EQ(h.connect(params()), "");
  Queue q;
  ASSERT_EQ(h.connect_io_queue(&q, 1, 8), "");
  transport_->disconnect_subsystem(kNqn);
  EXPECT_TRUE(q.wait([] { return false; }, 2000) == false);
  EXPECT_FALSE(q.ok());
  // The admin connection is dropped asynchronously: it fails soon, not at once.
  alignas(4096) uint8_t id[4096];
  EXPECT_TRUE(eventually([&] { return !h.identify(1, 0, id).empty(); }));
  // A new host can still come in.
  Host h2;
  EXPECT_EQ(h2.connect(params()), "");
}

TEST_P(TcpE2E, StopListenThenListenAgain) {
  Host h;
  ASSERT_EQ(h.connect(params()), "");
  transport_->stop_listen(addr_);
  alignas(4096) uint8_t id[4096];
  EXPECT_TRUE(eventually([&] { return !h.identify(1, 0, id).empty(); }));
  // The listening socket closes on the main reactor, which may run after
  // h's reactor closed h: until then the kernel still completes handshakes.
  EXPECT_TRUE(eventually([&] {
    Host h2;
    return !h2.connect(params()).empty();
  }));
  ASSERT_EQ(transport_->listen(addr_), "");
  Host h3;
  EXPECT_EQ(h3.connect(params()), "");
}

// Not a benchmark (nvemu-perf is), a smoke check that the queue keeps many
// commands in flight; prints what it saw.
TEST_P(TcpE2E, SustainedQueueDepth) {
  Host h;
  ASSERT_EQ(h.connect(params()), "");
  Queue q;
  ASSERT_EQ(h.connect_io_queue(&q, 1, 32), "");
  struct Run {
    Queue* q;
    uint32_t len;
    bool write;
    uint64_t done = 0;
    int errors = 0;
    std::vector<uint8_t> buf;
    uint64_t next_lba = 0;
    static void cb(void* ctx, const nvme::Cqe& c) {
      auto* r = static_cast<Run*>(ctx);
      ++r->done;
      if (!host::tcp::cqe_ok(c)) ++r->errors;
      r->submit();
    }
    void submit() {
      if (len == 0) return;  // draining
      uint32_t nlb = len / kBlockSize;
      uint64_t lba = next_lba;
      next_lba = (next_lba + nlb) % (kBlocks - nlb);
      bool ok = write ? host::tcp::submit_write(*q, 1, lba, nlb, buf.data(), len, cb, this)
                      : host::tcp::submit_read(*q, 1, lba, nlb, buf.data(), len, cb, this);
      (void)ok;
    }
  };
  for (auto [len, write] :
       {std::pair<uint32_t, bool>{4096, false}, {4096, true}, {131072, false}, {131072, true}}) {
    Run r{&q, len, write};
    r.buf.resize(len, 0x3c);
    for (int i = 0; i < 32; ++i) r.submit();
    auto t0 = std::chrono::steady_clock::now();
    q.wait([&] { return std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(200); },
           1000);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uint64_t before = r.done;
    uint32_t io_len = r.len;
    r.len = 0;  // drain: completions stop resubmitting
    ASSERT_TRUE(q.wait([&] { return q.outstanding() == 0; }, 5000)) << q.error();
    EXPECT_EQ(r.errors, 0);
    std::printf("  %s %6u B QD32: %8.0f IOPS %8.1f MiB/s\n", write ? "write" : "read ", len,
                before / s, before * io_len / s / 1048576.0);
  }
}

INSTANTIATE_TEST_SUITE_P(SockImpl, TcpE2E, ::testing::Values("posix", "uring"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           return std::string(i.param);
                         });
