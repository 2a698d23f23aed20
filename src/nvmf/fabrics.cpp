// Fabrics commands (NVMe over Fabrics 1.1, section 3.3): Connect creates or
// joins a controller, Property Get/Set reach its registers. Everything else
// goes to the controller.
#include "nvmf/fabrics.h"

#include <cstring>
#include <string>

#include "common/log.h"
#include "nvme/fabrics.h"
#include "nvme/nvm.h"
#include "nvme/registers.h"
#include "nvmf/auth/target_auth.h"
#include "nvmf/controller.h"
#include "nvmf/target.h"
#include "nvmf/transport.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf {

namespace {

using nvme::Status;

void finish(Request* req, Status s) {
  req->status = s;
  req->qpair->complete(req);
}

// Connect Invalid Parameters with the offending field (Figure 21).
Status invalid_param(Request* req, bool in_data, uint16_t offset) {
  req->rsp.cdw0 = nvme::connect_invalid_param(in_data, offset);
  return Status::command_specific(nvme::csc::kFabricInvalidParam);
}

std::string fixed_string(const char* p, size_t n) {
  return std::string(p, strnlen(p, n));
}

Status connect(Request* req) {
  Qpair* qp = req->qpair;
  auto cmd = nvme::as<nvme::ConnectCmd>(req->cmd);
  if (qp->controller()) {
    LOG_ERROR_LIMITED("nvmf", "Connect on qpair {} that is already connected", qp->qid());
    return Status::generic(nvme::sc::kCommandSequenceError);
  }
  if (cmd.recfmt != 0) {
    LOG_ERROR_LIMITED("nvmf", "Connect with unsupported record format {}", cmd.recfmt);
    return Status::command_specific(nvme::csc::kFabricIncompatibleFormat);
  }
  nvme::ConnectData data{};
  if (req->length < sizeof data || req->copy_from_iov(&data, sizeof data) < sizeof data) {
    LOG_ERROR_LIMITED("nvmf", "Connect data length {} < {}", req->length, sizeof data);
    return Status::generic(nvme::sc::kInvalidField).at(nvme::loc::kDptr);
  }
  std::string subnqn = fixed_string(data.subnqn, sizeof data.subnqn);
  std::string hostnqn = fixed_string(data.hostnqn, sizeof data.hostnqn);
  auto subsys = Target::instance().find_subsystem(subnqn);
  if (!subsys) {
    LOG_ERROR_LIMITED("nvmf", "Connect to unknown subsystem '{}' from {}", subnqn, hostnqn);
    return invalid_param(req, true, offsetof(nvme::ConnectData, subnqn));
  }
  if (!subsys->host_allowed(hostnqn)) {
    LOG_ERROR_LIMITED("nvmf",
                      "Host '{}' is not allowed on subsystem '{}' (add it with "
                      "nvmf_subsystem_add_host or allow any host)",
                      hostnqn, subnqn);
    req->rsp.cdw0 = nvme::connect_invalid_param(true, offsetof(nvme::ConnectData, hostnqn));
    return Status::command_specific(nvme::csc::kFabricInvalidHost);
  }
  Transport* tr = Target::instance().find_transport(qp->trtype());
  TransportOpts opts = tr ? tr->opts() : TransportOpts{};
  if (opts.trtype.empty()) opts.trtype = qp->trtype();
  uint32_t max_depth = cmd.qid == 0 ? opts.max_aq_depth : opts.max_queue_depth;
  if (cmd.sqsize == 0 || uint32_t{cmd.sqsize} + 1 > max_depth) {
    LOG_ERROR_LIMITED("nvmf", "Connect qid {} with SQSIZE {} (0-based), limit {}", cmd.qid,
                      cmd.sqsize, max_depth);
    return invalid_param(req, false, offsetof(nvme::ConnectCmd, sqsize));
  }

  std::array<uint8_t, 16> hostid;
  std::memcpy(hostid.data(), data.hostid, 16);
  if (cmd.qid == 0) {
    if (data.cntlid != nvme::kDynamicCntlid) {
      LOG_ERROR_LIMITED("nvmf",
                        "admin Connect asks for static CNTLID {:#x}; only the dynamic "
                        "model (FFFFh) is supported",
                        data.cntlid);
      return invalid_param(req, true, offsetof(nvme::ConnectData, cntlid));
    }
    auto ctrlr = Controller::create_fabrics(subsys, qp->reactor(), opts, hostnqn, hostid, cmd.kato);
    if (!ctrlr) {
      LOG_ERROR_LIMITED("nvmf", "subsystem '{}' has no free controller ID", subnqn);
      return Status::command_specific(nvme::csc::kFabricControllerBusy);
    }
    ctrlr->set_admin_qpair(qp);
    qp->set_controller(ctrlr);
    req->rsp.cdw0 = ctrlr->cntlid() | auth_target::on_connect(*qp, *ctrlr);
    LOG_INFO("nvmf", "controller {} of {} created for host {}", ctrlr->cntlid(), subnqn, hostnqn);
    return Status::success();
  }

  if (subsys->type() == Subsystem::Type::kDiscovery) {
    LOG_ERROR_LIMITED("nvmf", "I/O queue Connect to the discovery subsystem");
    return invalid_param(req, false, offsetof(nvme::ConnectCmd, qid));
  }
  auto ctrlr = subsys->find_controller(data.cntlid);
  if (!ctrlr) {
    LOG_ERROR_LIMITED("nvmf", "I/O Connect to unknown controller {} of {}", data.cntlid, subnqn);
    return invalid_param(req, true, offsetof(nvme::ConnectData, cntlid));
  }
  if (ctrlr->hostnqn() != hostnqn) {
    LOG_ERROR_LIMITED("nvmf", "I/O Connect host '{}' differs from controller {}'s host '{}'",
                      hostnqn, data.cntlid, ctrlr->hostnqn());
    return invalid_param(req, true, offsetof(nvme::ConnectData, hostnqn));
  }
  if (!ctrlr->ready()) {
    LOG_ERROR_LIMITED("nvmf",
                      "I/O Connect qid {} before controller {} is enabled (CC.EN=1, "
                      "CSTS.RDY=1)",
                      cmd.qid, data.cntlid);
    return invalid_param(req, false, offsetof(nvme::ConnectCmd, qid));
  }
  if (cmd.qid > ctrlr->max_io_qid()) {
    LOG_ERROR_LIMITED("nvmf", "I/O Connect qid {} above the limit {}", cmd.qid,
                      ctrlr->max_io_qid());
    return invalid_param(req, false, offsetof(nvme::ConnectCmd, qid));
  }
  if (qp->qid() != cmd.qid) {
    // The transport names the queue before Connect; they must agree.
    LOG_WARN_LIMITED("nvmf", "Connect qid {} on a qpair the transport calls {}", cmd.qid,
                     qp->qid());
  }
  if (subsys->host_keys(hostnqn).key && !ctrlr->host_authenticated) {
    LOG_ERROR_LIMITED("auth",
                      "host {} connects I/O queue {} to {} without having authenticated its "
                      "admin queue (DH-HMAC-CHAP)",
                      hostnqn, cmd.qid, subnqn);
    return Status::command_specific(nvme::csc::kFabricAuthRequired);
  }
  if (!ctrlr->add_io_qpair(qp)) {
    LOG_ERROR_LIMITED("nvmf", "I/O Connect with duplicate qid {} on controller {}", cmd.qid,
                      data.cntlid);
    return invalid_param(req, false, offsetof(nvme::ConnectCmd, qid));
  }
  qp->set_controller(ctrlr);
  req->rsp.cdw0 = ctrlr->cntlid() | auth_target::on_connect(*qp, *ctrlr);
  return Status::success();
}

// Properties a fabrics host may reach (NVMe-oF 1.1, Figure 27): the ones
// that make sense without PCIe queues and interrupts.
struct Property {
  uint32_t offset;
  unsigned size;
  bool writable;
};
constexpr Property kProperties[] = {
    {nvme::reg::kCap, 8, false},
    {nvme::reg::kVs, 4, false},
    {nvme::reg::kCc, 4, true},
    {nvme::reg::kCsts, 4, false},
};

Status property(Request* req, bool set) {
  auto cmd = nvme::as<nvme::PropertyCmd>(req->cmd);
  auto& ctrlr = req->qpair->controller();
  if (req->qpair->qid() != 0) return Status::generic(nvme::sc::kInvalidOpcode);
  unsigned size = (cmd.attrib & 0x7) == 0 ? 4 : (cmd.attrib & 0x7) == 1 ? 8 : 0;
  if (size == 0)
    return Status::generic(nvme::sc::kInvalidField).at(offsetof(nvme::PropertyCmd, attrib));
  const Property* prop = nullptr;
  for (const Property& p : kProperties) {
    // A 4-byte access may read either half of an 8-byte property.
    if (cmd.ofst == p.offset && size <= p.size) prop = &p;
    if (p.size == 8 && size == 4 && cmd.ofst == p.offset + 4 && !set) prop = &p;
  }
  if (!prop || (set && !prop->writable) || (set && size != prop->size))
    return Status::generic(nvme::sc::kInvalidField).at(offsetof(nvme::PropertyCmd, ofst));
  if (set) {
    ctrlr->write_register(cmd.ofst, cmd.value, size);
  } else {
    uint64_t v = ctrlr->read_register(cmd.ofst, size);
    req->rsp.cdw0 = static_cast<uint32_t>(v);
    req->rsp.cdw1 = static_cast<uint32_t>(v >> 32);
  }
  return Status::success();
}

}  // namespace

void submit_request(Request* req) {
  Qpair* qp = req->qpair;
  qp->io.received();  // Qpair::complete() balances it
  if (req->cmd.opc != nvme::kFabricsOpcode) {
    if (!qp->controller()) {
      finish(req, Status::generic(nvme::sc::kCommandSequenceError));
      return;
    }
    if (!auth_target::may_run(*qp)) {
      finish(req, Status::command_specific(nvme::csc::kFabricAuthRequired));
      return;
    }
    qp->controller()->dispatch(req);
    return;
  }
  uint8_t fctype = nvme::as<nvme::FabricsCmd>(req->cmd).fctype;
  if (fctype == nvme::fctype::kConnect) {
    finish(req, connect(req));
    return;
  }
  auto ctrlr = qp->controller();
  if (!ctrlr) {
    finish(req, Status::generic(nvme::sc::kCommandSequenceError));
    return;
  }
  bool is_auth = fctype == nvme::fctype::kAuthSend || fctype == nvme::fctype::kAuthRecv;
  if (!is_auth && !auth_target::may_run(*qp)) {
    finish(req, Status::command_specific(nvme::csc::kFabricAuthRequired));
    return;
  }
  Status s;
  switch (fctype) {
    case nvme::fctype::kAuthSend:
    case nvme::fctype::kAuthRecv:
      s = auth_target::execute(req);
      break;
    case nvme::fctype::kPropertyGet:
      s = property(req, false);
      break;
    case nvme::fctype::kPropertySet:
      s = property(req, true);
      break;
    default:
      s = Status::generic(nvme::sc::kInvalidOpcode).at(offsetof(nvme::FabricsCmd, fctype));
      break;
  }
  ctrlr->keep_alive();
  req->status = s;
  ctrlr->complete(req);
}

void qpair_destroyed(Qpair* qp) {
  auto ctrlr = qp->controller();
  if (!ctrlr) return;
  if (qp->qid() == 0) ctrlr->aer_abort_all();
  ctrlr->remove_qpair(qp);
  qp->set_controller(nullptr);
}

}  // namespace nvemu::nvmf
