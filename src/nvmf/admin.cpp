// Admin command set (NVMe Base 2.0, 5): dispatch through the opcode table,
// Identify, Abort, Keep Alive and the PCIe queue commands. Logs, features
// and AERs have files of their own.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "nvme/identify.h"
#include "nvme/nvm.h"
#include "nvmf/controller.h"
#include "nvmf/fault.h"
#include "nvmf/opcodes.h"
#include "nvmf/poll_group.h"
#include "nvmf/target.h"
#include "reactor/reactor.h"

#ifndef NVEMU_VERSION
#define NVEMU_VERSION "0.0.0"
#endif

namespace nvemu::nvmf {

using nvme::Status;
namespace op = nvme::admin_opc;

namespace {

constexpr uint16_t kVendorId = 0x1b36;  // Red Hat / QEMU: the emulated-device vendor ID
constexpr uint8_t kIeeeOui[3] = {0x00, 0x54, 0x52};  // 52:54:00, LSB first, as QEMU
constexpr uint8_t kAcl = 3;                          // 4 concurrent Aborts (0-based)
constexpr uint8_t kAerl = 3;                         // 4 outstanding AERs (0-based)
constexpr uint8_t kElpe = 63;                        // 64 Error log entries (0-based)
constexpr uint16_t kKas = 10;                        // keep-alive granularity: 10 x 100 ms

struct AdminTable {
  std::array<OpcodeInfo, 256> ops{};
  std::array<OpcodeInfo, 256> io{};
  AdminTable() {
    using nvme::effects::kCsupp;
    using nvme::effects::kLbcc;
    auto add = [&](uint8_t opc, bool pcie_only, bool discovery, uint32_t effects = 0) {
      ops[opc] = {true, kCsupp | effects, pcie_only, discovery};
    };
    add(op::kDeleteIoSq, true, false);
    add(op::kCreateIoSq, true, false);
    add(op::kGetLogPage, false, true);
    add(op::kDeleteIoCq, true, false);
    add(op::kCreateIoCq, true, false);
    add(op::kIdentify, false, true);
    add(op::kAbort, false, false);
    add(op::kSetFeatures, false, true);
    add(op::kGetFeatures, false, true);
    add(op::kAsyncEventRequest, false, true);
    add(op::kKeepAlive, false, true);
    namespace nop = nvme::nvm_opc;
    io[nop::kFlush] = {true, kCsupp | kLbcc};
    io[nop::kWrite] = {true, kCsupp | kLbcc};
    io[nop::kRead] = {true, kCsupp};
    io[nop::kCompare] = {true, kCsupp};
    io[nop::kWriteZeroes] = {true, kCsupp | kLbcc};
    io[nop::kDatasetManagement] = {true, kCsupp | kLbcc};
  }
};
const AdminTable& table() {
  static const AdminTable t;
  return t;
}

void pad(char* dst, size_t n, const std::string& s) {
  std::memset(dst, ' ', n);
  std::memcpy(dst, s.data(), std::min(n, s.size()));
}

bool parse_uuid(const std::string& text, uint8_t out[16]) {
  size_t j = 0;
  for (size_t i = 0; i < text.size() && j < 32; ++i) {
    char c = text[i];
    if (c == '-') continue;
    int v = std::isxdigit(static_cast<unsigned char>(c))
                ? (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c | 0x20) - 'a' + 10)
                : -1;
    if (v < 0) return false;
    if (j % 2 == 0)
      out[j / 2] = static_cast<uint8_t>(v << 4);
    else
      out[j / 2] |= static_cast<uint8_t>(v);
    ++j;
  }
  return j == 32;
}

uint8_t log2u(uint64_t v) {
  uint8_t n = 0;
  while (v > 1) {
    v >>= 1;
    ++n;
  }
  return n;
}

}  // namespace

const OpcodeInfo& admin_opcode(uint8_t opc) {
  return table().ops[opc];
}
const OpcodeInfo& io_opcode(uint8_t opc) {
  return table().io[opc];
}

void fill_effects_log(nvme::CommandsEffectsLog& log, bool pcie, bool discovery) {
  std::memset(&log, 0, sizeof log);
  for (int i = 0; i < 256; ++i) {
    const OpcodeInfo& a = table().ops[i];
    if (a.supported && (pcie || !a.pcie_only) && (!discovery || a.discovery))
      log.admin[i] = a.effects;
    if (!discovery) log.io[i] = table().io[i].effects;
  }
}

void Controller::execute(Request* req) {
  req->qpair->io.received();  // Qpair::complete() balances it
  dispatch(req);
}

void Controller::dispatch(Request* req) {
  if (fault::armed() && fault::on_execute(*this, req)) [[unlikely]]
    return;
  if (req->qpair->qid() == 0)
    exec_admin(req);
  else
    exec_io(req);
}

uint32_t Controller::data_length(const nvme::Sqe& cmd, Qpair& qp) const {
  if (qp.qid() != 0) {
    namespace nop = nvme::nvm_opc;
    switch (cmd.opc) {
      case nop::kRead:
      case nop::kWrite:
      case nop::kCompare: {
        NsChannel* c = PollGroup::of(qp).lookup(qp, *subsys_, cmd.nsid);
        if (!c) return 0;
        return nvme::rw::nlb(cmd.cdw12) * c->bdev->block_size();
      }
      case nop::kDatasetManagement:
        return ((cmd.cdw10 & 0xff) + 1) * sizeof(nvme::DsmRange);
      default:
        return 0;
    }
  }
  switch (cmd.opc) {
    case op::kIdentify:
      return 4096;
    case op::kGetLogPage: {
      uint64_t numd = (cmd.cdw10 >> 16) | (uint64_t{cmd.cdw11 & 0xffff} << 16);
      return static_cast<uint32_t>(std::min<uint64_t>((numd + 1) * 4, UINT32_MAX));
    }
    case op::kGetFeatures:
    case op::kSetFeatures:
      switch (cmd.cdw10 & 0xff) {
        case nvme::fid::kHostIdentifier:
          return 16;
        case nvme::fid::kHostBehaviorSupport:
          return nvme::fid::kHostBehaviorSupportSize;
        default:
          return 0;
      }
    default:
      return 0;
  }
}

void Controller::exec_admin(Request* req) {
  const nvme::Sqe& cmd = req->cmd;
  const OpcodeInfo& info = admin_opcode(cmd.opc);
  Result r;
  if (!info.supported || (info.pcie_only && kind_ != Kind::kPcie) ||
      (discovery_ && !info.discovery)) {
    r = Status::generic(nvme::sc::kInvalidOpcode).at(nvme::loc::kOpc);
  } else if (cmd.fuse() != nvme::kFuseNone) {
    r = Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kFlags);
  } else if (!(cc_.load() & nvme::cc::kEn)) {
    // Admin commands run only on an enabled controller (SPDK and Linux agree).
    r = Status::generic(nvme::sc::kCommandSequenceError);
  } else if (req->length < data_length(cmd, *req->qpair)) {
    r = Status::generic(nvme::sc::kDataSglLengthInvalid).at(nvme::loc::kDptr);
  } else {
    switch (cmd.opc) {
      case op::kIdentify:
        r = identify(req);
        break;
      case op::kGetLogPage:
        r = get_log_page(req);
        break;
      case op::kGetFeatures:
        r = get_features(req);
        break;
      case op::kSetFeatures:
        r = set_features(req);
        break;
      case op::kAsyncEventRequest:
        r = aer_submit(req);
        break;
      case op::kAbort:
        r = abort_cmd(req);
        break;
      case op::kKeepAlive:
        keep_alive();
        r = Status::success();
        break;
      default:
        r = queue_cmd(req);
        break;
    }
  }
  if (r) {
    req->status = *r;
    complete(req);
  }
}

Controller::Result Controller::identify_controller(Request* req) {
  nvme::IdentifyController id{};
  id.vid = kVendorId;
  id.ssvid = kVendorId;
  pad(id.sn, sizeof id.sn, subsys_->serial_number);
  pad(id.mn, sizeof id.mn, subsys_->model_number);
  pad(id.fr, sizeof id.fr, NVEMU_VERSION);
  id.rab = 6;
  std::memcpy(id.ieee, kIeeeOui, 3);
  bool fabrics = kind_ == Kind::kFabrics;
  id.cmic = fabrics ? (0x2 | (subsys_->ana_reporting ? 0x8 : 0)) : 0;
  uint32_t pages = opts_.max_io_size / 4096;  // CAP.MPSMIN = 4 KiB
  id.mdts = pages ? log2u(pages) : 0;
  id.cntlid = cntlid();
  id.ver = nvme::kVersion;
  id.oaes = discovery_ ? nvme::aen::kCfgDiscovery : nvme::aen::kCfgNsAttr;
  id.ctratt = fabrics ? 0x1 : 0;  // 128-bit host identifier
  id.cntrltype = discovery_ ? 2 : 1;
  for (size_t i = 0; i < 3; ++i) id.crdt[i] = Target::instance().crdt[i];
  id.acl = kAcl;
  id.aerl = kAerl;
  id.frmw = discovery_ ? 0 : 0x3;  // slot 1 read-only, one slot
  id.lpa = 0x06;                   // commands effects log, extended Get Log Page data
  id.elpe = kElpe;
  id.npss = 0;
  id.wctemp = 0x0157;
  id.cctemp = 0x0173;
  id.kas = kKas;
  id.sqes = 0x66;
  id.cqes = 0x44;
  id.maxcmd = static_cast<uint16_t>(std::min<uint32_t>(opts_.max_queue_depth, 0xffff));
  if (!discovery_) {
    auto table = subsys_->namespaces();
    uint32_t max_nsid = table->empty() ? 0 : table->rbegin()->first;
    id.nn = subsys_->max_namespaces ? subsys_->max_namespaces : std::max<uint32_t>(max_nsid, 1024);
    id.oncs = 0x1d;  // Compare, DSM, Write Zeroes, Save/Select in features
    id.fuses = 0x1;  // Compare and Write
    bool vwc = std::any_of(table->begin(), table->end(),
                           [](const auto& e) { return e.second->bdev->has_write_cache(); });
    id.vwc = vwc ? 1 : 0;
    if (subsys_->ana_reporting) {
      id.anacap = 0x1;  // reports optimized
      id.anagrpmax = subsys_->max_namespaces ? subsys_->max_namespaces : 1024;
      id.nanagrpid = id.anagrpmax;
    }
  }
  if (fabrics) {
    // Transport SGL data block with address, offset-based (Linux requires
    // bits 1:0 != 0 for fabrics), keyed SGL bit as SPDK reports.
    id.sgls = (1u << 0) | (1u << 2) | (1u << 20);
    id.ioccsz = (opts_.in_capsule_data_size + 64) / 16;
    id.iorcsz = 1;
    id.icdoff = 0;
    id.fcatt = 0;  // dynamic controller model
    id.msdbd = 1;
  }
  std::memset(id.subnqn, 0, sizeof id.subnqn);
  std::memcpy(id.subnqn, subsys_->nqn().data(),
              std::min(subsys_->nqn().size(), sizeof id.subnqn - 1));
  id.psd[0].mp = 2500;  // 25 W, a plausible active power
  req->copy_to_iov(&id, std::min<size_t>(sizeof id, req->length));
  return Status::success();
}

Controller::Result Controller::identify(Request* req) {
  const nvme::Sqe& cmd = req->cmd;
  uint8_t cns = cmd.cdw10 & 0xff;
  uint8_t csi = cmd.cdw11 >> 24;
  const Status invalid_ns =
      Status::generic(nvme::sc::kInvalidNamespaceOrFormat).at(nvme::loc::kNsid);
  const Status invalid_cns = Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kCdw10);
  if (discovery_ && cns != nvme::cns::kController) return invalid_cns;
  std::array<uint8_t, 4096> buf{};
  auto table = subsys_->namespaces();
  uint32_t nn = subsys_->max_namespaces ? subsys_->max_namespaces : 0xfffffffe;
  auto active = [&]() -> std::shared_ptr<const Namespace> {
    auto it = table->find(cmd.nsid);
    return it == table->end() ? nullptr : it->second;
  };
  switch (cns) {
    case nvme::cns::kController:
      return identify_controller(req);
    case nvme::cns::kNamespace: {
      if (cmd.nsid == 0 || (cmd.nsid > nn && cmd.nsid != 0xffffffff) || cmd.nsid == 0xffffffff)
        return invalid_ns;
      auto ns = active();
      if (ns) {  // an inactive NSID in range reads as zeroes
        auto& id = *reinterpret_cast<nvme::IdentifyNamespace*>(buf.data());
        uint64_t blocks = ns->bdev->num_blocks();
        id.nsze = id.ncap = id.nuse = blocks;
        id.nlbaf = 0;
        id.flbas = 0;
        id.nmic = 1;  // may be shared by controllers
        id.lbaf[0].lbads = log2u(ns->bdev->block_size());
        id.anagrpid = subsys_->ana_reporting ? ns->anagrpid : 0;
        if (ns->has_nguid) std::memcpy(id.nguid, ns->nguid.data(), 16);
        if (ns->has_eui64) std::memcpy(id.eui64, ns->eui64.data(), 8);
      }
      break;
    }
    case nvme::cns::kActiveNsList:
    case nvme::cns::kIoCsActiveNsList: {
      if (cmd.nsid >= 0xfffffffe) return invalid_ns;
      if (cns == nvme::cns::kIoCsActiveNsList && csi != nvme::kCsiNvm) return invalid_cns;
      auto* list = reinterpret_cast<uint32_t*>(buf.data());
      size_t n = 0;
      for (auto it = table->upper_bound(cmd.nsid); it != table->end() && n < 1024; ++it)
        list[n++] = it->first;
      break;
    }
    case nvme::cns::kNsIdDescriptors: {
      auto ns = active();
      if (!ns) return invalid_ns;
      size_t off = 0;
      auto add = [&](uint8_t type, const void* data, uint8_t len) {
        nvme::NsIdDescHeader h{type, len, {0, 0}};
        std::memcpy(buf.data() + off, &h, sizeof h);
        std::memcpy(buf.data() + off + sizeof h, data, len);
        off += sizeof h + len;
      };
      if (ns->has_eui64) add(nvme::nidt::kEui64, ns->eui64.data(), 8);
      if (ns->has_nguid) add(nvme::nidt::kNguid, ns->nguid.data(), 16);
      uint8_t uuid[16];
      if (ns->has_uuid)
        add(nvme::nidt::kUuid, ns->uuid.data(), 16);
      else if (parse_uuid(ns->bdev->uuid(), uuid))
        add(nvme::nidt::kUuid, uuid, 16);
      uint8_t csi_nvm = nvme::kCsiNvm;
      add(nvme::nidt::kCsi, &csi_nvm, 1);
      break;
    }
    case nvme::cns::kIoCsNamespace: {
      if (csi != nvme::kCsiNvm) return invalid_cns.at(nvme::loc::kCdw11);
      if (!active()) return invalid_ns;
      break;  // no NVM-specific namespace fields beyond zeroes (no PI, no ELBAs)
    }
    case nvme::cns::kIoCsController: {
      if (csi != nvme::kCsiNvm) return invalid_cns.at(nvme::loc::kCdw11);
      break;  // zeroes: no extra limits beyond MDTS
    }
    case nvme::cns::kIoCommandSets:
      buf[0] = 0x1;
      break;  // vector 0: NVM only
    default:
      return invalid_cns;
  }
  req->copy_to_iov(buf.data(), std::min<size_t>(buf.size(), req->length));
  return Status::success();
}

Controller::Result Controller::abort_cmd(Request* req) {
  uint16_t sqid = req->cmd.cdw10 & 0xffff;
  uint16_t cid = req->cmd.cdw10 >> 16;
  // DW0 bit 0 (Base 2.0, 5.1): 0 = aborted, 1 = not. What nvemu can still
  // stop: parked AERs and commands a fault holds (fault.h); anything else is
  // already in a bdev, and not aborting is always allowed, as in SPDK.
  if (sqid == 0 && aer_abort(cid)) {
    req->rsp.cdw0 = 0;
    return Status::success();
  }
  Qpair* target = nullptr;
  Reactor* reactor = nullptr;
  {
    std::lock_guard lk(qp_mu_);
    if (sqid == 0) {
      target = admin_qp_;
    } else if (auto it = io_qps_.find(sqid); it != io_qps_.end()) {
      target = it->second;
    }
    if (target) reactor = &target->reactor();
  }
  if (!target || reactor->on_thread()) {
    req->rsp.cdw0 = target && fault::abort_held(target, cid) ? 0 : 1;
    return Status::success();
  }
  // The queue lives on another reactor: ask there, answer here.
  auto self = shared_from_this();
  Reactor* back = &req->qpair->reactor();
  reactor->send([self, target, cid, req, back] {
    bool aborted = self->attached(target) && fault::abort_held(target, cid);
    back->send([self, req, aborted] {
      req->rsp.cdw0 = aborted ? 0 : 1;
      req->status = Status::success();
      self->complete(req);
    });
  });
  return std::nullopt;
}

Controller::Result Controller::queue_cmd(Request* req) {
  const nvme::Sqe& cmd = req->cmd;
  if (!qhost_) return Status::generic(nvme::sc::kInvalidOpcode).at(nvme::loc::kOpc);
  uint16_t qid = cmd.cdw10 & 0xffff;
  uint32_t qsize = (cmd.cdw10 >> 16) + 1;
  const Status bad_qid =
      Status::command_specific(nvme::csc::kInvalidQueueIdentifier).at(nvme::loc::kCdw10);
  if (qid == 0 || qid > max_io_qid()) return bad_qid;
  bool creating = cmd.opc == op::kCreateIoCq || cmd.opc == op::kCreateIoSq;
  if (creating && (qsize < 2 || qsize > uint32_t{cap_.mqes()} + 1))
    return Status::command_specific(nvme::csc::kInvalidQueueSize).at(nvme::loc::kCdw10 + 2);
  bool pc = cmd.cdw11 & 1;
  if (creating && !pc && cap_.cqr())
    return Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kCdw11);
  switch (cmd.opc) {
    case op::kCreateIoCq: {
      uint16_t iv = cmd.cdw11 >> 16;
      return qhost_->create_io_cq(qid, qsize, cmd.dptr.prp.prp1, pc, cmd.cdw11 & 2, iv);
    }
    case op::kCreateIoSq: {
      uint16_t cqid = cmd.cdw11 >> 16;
      // As SPDK's vfio-user target (and its nvme_compliance test): a CQID
      // that can never name an I/O CQ is an Invalid Queue Identifier; one
      // that could but was not created is Completion Queue Invalid.
      if (cqid == 0 || cqid > max_io_qid())
        return Status::command_specific(nvme::csc::kInvalidQueueIdentifier)
            .at(nvme::loc::kCdw11 + 2);
      return qhost_->create_io_sq(qid, qsize, cmd.dptr.prp.prp1, pc, cqid, (cmd.cdw11 >> 1) & 3);
    }
    case op::kDeleteIoSq:
      return qhost_->delete_io_sq(qid);
    case op::kDeleteIoCq:
      return qhost_->delete_io_cq(qid);
    default:
      return Status::generic(nvme::sc::kInvalidOpcode).at(nvme::loc::kOpc);
  }
}

}  // namespace nvemu::nvmf
