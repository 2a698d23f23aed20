// Asynchronous events from the remote controller. One Asynchronous Event
// Request stays outstanding on the admin queue; a Namespace Attribute
// Changed notice reads the Changed Namespace List (which re-arms the
// remote's notices) and re-identifies the active namespaces: new ones become
// bdevs, gone ones are removed from the bdev registry (and so from any
// subsystem of ours that exports them).
#include <cstring>

#include "bdev/nvme/ctrlr.h"
#include "common/log.h"

namespace nvemu::bdev::nvme {
namespace {

namespace n = ::nvemu::nvme;

constexpr uint8_t kOpcGetLogPage = 0x02;
constexpr uint8_t kOpcIdentify = 0x06;
constexpr uint8_t kOpcSetFeatures = 0x09;
constexpr uint8_t kOpcAer = 0x0c;
constexpr uint8_t kFidAsyncEventConfig = 0x0b;
constexpr uint8_t kLidChangedNsList = 0x04;
constexpr uint8_t kAenTypeNotice = 0x2;
constexpr uint8_t kAenNsAttrChanged = 0x0;

n::Sqe identify_sqe(uint8_t cns, uint32_t nsid) {
  n::Sqe s{};
  s.opc = kOpcIdentify;
  s.nsid = nsid;
  s.cdw10 = cns;
  return s;
}

bool ok(const n::Cqe& c) {
  return (c.status >> 1) == 0;
}

}  // namespace

// One rescan: buffers for its commands and what it learned so far.
struct Rescan {
  std::weak_ptr<Ctrlr> ctrlr;
  uint8_t buf[4096];
  std::vector<uint32_t> active, todo;
  std::vector<NsInfo> found;

  static void next(const std::shared_ptr<Rescan>& r) {
    auto c = r->ctrlr.lock();
    if (!c) return;
    if (r->todo.empty()) {
      // Keep what we know of namespaces still active, add the new ones.
      std::vector<NsInfo> list;
      for (uint32_t id : r->active) {
        bool known = false;
        for (const auto& ns : c->info_.namespaces)
          if (ns.nsid == id) {
            list.push_back(ns);
            known = true;
          }
        if (!known)
          for (const auto& ns : r->found)
            if (ns.nsid == id) list.push_back(ns);
      }
      c->info_.namespaces = list;
      c->apply_namespaces(list);
      return;
    }
    uint32_t nsid = r->todo.back();
    r->todo.pop_back();
    c->admin_cmd(identify_sqe(0, nsid), r->buf, 4096, [r, nsid](const n::Cqe& cqe) {
      NsInfo ns;
      if (ok(cqe) && parse_identify_ns(r->buf, nsid, &ns)) {
        auto c = r->ctrlr.lock();
        if (!c) return;
        c->admin_cmd(identify_sqe(3, nsid), r->buf, 4096, [r, ns](const n::Cqe& cqe) mutable {
          if (ok(cqe)) ns.uuid = parse_ns_uuid(r->buf);
          r->found.push_back(ns);
          next(r);
        });
        return;
      }
      next(r);
    });
  }
};

void Ctrlr::arm_aer() {
  // Namespace attribute notices on (Asynchronous Event Configuration bit 8),
  // then one AER outstanding.
  n::Sqe sf{};
  sf.opc = kOpcSetFeatures;
  sf.cdw10 = kFidAsyncEventConfig;
  sf.cdw11 = 1u << 8;
  admin_cmd(sf, nullptr, 0, [](const n::Cqe&) {});
  n::Sqe s{};
  s.opc = kOpcAer;
  std::weak_ptr<Ctrlr> weak = weak_from_this();
  admin_cmd(s, nullptr, 0, [weak](const n::Cqe& cqe) {
    if (auto c = weak.lock()) c->on_aer(cqe);
  });
}

void Ctrlr::on_aer(const n::Cqe& cqe) {
  if (!ok(cqe)) return;  // aborted with the connection; re-armed on reconnect
  uint8_t type = cqe.cdw0 & 0x7, info = (cqe.cdw0 >> 8) & 0xff;
  uint8_t lid = (cqe.cdw0 >> 16) & 0xff;
  LOG_INFO("bdev_nvme", "{}: async event type {} info {} log page {:#x}", name_, type, info, lid);
  // Re-arm first: the next event must not wait for this one's handling.
  n::Sqe s{};
  s.opc = kOpcAer;
  std::weak_ptr<Ctrlr> weak = weak_from_this();
  admin_cmd(s, nullptr, 0, [weak](const n::Cqe& c) {
    if (auto self = weak.lock()) self->on_aer(c);
  });
  if (type == kAenTypeNotice && info == kAenNsAttrChanged) rescan();
}

void Ctrlr::rescan() {
  auto r = std::make_shared<Rescan>();
  r->ctrlr = weak_from_this();
  // Reading the Changed Namespace List (RAE 0) lets the remote report the
  // next change; the list itself may overflow, so the active list decides.
  n::Sqe log{};
  log.opc = kOpcGetLogPage;
  log.nsid = 0xffffffff;
  log.cdw10 = kLidChangedNsList | ((4096 / 4 - 1) << 16);
  admin_cmd(log, r->buf, 4096, [r](const n::Cqe&) {
    auto c = r->ctrlr.lock();
    if (!c) return;
    c->admin_cmd(identify_sqe(2, 0), r->buf, 4096, [r](const n::Cqe& cqe) {
      auto c = r->ctrlr.lock();
      if (!c || !ok(cqe)) return;
      for (int i = 0; i < 1024; ++i) {
        uint32_t id;
        std::memcpy(&id, r->buf + i * 4, 4);
        if (!id) break;
        r->active.push_back(id);
        bool known = false;
        for (const auto& ns : c->info_.namespaces) known |= ns.nsid == id;
        if (!known) r->todo.push_back(id);
      }
      Rescan::next(r);
    });
  });
}

}  // namespace nvemu::bdev::nvme
