// The NVMe/TCP path: host::tcp::Host for the admin queue, one host::tcp::Queue
// per I/O qpair. Data moves between the socket and the caller's buffers
// without a copy, except a read into several iovecs (the receive side fills
// one buffer): that one goes through a per-slot bounce buffer.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "bdev/nvme/path.h"
#include "common/iov_copy.h"
#include "host/tcp/host.h"

namespace nvemu::bdev::nvme {
namespace {

using host::tcp::Dir;
namespace n = ::nvemu::nvme;

// The initiator reports failures as text; the errno behind them is what
// the RPC answers with.
int errno_of(const std::string& why) {
  if (why.find("Connection refused") != std::string::npos) return ECONNREFUSED;
  if (why.find("Cannot assign requested address") != std::string::npos) return EADDRNOTAVAIL;
  if (why.find("timed out") != std::string::npos || why.find("no ICResp") != std::string::npos)
    return ETIMEDOUT;
  if (why.find("SC 0x84") != std::string::npos) return EPERM;
  if (why.find("DH-HMAC-CHAP") != std::string::npos) return EACCES;
  if (why.find("SC 0x82") != std::string::npos) return ENODEV;
  if (why.find("resolve") != std::string::npos || why.find("address") != std::string::npos)
    return EINVAL;
  return EIO;
}

std::string explain(const Trid& t, const PathOptions& o, const std::string& why) {
  std::string where = fmt::format("{}:{}", t.traddr, t.trsvcid);
  if (why.find("SC 0x84") != std::string::npos)
    return fmt::format(
        "subsystem {} at {} refused host {} ({}); allow it there with nvmf_subsystem_add_host "
        "or allow_any_host, or attach with the hostnqn it allows",
        t.subnqn, where, o.hostnqn, why);
  if (why.find("DH-HMAC-CHAP") != std::string::npos)
    return fmt::format(
        "subsystem {} at {} did not authenticate host {} ({}); check that dhchap_key holds the "
        "secret the target has for this host (and dhchap_ctrlr_key the target's)",
        t.subnqn, where, o.hostnqn, why);
  if (why.find("SC 0x82") != std::string::npos)
    return fmt::format(
        "no subsystem {} at {} ({}); check subnqn against nvmf_get_subsystems on that target",
        t.subnqn, where, why);
  if (why.find("bind to") != std::string::npos)
    return fmt::format("cannot use hostaddr {} ({}); give an address of this machine", t.hostaddr,
                       why);
  if (why.find("Connection refused") != std::string::npos)
    return fmt::format(
        "nothing listens at {} ({}); check traddr/trsvcid and the target's "
        "listeners (nvmf_subsystem_add_listener)",
        where, why);
  return fmt::format("cannot attach {} at {}: {}", t.subnqn, where, why);
}

class TcpQpair final : public IoQpair {
 public:
  explicit TcpQpair(uint16_t depth) : bounce_(depth) {
    for (auto& b : bounce_) b.ctx_owner = this;
  }
  // Closing completes what is still out, bounced commands included: while
  // their slots still exist.
  ~TcpQpair() override { q.close(); }
  host::tcp::Queue q;

  bool submit(uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb, const struct iovec* iovs,
              int iovcnt, uint32_t len, IoCallback cb, void* ctx) override {
    n::Sqe s{};
    s.opc = opc;
    s.nsid = nsid;
    set_io_dwords(&s, opc, slba, nlb);
    Dir dir = !len                      ? Dir::kNone
              : data_to_controller(opc) ? Dir::kToController
                                        : Dir::kFromController;
    void* buf = nullptr;
    if (len && iovcnt == 1 && iovs[0].iov_len >= len) {
      buf = iovs[0].iov_base;
      return q.submit(s, buf, len, dir, cb, ctx);
    }
    if (!len) return q.submit(s, nullptr, 0, dir, cb, ctx);
    // A scattered write goes out from where its pieces lie.
    if (dir == Dir::kToController && iovcnt <= host::tcp::Queue::kMaxIov)
      return q.submit_iov(s, iovs, iovcnt, len, cb, ctx);
    // A scattered read (the receive side takes one buffer), or a write in
    // too many pieces: a bounce slot holds the data and the completion.
    Bounce* b = take_bounce(len);
    if (!b) return false;
    b->cb = cb;
    b->ctx = ctx;
    b->iovs = iovs;
    b->iovcnt = iovcnt;
    b->len = len;
    b->read = opc == 0x02;
    if (!b->read) iov_copy(iovs, iovcnt, b->data.data(), len, true);
    if (!q.submit(s, b->data.data(), len, dir, &TcpQpair::bounce_done, b)) {
      b->busy = false;
      return false;
    }
    return true;
  }
  int poll() override { return q.poll(); }
  int fd() const override { return q.fd(); }
  uint32_t outstanding() const override { return q.outstanding(); }
  bool failed() const override { return !q.ok(); }
  std::string error() const override { return q.error(); }

 private:
  struct Bounce {
    TcpQpair* ctx_owner = nullptr;
    bool busy = false, read = false;
    std::vector<uint8_t> data;
    IoCallback cb = nullptr;
    void* ctx = nullptr;
    const struct iovec* iovs = nullptr;
    int iovcnt = 0;
    uint32_t len = 0;
  };
  Bounce* take_bounce(uint32_t len) {
    for (auto& b : bounce_) {
      if (b.busy) continue;
      // Sized on first use, up to the largest transfer seen: no allocation
      // once the stream's sizes have been met.
      if (b.data.size() < len) b.data.resize(std::max<size_t>(len, 4096));
      b.busy = true;
      return &b;
    }
    return nullptr;
  }
  static void bounce_done(void* p, const n::Cqe& cqe) {
    auto* b = static_cast<Bounce*>(p);
    if (b->read && (cqe.status >> 1) == 0)
      iov_copy(b->iovs, b->iovcnt, b->data.data(), b->len, false);
    b->busy = false;
    b->cb(b->ctx, cqe);
  }
  std::vector<Bounce> bounce_;
};

class TcpAdminPath final : public AdminPath {
 public:
  TcpAdminPath(Trid t, PathOptions o) : trid_(std::move(t)), opts_(std::move(o)) {}

  std::string connect(int* err_no) {
    host::tcp::ConnectParams p;
    p.traddr = trid_.traddr;
    p.port = static_cast<uint16_t>(std::stoul(trid_.trsvcid));
    p.subnqn = trid_.subnqn;
    if (!opts_.hostnqn.empty()) p.hostnqn = opts_.hostnqn;
    opts_.hostnqn = p.hostnqn;
    p.hdgst = opts_.hdgst;
    p.ddgst = opts_.ddgst;
    p.kato_ms = opts_.kato_ms;
    p.timeout_ms = opts_.timeout_ms;
    // hostaddr binds each connection's local end; hostsvcid, a port, fits
    // one connection only, so it is recorded and not bound.
    p.src_addr = trid_.hostaddr;
    if (opts_.dhchap_key) p.dhchap_key = opts_.dhchap_key->secret;
    if (opts_.dhchap_ctrlr_key) p.dhchap_ctrlr_key = opts_.dhchap_ctrlr_key->secret;
    p.dhchap_digests = opts_.dhchap_digests;
    p.dhchap_dhgroups = opts_.dhchap_dhgroups;
    std::string err = host_.connect(p);
    if (!err.empty()) {
      *err_no = errno_of(err);
      host_.disconnect();
      return explain(trid_, opts_, err);
    }
    return "";
  }

  std::string bring_up(CtrlrInfo* info) override {
    alignas(4096) static thread_local uint8_t buf[4096];
    std::string err = host_.identify(1, 0, buf);
    if (!err.empty()) return err;
    parse_identify_ctrlr(buf, info);
    uint64_t cap = 0;
    if (host_.property_get(0, true, &cap).empty())
      info->io_depth = static_cast<uint16_t>(std::min<uint64_t>(128, (cap & 0xffff) + 1));
    // Active namespace list (CNS 02h); nvemu targets serve far fewer than 1024.
    std::vector<uint32_t> ids;
    err = active_list(&ids);
    if (!err.empty()) return err;
    for (uint32_t nsid : ids) {
      NsInfo ns;
      bool active = false;
      err = identify_ns(nsid, &ns, &active);
      if (!err.empty()) return err;
      if (active) info->namespaces.push_back(ns);
    }
    return "";
  }

  std::string active_list(std::vector<uint32_t>* ids) {
    alignas(4096) uint8_t buf[4096];
    std::string err = host_.identify(2, 0, buf);
    if (!err.empty()) return err;
    for (int i = 0; i < 1024; ++i) {
      uint32_t id;
      std::memcpy(&id, buf + i * 4, 4);
      if (!id) break;
      ids->push_back(id);
    }
    return "";
  }

  std::string identify_ns(uint32_t nsid, NsInfo* out, bool* active) override {
    alignas(4096) uint8_t buf[4096];
    std::string err = host_.identify(0, nsid, buf);
    if (!err.empty()) return err;
    *active = parse_identify_ns(buf, nsid, out);
    if (*active && host_.identify(3, nsid, buf).empty()) out->uuid = parse_ns_uuid(buf);
    return "";
  }

  std::unique_ptr<IoQpair> create_io_qpair(uint16_t qid, uint16_t depth,
                                           std::string* error) override {
    auto qp = std::make_unique<TcpQpair>(depth);
    std::string err = host_.connect_io_queue(&qp->q, qid, depth);
    if (!err.empty()) {
      *error = fmt::format("I/O qpair {} to {}:{}: {}", qid, trid_.traddr, trid_.trsvcid, err);
      return nullptr;
    }
    return qp;
  }

  bool submit_admin(const n::Sqe& sqe, void* buf, uint32_t len, bool to_ctrlr,
                    AdminCallback cb) override {
    auto* held = new AdminCallback(std::move(cb));
    Dir dir = !len ? Dir::kNone : to_ctrlr ? Dir::kToController : Dir::kFromController;
    bool ok = host_.admin().submit(
        sqe, buf, len, dir,
        [](void* ctx, const n::Cqe& c) {
          std::unique_ptr<AdminCallback> fn(static_cast<AdminCallback*>(ctx));
          (*fn)(c);
        },
        held);
    if (!ok) delete held;
    return ok;
  }
  int poll() override { return host_.admin().poll(); }
  bool failed() const override { return !const_cast<host::tcp::Host&>(host_).admin().ok(); }
  int fd() const override { return const_cast<host::tcp::Host&>(host_).admin().fd(); }
  std::string error() const override { return const_cast<host::tcp::Host&>(host_).admin().error(); }
  ~TcpAdminPath() override { host_.disconnect(); }

 private:
  Trid trid_;
  PathOptions opts_;
  host::tcp::Host host_;
};

}  // namespace

std::unique_ptr<AdminPath> connect_tcp(const Trid& trid, const PathOptions& opts,
                                       std::string* error, int* err_no) {
  auto p = std::make_unique<TcpAdminPath>(trid, opts);
  *error = p->connect(err_no);
  if (!error->empty()) return nullptr;
  return p;
}

}  // namespace nvemu::bdev::nvme
