// Asynchronous Event Requests (NVMe Base 2.0, 5.2): up to AERL+1 parked
// requests, a queue of events not yet reported, and per-log-page masking: once
// an event is reported, further events of that kind wait until the host reads
// the log page with RAE=0 (5.2, "Asynchronous Event Information").
#include "nvme/log.h"
#include "nvmf/controller.h"

namespace nvemu::nvmf {

namespace {
constexpr size_t kMaxAers = 4;  // Identify AERL (3) + 1
uint32_t mask_bit(uint8_t log_page) {
  return log_page < 31 ? 1u << log_page : 1u << 31;
}
}  // namespace

Controller::Result Controller::aer_submit(Request* req) {
  if (aer_reqs_.size() >= kMaxAers)
    return nvme::Status::command_specific(nvme::csc::kAsyncEventRequestLimitExceeded);
  aer_reqs_.push_back(req);
  aer_dispatch();
  return std::nullopt;
}

void Controller::aer_raise(uint8_t type, uint8_t info, uint8_t log_page) {
  if (aer_masked_ & mask_bit(log_page)) return;  // reported, not yet read
  uint32_t ev = nvme::aen::pack(type, info, log_page);
  for (uint32_t p : aer_pending_)
    if (p == ev) return;
  aer_pending_.push_back(ev);
  aer_dispatch();
}

void Controller::aer_dispatch() {
  while (!aer_pending_.empty() && !aer_reqs_.empty()) {
    uint32_t ev = aer_pending_.front();
    aer_pending_.pop_front();
    Request* req = aer_reqs_.front();
    aer_reqs_.erase(aer_reqs_.begin());
    aer_masked_ |= mask_bit(static_cast<uint8_t>(ev >> 16));
    req->rsp.cdw0 = ev;
    req->status = nvme::Status::success();
    complete(req);
  }
}

void Controller::aer_clear(uint8_t log_page) {
  aer_masked_ &= ~mask_bit(log_page);
}

void Controller::aer_abort_all() {
  std::vector<Request*> reqs;
  reqs.swap(aer_reqs_);
  for (Request* req : reqs) {
    req->status = nvme::Status::generic(nvme::sc::kAbortedSqDeletion, false);
    complete(req);
  }
}

bool Controller::aer_abort(uint16_t cid) {
  for (auto it = aer_reqs_.begin(); it != aer_reqs_.end(); ++it) {
    if ((*it)->cmd.cid != cid) continue;
    Request* req = *it;
    aer_reqs_.erase(it);
    req->status = nvme::Status::generic(nvme::sc::kAbortedByRequest, false);
    complete(req);
    return true;
  }
  return false;
}

}  // namespace nvemu::nvmf
