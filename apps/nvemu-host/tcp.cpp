// An NVMe/TCP controller through host/tcp: admin queue plus I/O queue 1.
#include <fmt/format.h>

#include <charconv>

#include "host/tcp/host.h"
#include "host_ctrl.h"

namespace nvemu::hosttool {

namespace {

using host::tcp::Queue;

constexpr uint16_t kDepth = 32;
constexpr int kTimeoutMs = 30000;

struct Wait {
  bool done = false;
  nvme::Cqe cqe{};
  static void cb(void* ctx, const nvme::Cqe& c) {
    auto* w = static_cast<Wait*>(ctx);
    w->cqe = c;
    w->done = true;
  }
};

class TcpCtrl final : public HostCtrl {
 public:
  std::string attach(const Trid& t, const std::string& hostnqn) {
    host::tcp::ConnectParams p;
    p.traddr = t.traddr;
    uint16_t port = 0;
    auto [end, ec] = std::from_chars(t.trsvcid.data(), t.trsvcid.data() + t.trsvcid.size(), port);
    if (ec != std::errc() || end != t.trsvcid.data() + t.trsvcid.size() || port == 0)
      return fmt::format("trsvcid '{}' is not a port number", t.trsvcid);
    p.port = port;
    p.subnqn = t.subnqn;
    if (!hostnqn.empty()) p.hostnqn = hostnqn;
    p.timeout_ms = kTimeoutMs;
    if (auto err = host_.connect(p); !err.empty()) return err;
    connected_ = true;
    return host_.connect_io_queue(&io_, 1, kDepth);
  }

  std::string identify(uint8_t cns, uint32_t nsid, void* buf4k) override {
    return host_.identify(cns, nsid, buf4k);
  }

  std::string rw(bool write, uint32_t nsid, uint64_t lba, uint32_t nblocks, void* buf,
                 uint32_t len) override {
    Wait w;
    bool ok = write ? host::tcp::submit_write(io_, nsid, lba, nblocks, buf, len, Wait::cb, &w)
                    : host::tcp::submit_read(io_, nsid, lba, nblocks, buf, len, Wait::cb, &w);
    if (!ok) return fmt::format("I/O queue refused the command: {}", io_.error());
    if (!io_.wait([&] { return w.done; }, kTimeoutMs))
      return fmt::format("{} timed out: {}", write ? "Write" : "Read", io_.error());
    if (!host::tcp::cqe_ok(w.cqe))
      return fmt::format("{} failed: {}", write ? "Write" : "Read",
                         host::tcp::cqe_status_string(w.cqe));
    return "";
  }

  std::string io_cmd(const char* name, const nvme::Sqe& sqe, const void* buf,
                     uint32_t len) override {
    nvme::Cqe cqe{};
    auto dir = len ? host::tcp::Dir::kToController : host::tcp::Dir::kNone;
    std::string err = io_.exec(sqe, const_cast<void*>(buf), len, dir, &cqe, kTimeoutMs);
    if (!err.empty()) return fmt::format("{}: {}", name, err);
    if (!host::tcp::cqe_ok(cqe))
      return fmt::format("{} failed: {}", name, host::tcp::cqe_status_string(cqe));
    return "";
  }

  uint32_t max_transfer() const override { return 128 * 1024; }

  std::string tick() override {
    // A dead connection shows here; keep-alive is only needed with a KATO.
    if (io_.poll() < 0) return io_.error();
    return "";
  }

  void close() override {
    if (!connected_) return;
    io_.close();
    host_.disconnect();
    connected_ = false;
  }

  ~TcpCtrl() override { close(); }

 private:
  host::tcp::Host host_;
  Queue io_;
  bool connected_ = false;
};

}  // namespace

std::unique_ptr<HostCtrl> open_tcp(const Trid& t, const std::string& hostnqn, std::string* error) {
  auto c = std::make_unique<TcpCtrl>();
  std::string err = c->attach(t, hostnqn);
  if (!err.empty()) {
    *error = fmt::format("NVMe/TCP {}:{} {}: {}", t.traddr, t.trsvcid, t.subnqn, err);
    return nullptr;
  }
  return c;
}

}  // namespace nvemu::hosttool
