#include "host/tcp/host.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace nvemu::host::tcp {

namespace {

constexpr uint8_t kFabrics = 0x7f;
constexpr uint8_t kFctPropertySet = 0x00;
constexpr uint8_t kFctConnect = 0x01;
constexpr uint8_t kFctPropertyGet = 0x04;
constexpr uint32_t kRegCap = 0x00;
constexpr uint32_t kRegCc = 0x14;
constexpr uint32_t kRegCsts = 0x1c;

// Connect command data (NVMe-oF 1.1, Figure 21).
struct ConnectData {
  uint8_t hostid[16];
  uint16_t cntlid;
  uint8_t reserved0[238];
  char subnqn[256];
  char hostnqn[256];
  uint8_t reserved1[256];
};
static_assert(sizeof(ConnectData) == 1024);
static_assert(offsetof(ConnectData, cntlid) == 16);
static_assert(offsetof(ConnectData, subnqn) == 256);
static_assert(offsetof(ConnectData, hostnqn) == 512);

nvme::Sqe fabrics_sqe(uint8_t fctype) {
  nvme::Sqe s{};
  s.opc = kFabrics;
  s.nsid = fctype;  // FCTYPE is byte 4
  return s;
}

std::string check(const std::string& err, const nvme::Cqe& c, const char* what) {
  if (!err.empty()) return std::string(what) + ": " + err;
  if (!cqe_ok(c)) return std::string(what) + " failed: " + cqe_status_string(c);
  return "";
}

}  // namespace

std::string cqe_status_string(const nvme::Cqe& c) {
  return fmt::format("SCT {:#x} SC {:#04x}{}", c.sct(), c.sc(), c.dnr() ? " DNR" : "");
}

std::string Host::admin_cmd(const nvme::Sqe& sqe, void* buf, uint32_t len, Dir dir,
                            nvme::Cqe* cqe) {
  nvme::Cqe c{};
  std::string err = admin_.exec(sqe, buf, len, dir, &c, params_.timeout_ms);
  if (cqe) *cqe = c;
  return err;
}

std::string Host::fabrics_connect(Queue& q, uint16_t qid, uint16_t depth, uint16_t cntlid,
                                  uint16_t* cntlid_out) {
  nvme::Sqe s = fabrics_sqe(kFctConnect);
  s.cdw10 = static_cast<uint32_t>(qid) << 16;  // RECFMT 0
  s.cdw11 = static_cast<uint32_t>(depth - 1) | (params_.disable_sqflow ? 0x4u << 16 : 0);
  s.cdw12 = params_.kato_ms;
  ConnectData d{};
  std::memcpy(d.hostid, params_.hostid.data(), 16);
  d.cntlid = cntlid;
  std::strncpy(d.subnqn, params_.subnqn.c_str(), sizeof d.subnqn - 1);
  std::strncpy(d.hostnqn, params_.hostnqn.c_str(), sizeof d.hostnqn - 1);
  nvme::Cqe c{};
  std::string err =
      check(q.exec(s, &d, sizeof d, Dir::kToController, &c, params_.timeout_ms), c, "Connect");
  if (!err.empty()) return err;
  if (cntlid_out) *cntlid_out = static_cast<uint16_t>(c.cdw0 & 0xffff);
  // AUTHREQ (ATR bit 17 / ASCR bit 18): the controller requires in-band
  // authentication before this queue may be used.
  if (c.cdw0 & (3u << 17)) return authenticate(q, qid);
  return "";
}

std::string Host::connect(const ConnectParams& p) {
  params_ = p;
  QueueOptions qo;
  qo.hdgst = p.hdgst;
  qo.ddgst = p.ddgst;
  qo.depth = p.admin_depth;
  qo.max_icd = wire::tcp::kAdminInCapsuleSize;
  qo.connect_timeout_ms = p.timeout_ms;
  qo.src_addr = p.src_addr;
  std::string err = admin_.connect(p.traddr, p.port, qo);
  if (!err.empty()) return err;
  err = fabrics_connect(admin_, 0, p.admin_depth, 0xffff, &cntlid_);
  if (!err.empty()) return err;
  if (!p.enable) return "";

  uint64_t cap = 0;
  if (!(err = property_get(kRegCap, true, &cap)).empty()) return err;
  // CC: EN, NVM command set, 4 KiB pages, 64-byte SQEs (IOSQES 6) and
  // 16-byte CQEs (IOCQES 4).
  uint64_t cc = 1u | (6u << 16) | (4u << 20);
  if (!(err = property_set(kRegCc, false, cc)).empty()) return err;
  // CAP.TO is in 500 ms units.
  uint64_t to_ms = std::max<uint64_t>(((cap >> 24) & 0xff) * 500, 500);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(to_ms);
  for (;;) {
    uint64_t csts = 0;
    if (!(err = property_get(kRegCsts, false, &csts)).empty()) return err;
    if (csts & 0x2) return "controller fatal status (CSTS.CFS) after enable";
    if (csts & 0x1) break;
    if (std::chrono::steady_clock::now() > deadline)
      return "controller did not become ready (CSTS.RDY) within CAP.TO";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  alignas(4096) static thread_local uint8_t id[4096];
  if (identify(1, 0, id).empty()) {
    uint32_t ioccsz;
    std::memcpy(&ioccsz, id + 1792, 4);
    io_max_icd_ = ioccsz >= 4 ? ioccsz * 16 - 64 : 0;
  }
  return "";
}

std::string Host::connect_io_queue(Queue* q, uint16_t qid, uint16_t depth) {
  QueueOptions qo;
  qo.hdgst = params_.hdgst;
  qo.ddgst = params_.ddgst;
  qo.depth = depth;
  qo.max_icd = io_max_icd_;
  qo.connect_timeout_ms = params_.timeout_ms;
  qo.src_addr = params_.src_addr;
  std::string err = q->connect(params_.traddr, params_.port, qo);
  if (!err.empty()) return err;
  return fabrics_connect(*q, qid, depth, cntlid_, nullptr);
}

void Host::disconnect() {
  admin_.close();
}

std::string Host::property_get(uint32_t offset, bool eight_bytes, uint64_t* value) {
  nvme::Sqe s = fabrics_sqe(kFctPropertyGet);
  s.cdw10 = eight_bytes ? 1 : 0;  // ATTRIB.SIZE
  s.cdw11 = offset;
  nvme::Cqe c{};
  std::string err = check(admin_cmd(s, nullptr, 0, Dir::kNone, &c), c, "Property Get");
  if (err.empty()) *value = c.cdw0 | (eight_bytes ? static_cast<uint64_t>(c.cdw1) << 32 : 0);
  return err;
}

std::string Host::property_set(uint32_t offset, bool eight_bytes, uint64_t value) {
  nvme::Sqe s = fabrics_sqe(kFctPropertySet);
  s.cdw10 = eight_bytes ? 1 : 0;
  s.cdw11 = offset;
  s.cdw12 = static_cast<uint32_t>(value);
  s.cdw13 = static_cast<uint32_t>(value >> 32);
  nvme::Cqe c{};
  return check(admin_cmd(s, nullptr, 0, Dir::kNone, &c), c, "Property Set");
}

std::string Host::identify(uint8_t cns, uint32_t nsid, void* buf4096) {
  nvme::Sqe s{};
  s.opc = 0x06;
  s.nsid = nsid;
  s.cdw10 = cns;
  nvme::Cqe c{};
  return check(admin_cmd(s, buf4096, 4096, Dir::kFromController, &c), c, "Identify");
}

std::string Host::get_log_page(uint8_t lid, void* buf, uint32_t len, uint64_t offset,
                               uint32_t nsid) {
  if (len < 4 || len % 4) return "Get Log Page: length must be a non-zero multiple of 4";
  uint32_t numd = len / 4 - 1;  // 0's based dwords
  nvme::Sqe s{};
  s.opc = 0x02;
  s.nsid = nsid;
  s.cdw10 = lid | ((numd & 0xffff) << 16);
  s.cdw11 = numd >> 16;
  s.cdw12 = static_cast<uint32_t>(offset);
  s.cdw13 = static_cast<uint32_t>(offset >> 32);
  nvme::Cqe c{};
  return check(admin_cmd(s, buf, len, Dir::kFromController, &c), c, "Get Log Page");
}

std::string Host::keep_alive() {
  nvme::Sqe s{};
  s.opc = 0x18;
  nvme::Cqe c{};
  return check(admin_cmd(s, nullptr, 0, Dir::kNone, &c), c, "Keep Alive");
}

namespace {
nvme::Sqe rw_sqe(uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb) {
  nvme::Sqe s{};
  s.opc = opc;
  s.nsid = nsid;
  s.cdw10 = static_cast<uint32_t>(slba);
  s.cdw11 = static_cast<uint32_t>(slba >> 32);
  s.cdw12 = nlb - 1;  // NLB is 0's based
  return s;
}
}  // namespace

bool submit_read(Queue& q, uint32_t nsid, uint64_t slba, uint32_t nlb, void* buf, uint32_t len,
                 CompletionFn fn, void* ctx) {
  return q.submit(rw_sqe(0x02, nsid, slba, nlb), buf, len, Dir::kFromController, fn, ctx);
}

bool submit_write(Queue& q, uint32_t nsid, uint64_t slba, uint32_t nlb, const void* buf,
                  uint32_t len, CompletionFn fn, void* ctx) {
  return q.submit(rw_sqe(0x01, nsid, slba, nlb), const_cast<void*>(buf), len, Dir::kToController,
                  fn, ctx);
}

bool submit_flush(Queue& q, uint32_t nsid, CompletionFn fn, void* ctx) {
  nvme::Sqe s{};
  s.opc = 0x00;
  s.nsid = nsid;
  return q.submit(s, nullptr, 0, Dir::kNone, fn, ctx);
}

}  // namespace nvemu::host::tcp
