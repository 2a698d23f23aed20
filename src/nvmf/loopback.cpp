#include "nvmf/loopback.h"

#include <algorithm>
#include <cstring>

#include "nvmf/fault.h"
#include "reactor/reactor.h"

namespace nvemu::nvmf {

LoopbackQpair::~LoopbackQpair() {
  destroy();
}

void LoopbackQpair::deliver(Request* req) {
  req->rsp.cid = req->cmd.cid;
  req->rsp.sqid = qid();
  req->rsp.status = req->status.field();  // phase 0
  completed.push_back(req);
}

bool LoopbackQpair::run(Request* req, std::chrono::milliseconds timeout) {
  req->qpair = this;
  std::erase(completed, req);
  submit_request(req);
  bool done = poll_until(
      [&] { return std::find(completed.begin(), completed.end(), req) != completed.end(); },
      timeout);
  std::erase(completed, req);  // the caller owns req; keep no dangling pointer
  return done;
}

void LoopbackQpair::destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  fault::qpair_closing(this);
  qpair_destroyed(this);
}

void LoopbackRequest::prepare(Qpair& qp, const nvme::Sqe& cmd, size_t len) {
  req.reset();
  req.cmd = cmd;
  req.qpair = &qp;
  data.resize(len);
  if (len) {
    req.iov[0] = {data.data(), len};
    req.iovcnt = 1;
  }
  req.length = static_cast<uint32_t>(len);
  req.xfer = cmd.opc == nvme::kFabricsOpcode
                 ? fabrics_xfer_dir_of(nvme::as<nvme::FabricsCmd>(cmd).fctype)
                 : xfer_dir_of(cmd.opc);
}

nvme::Sqe make_connect(uint16_t qid, uint16_t sqsize, uint32_t kato_ms, uint16_t cid) {
  nvme::ConnectCmd c{};
  c.opcode = nvme::kFabricsOpcode;
  c.cid = cid;
  c.fctype = nvme::fctype::kConnect;
  c.qid = qid;
  c.sqsize = sqsize;
  c.kato = kato_ms;
  nvme::Sqe s;
  std::memcpy(&s, &c, sizeof s);
  return s;
}

std::vector<uint8_t> make_connect_data(const std::string& subnqn, const std::string& hostnqn,
                                       uint16_t cntlid, const uint8_t* hostid) {
  nvme::ConnectData d{};
  if (hostid) std::memcpy(d.hostid, hostid, 16);
  d.cntlid = cntlid;
  std::memcpy(d.subnqn, subnqn.data(), std::min(subnqn.size(), sizeof d.subnqn - 1));
  std::memcpy(d.hostnqn, hostnqn.data(), std::min(hostnqn.size(), sizeof d.hostnqn - 1));
  std::vector<uint8_t> out(sizeof d);
  std::memcpy(out.data(), &d, sizeof d);
  return out;
}

nvme::Sqe make_property_get(uint32_t offset, bool eight, uint16_t cid) {
  nvme::PropertyCmd c{};
  c.opcode = nvme::kFabricsOpcode;
  c.cid = cid;
  c.fctype = nvme::fctype::kPropertyGet;
  c.attrib = eight ? 1 : 0;
  c.ofst = offset;
  nvme::Sqe s;
  std::memcpy(&s, &c, sizeof s);
  return s;
}

nvme::Sqe make_property_set(uint32_t offset, uint64_t value, bool eight, uint16_t cid) {
  nvme::PropertyCmd c{};
  c.opcode = nvme::kFabricsOpcode;
  c.cid = cid;
  c.fctype = nvme::fctype::kPropertySet;
  c.attrib = eight ? 1 : 0;
  c.ofst = offset;
  c.value = value;
  nvme::Sqe s;
  std::memcpy(&s, &c, sizeof s);
  return s;
}

}  // namespace nvemu::nvmf
