#include "nvmf/vfio_user/queues.h"

#include <cstring>

#include "common/log.h"
#include "nvme/registers.h"
#include "nvmf/controller.h"
#include "nvmf/fabrics.h"
#include "nvmf/fault.h"
#include "nvmf/vfio_user/pci_config.h"
#include "reactor/reactor.h"

namespace nvemu::vfio_user {

using nvme::Status;
namespace sc = nvme::sc;
namespace csc = nvme::csc;

namespace {
constexpr uint8_t kOpcAer = 0x0c;
constexpr size_t kCqeSize = sizeof(nvme::Cqe);
constexpr size_t kSqeSize = sizeof(nvme::Sqe);
}  // namespace

// ---- Sq ----------------------------------------------------------------------

Sq::Sq(Queues& owner, Reactor& reactor, uint16_t qid, uint32_t size, uint16_t cqid)
    : Qpair(reactor, qid, size), owner_(owner), cqid_(cqid), reqs_(size), ctx_(size) {
  free_.reserve(size);
  for (uint32_t i = 0; i < size; ++i) {
    reqs_[i].transport_ctx = &ctx_[i];
    free_.push_back(&reqs_[size - 1 - i]);
  }
}

Sq::~Sq() = default;

void Sq::deliver(nvmf::Request* req) {
  owner_.on_complete(*this, req);
}

void Sq::disconnect() {
  // Runs from the controller (failure, subsystem removal); the next poll
  // pass deletes the queue, so no queue map changes under a caller.
  disconnect_requested_ = true;
}

nlohmann::json Sq::peer_json() const {
  return {{"trtype", "VFIOUSER"}, {"qid", qid()}, {"sq_size", sq_size()}, {"cqid", cqid_}};
}

// ---- Queues ------------------------------------------------------------------

Queues::Queues(Reactor& reactor, Irqs& irqs) : reactor_(reactor), irqs_(irqs) {}

Queues::~Queues() = default;

uint32_t Queues::load_doorbell(uint32_t index) const {
  return __atomic_load_n(&doorbells_[index], __ATOMIC_ACQUIRE);
}

void Queues::reset_doorbell(uint32_t index) {
  if (doorbells_) __atomic_store_n(&doorbells_[index], 0u, __ATOMIC_RELEASE);
}

Status Queues::make_cq(uint16_t qid, uint32_t size, uint64_t addr, bool ien, uint16_t iv) {
  if (addr & (page_size() - 1))
    return Status::generic(sc::kInvalidPrpOffset).at(offsetof(nvme::Sqe, dptr));
  DmaRef ref;
  uint8_t* p = dma_ ? dma_->translate(addr, uint64_t{size} * kCqeSize, true, &ref) : nullptr;
  if (!p) return Status::generic(sc::kInvalidField).at(offsetof(nvme::Sqe, dptr));
  auto cq = std::make_unique<Cq>();
  cq->qid = qid;
  cq->size = size;
  cq->base = reinterpret_cast<nvme::Cqe*>(p);
  cq->mem = std::move(ref);
  cq->ien = ien;
  cq->iv = iv;
  // A new queue starts at head 0 (Base 2.0, 3.3.1.2), whatever a deleted
  // queue with this ID left in the doorbell page.
  reset_doorbell(2u * qid + 1);
  cqs_[qid] = std::move(cq);
  return Status::success();
}

Status Queues::make_sq(uint16_t qid, uint32_t size, uint64_t addr, uint16_t cqid) {
  if (addr & (page_size() - 1))
    return Status::generic(sc::kInvalidPrpOffset).at(offsetof(nvme::Sqe, dptr));
  DmaRef ref;
  uint8_t* p = dma_ ? dma_->translate(addr, uint64_t{size} * kSqeSize, false, &ref) : nullptr;
  if (!p) return Status::generic(sc::kInvalidField).at(offsetof(nvme::Sqe, dptr));
  auto sq = std::make_unique<Sq>(*this, reactor_, qid, size, cqid);
  sq->base_ = reinterpret_cast<nvme::Sqe*>(p);
  sq->mem_ = std::move(ref);
  reset_doorbell(2u * qid);  // tail 0, as for the CQ head
  sq->cq_ = find_cq(cqid);
  Sq* raw = sq.get();
  sqs_[qid] = std::move(sq);
  find_cq(cqid)->sq_count++;
  ctrlr_->attach_qpair(raw);
  return Status::success();
}

bool Queues::on_enable() {
  if (!ctrlr_ || !dma_ || !doorbells_) return false;
  delete_all();
  failed_ = false;
  quiesced_ = false;
  std::memset(doorbells_, 0, kDoorbellSize);
  page_size_ =
      4096u << nvme::cc::mps(static_cast<uint32_t>(ctrlr_->read_register(nvme::reg::kCc, 4)));
  nvme::Cap cap{ctrlr_->read_register(nvme::reg::kCap, 8)};
  if (cap.dstrd() != 0) {
    LOG_ERROR("vfio_user", "CAP.DSTRD {} is not supported (the doorbell page assumes 0)",
              cap.dstrd());
    return false;
  }
  auto aqa = static_cast<uint32_t>(ctrlr_->read_register(nvme::reg::kAqa, 4));
  uint32_t asqs = (aqa & 0xfff) + 1, acqs = ((aqa >> 16) & 0xfff) + 1;
  uint64_t asq = ctrlr_->read_register(nvme::reg::kAsq, 8);
  uint64_t acq = ctrlr_->read_register(nvme::reg::kAcq, 8);
  if (asqs < 2 || acqs < 2) {
    LOG_ERROR("vfio_user", "CC.EN=1 with admin queue sizes SQ {} / CQ {} (AQA {:#x})", asqs, acqs,
              aqa);
    return false;
  }
  Status s = make_cq(0, acqs, acq, true, 0);
  if (s.ok()) s = make_sq(0, asqs, asq, 0);
  if (!s.ok()) {
    LOG_ERROR("vfio_user",
              "CC.EN=1: admin queues ASQ {:#x} ({} entries) / ACQ {:#x} ({} entries) are not in "
              "memory the host mapped with DMA_MAP (or not page aligned)",
              asq, asqs, acq, acqs);
    delete_all();
    return false;
  }
  return true;
}

void Queues::on_disable() {
  delete_all();
  if (doorbells_) std::memset(doorbells_, 0, kDoorbellSize);
  quiesced_ = false;
  failed_ = false;
}

void Queues::on_shutdown() {
  quiesced_ = true;
}

Status Queues::create_io_cq(uint16_t qid, uint32_t qsize, uint64_t prp1, bool pc, bool ien,
                            uint16_t iv) {
  if (qid == 0 || qid > kMaxQid || cqs_.count(qid))
    return Status::command_specific(csc::kInvalidQueueIdentifier).at(40);
  if (!pc) return Status::generic(sc::kInvalidField).at(44);
  if (iv >= kMsixVectors) return Status::command_specific(csc::kInvalidInterruptVector).at(46);
  return make_cq(qid, qsize, prp1, ien, iv);
}

Status Queues::create_io_sq(uint16_t qid, uint32_t qsize, uint64_t prp1, bool pc, uint16_t cqid,
                            uint8_t qprio) {
  (void)qprio;  // round robin arbitration only
  if (qid == 0 || qid > kMaxQid || sqs_.count(qid))
    return Status::command_specific(csc::kInvalidQueueIdentifier).at(40);
  if (!pc) return Status::generic(sc::kInvalidField).at(44);
  if (!find_cq(cqid) || cqid == 0)
    return Status::command_specific(csc::kCompletionQueueInvalid).at(46);
  return make_sq(qid, qsize, prp1, cqid);
}

Status Queues::delete_io_sq(uint16_t qid) {
  if (qid == 0 || !sqs_.count(qid))
    return Status::command_specific(csc::kInvalidQueueIdentifier).at(40);
  kill_sq(qid);
  return Status::success();
}

Status Queues::delete_io_cq(uint16_t qid) {
  Cq* cq = find_cq(qid);
  if (qid == 0 || !cq) return Status::command_specific(csc::kInvalidQueueIdentifier).at(40);
  if (cq->sq_count) return Status::command_specific(csc::kInvalidQueueDeletion).at(40);
  cqs_.erase(qid);
  return Status::success();
}

void Queues::kill_sq(uint16_t qid) {
  auto it = sqs_.find(qid);
  if (it == sqs_.end()) return;
  std::unique_ptr<Sq> sq = std::move(it->second);
  sqs_.erase(it);
  sq->deleted_ = true;
  nvmf::fault::qpair_closing(sq.get());  // commands a fault holds end with the queue
  if (Cq* cq = find_cq(sq->cqid_)) {
    cq->sq_count--;
    // Completions parked for a full CQ belong to a queue that no longer
    // exists: the host will not see them.
    for (auto r = cq->overflow.begin(); r != cq->overflow.end();) {
      if ((*r)->qpair == sq.get()) {
        release(*sq, *r);
        r = cq->overflow.erase(r);
      } else {
        ++r;
      }
    }
  }
  zombies_.push_back(std::move(sq));
}

void Queues::drop_host() {
  if (drop_host_fn_) reactor_.send(drop_host_fn_);
}

void Queues::delete_all() {
  std::vector<uint16_t> qids;
  for (auto& [qid, _] : sqs_) qids.push_back(qid);
  for (uint16_t qid : qids) kill_sq(qid);
  cqs_.clear();
}

void Queues::release(Sq& sq, nvmf::Request* req) {
  static_cast<Sq::Ctx*>(req->transport_ctx)->refs.clear();
  sq.free_.push_back(req);
}

void Queues::invalid_doorbell(const char* what, uint16_t qid, uint32_t value) {
  stats_.invalid_doorbells++;
  failed_ = true;
  std::string why =
      fmt::format("invalid {} doorbell write for queue {}: value {}", what, qid, value);
  LOG_ERROR("vfio_user", "{}", why);
  if (ctrlr_) ctrlr_->fail(why.c_str());  // CSTS.CFS; the host resets the controller
}

bool Queues::refresh_cq_head(Cq& cq) {
  uint32_t h = load_doorbell(2u * cq.qid + 1);
  if (h >= cq.size) {
    invalid_doorbell("CQ head", cq.qid, h);
    return false;
  }
  cq.head = h;
  return (cq.tail + 1) % cq.size != cq.head;
}

bool Queues::post(Cq& cq, Sq* sq, nvmf::Request* req) {
  if ((cq.tail + 1) % cq.size == cq.head && !refresh_cq_head(cq)) return false;
  // Built as dwords and stored straight into the host's CQ: the entry is
  // written once, in two stores and a release of the dword with the phase
  // tag (the host must see the entry whole).
  nvme::Cqe& e = req->rsp;
  e.sqhd = static_cast<uint16_t>(sq->head_);
  e.sqid = sq->qid();
  e.cid = req->cmd.cid;
  e.status = static_cast<uint16_t>(req->status.field() | (cq.phase ? 1 : 0));
  uint64_t dw01 = uint64_t{e.cdw0} | uint64_t{e.cdw1} << 32;
  uint32_t dw2 = uint32_t{e.sqhd} | uint32_t{e.sqid} << 16;
  uint32_t dw3 = uint32_t{e.cid} | uint32_t{e.status} << 16;
  auto* slot = reinterpret_cast<uint8_t*>(&cq.base[cq.tail]);
  std::memcpy(slot, &dw01, 8);
  std::memcpy(slot + 8, &dw2, 4);
  __atomic_store_n(reinterpret_cast<uint32_t*>(slot + 12), dw3, __ATOMIC_RELEASE);
  if (++cq.tail == cq.size) {
    cq.tail = 0;
    cq.phase = !cq.phase;
  }
  if (cq.ien) cq.irq_pending = true;
  stats_.completed++;
  return true;
}

void Queues::on_complete(Sq& sq, nvmf::Request* req) {
  sq.inflight_--;
  if (sq.qid() == 0 && req->cmd.opc == kOpcAer) sq.aers_--;
  static_cast<Sq::Ctx*>(req->transport_ctx)->refs.clear();
  Cq* cq = sq.deleted_ ? nullptr : sq.cq_;
  if (!cq || failed_) {
    release(sq, req);
    return;
  }
  if (!cq->overflow.empty() || !post(*cq, &sq, req)) {
    cq->overflow.push_back(req);
    cq->overflows++;
    stats_.cq_overflows++;
    return;
  }
  release(sq, req);
  // Completions outside poll() (a bdev poller, an io_uring event) come in
  // batches: raise each CQ's vector once, at the end of the pass.
  if (!in_poll_) irq_flush_.schedule();
}

void Queues::flush_irqs() {
  for (auto& [qid, cq] : cqs_) {
    if (!cq->irq_pending) continue;
    cq->irq_pending = false;
    stats_.irqs++;
    irqs_.trigger(cq->iv);
  }
}

void Queues::dispatch(Sq& sq, const nvme::Sqe& sqe) {
  nvmf::Request* req = sq.free_.back();
  sq.free_.pop_back();
  void* ctx = req->transport_ctx;
  req->reset();
  req->transport_ctx = ctx;
  req->cmd = sqe;
  req->qpair = &sq;
  sq.inflight_++;
  sq.submitted_++;
  stats_.submitted++;
  bool admin = sq.qid() == 0;
  if (admin && sqe.opc == kOpcAer) sq.aers_++;
  uint32_t len = ctrlr_->data_length(sqe, sq);
  if (len) {
    nvmf::XferDir dir = nvmf::xfer_dir_of(sqe.opc);
    if (dir == nvmf::XferDir::kNone || dir == nvmf::XferDir::kBidirectional) {
      req->status = Status::generic(sc::kInvalidField).at(0);
      on_complete(sq, req);  // failed here: the controller never saw it
      return;
    }
    DataMapParams p;
    p.length = len;
    p.admin = admin;
    p.device_writes = dir == nvmf::XferDir::kControllerToHost;
    p.page_size = page_size();
    Status s = map_data(sqe, p, *dma_, req->iov, nvmf::Request::kMaxIov, &req->iovcnt,
                        &static_cast<Sq::Ctx*>(ctx)->refs);
    if (!s.ok()) {
      req->status = s;
      on_complete(sq, req);  // failed here: the controller never saw it
      return;
    }
    req->xfer = dir;
    req->length = len;
  }
  ctrlr_->execute(req);
}

bool Queues::fetch(Sq& sq, int* work) {
  Cq* cq = sq.cq_;
  if (!cq || !cq->overflow.empty()) return true;  // back-pressure: CQ full
  uint32_t tail = load_doorbell(2u * sq.qid());
  if (tail >= sq.sq_size()) {
    invalid_doorbell("SQ tail", sq.qid(), tail);
    return false;
  }
  // The host wrote these entries from another core: ask for all of their
  // cache lines now, so each one's transfer overlaps the work on the ones
  // before it instead of stalling dispatch in turn.
  for (uint32_t i = sq.head_; i != tail; i = i + 1 == sq.sq_size() ? 0 : i + 1)
    __builtin_prefetch(&sq.base_[i]);
  while (sq.head_ != tail && !sq.free_.empty()) {
    nvme::Sqe sqe;
    std::memcpy(&sqe, &sq.base_[sq.head_], sizeof sqe);
    sq.head_ = (sq.head_ + 1) % sq.sq_size();
    ++*work;
    dispatch(sq, sqe);
    if (sq.deleted_ || failed_ || quiesced_) break;
  }
  return true;
}

void Queues::reap() {
  for (size_t i = 0; i < zombies_.size();) {
    Sq& sq = *zombies_[i];
    if (!sq.destroyed_notified_ && sq.inflight_ == sq.aers_) {
      sq.destroyed_notified_ = true;
      // Completes the parked AERs (dropped: the queue is gone).
      if (sq.controller()) nvmf::qpair_destroyed(&sq);
    }
    if (sq.destroyed_notified_ && sq.inflight_ == 0) {
      zombies_.erase(zombies_.begin() + static_cast<long>(i));
      continue;
    }
    ++i;
  }
}

int Queues::poll() {
  int work = 0;
  in_poll_ = true;
  // Queues the controller asked to drop.
  std::vector<uint16_t>& qids = poll_qids_;
  qids.clear();
  for (auto& [qid, sq] : sqs_)
    if (sq->disconnect_requested_) qids.push_back(qid);
  for (uint16_t qid : qids) kill_sq(qid);
  if (ctrlr_ && dma_ && !failed_ && !quiesced_) {
    for (auto& [qid, cq] : cqs_) {
      while (!cq->overflow.empty()) {
        nvmf::Request* req = cq->overflow.front();
        if (!post(*cq, static_cast<Sq*>(req->qpair), req)) break;
        cq->overflow.pop_front();
        release(*static_cast<Sq*>(req->qpair), req);
        ++work;
      }
      if (failed_) break;
    }
    qids.clear();
    for (auto& [qid, sq] : sqs_) qids.push_back(qid);
    for (uint16_t qid : qids) {
      auto it = sqs_.find(qid);
      if (it == sqs_.end()) continue;
      if (!fetch(*it->second, &work) || failed_) break;
    }
  }
  flush_irqs();
  in_poll_ = false;
  if (!zombies_.empty()) reap();
  return work;
}

}  // namespace nvemu::vfio_user
