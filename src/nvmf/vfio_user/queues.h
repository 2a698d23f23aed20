// The NVMe queues of one emulated PCIe function, living in host memory
// reached through the DMA map table (NVMe Base 2.0, 3.3 and the PCIe
// transport spec): the transport side of QueueHost.
//
// Polling. SQ tail and CQ head doorbells sit in the shared doorbell page
// (BAR0 0x1000, mmapped by the host). poll() reads the SQ tails, fetches new
// SQEs, walks their PRPs/SGLs into Request iovecs and hands them to the
// controller; completions are written to the CQ with the phase tag and raise
// the CQ's MSI-X vector (once per poll pass per CQ). A full CQ parks
// completions in order (back-pressure) and its SQs are not fetched until
// the host frees entries.
//
// Lifetime. A deleted queue (Delete I/O SQ, CC.EN=0, controller failure)
// stops at once, but the Sq object, its Request pool and its DMA references
// stay until the last request handed to the controller comes back; then
// nvmf::qpair_destroyed() runs and it is freed. One reactor: no locks.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "nvmf/request.h"
#include "nvmf/transport.h"
#include "nvmf/vfio_user/dma.h"
#include "nvmf/vfio_user/irq.h"
#include "nvmf/vfio_user/prp_sgl.h"
#include "reactor/reactor.h"

namespace nvemu::vfio_user {

class Queues;

struct Cq {
  uint16_t qid = 0;
  uint32_t size = 0;
  nvme::Cqe* base = nullptr;
  DmaRef mem;
  uint32_t tail = 0;
  uint32_t head = 0;  // last head read from the doorbell
  bool phase = true;
  bool ien = false;
  uint16_t iv = 0;
  uint32_t sq_count = 0;
  bool irq_pending = false;
  std::deque<nvmf::Request*> overflow;  // completions waiting for CQ space
  uint64_t overflows = 0;
};

class Sq final : public nvmf::Qpair {
 public:
  Sq(Queues& owner, Reactor& reactor, uint16_t qid, uint32_t size, uint16_t cqid);
  ~Sq() override;

  void disconnect() override;
  std::string trtype() const override { return "VFIOUSER"; }
  nlohmann::json peer_json() const override;

 private:
  friend class Queues;
  // Qpair: the controller's completion (Qpair::complete counted it).
  void deliver(nvmf::Request* req) override;
  struct Ctx {
    DmaRefs refs;
  };
  Queues& owner_;
  uint16_t cqid_;
  Cq* cq_ = nullptr;  // its CQ, which outlives it while it is not deleted_
  nvme::Sqe* base_ = nullptr;
  DmaRef mem_;
  uint32_t head_ = 0;
  std::vector<nvmf::Request> reqs_;
  std::vector<Ctx> ctx_;
  std::vector<nvmf::Request*> free_;
  uint32_t inflight_ = 0;  // handed to the controller, not yet completed
  uint32_t aers_ = 0;      // of which parked Asynchronous Event Requests
  bool deleted_ = false;
  bool destroyed_notified_ = false;
  bool disconnect_requested_ = false;
  uint64_t submitted_ = 0;
};

struct QueueStats {
  uint64_t submitted = 0, completed = 0, cq_overflows = 0, irqs = 0, invalid_doorbells = 0;
};

class Queues final : public nvmf::QueueHost {
 public:
  Queues(Reactor& reactor, Irqs& irqs);
  ~Queues() override;

  void set_controller(nvmf::Controller* c) { ctrlr_ = c; }
  void set_dma(const DmaTable* dma) { dma_ = dma; }
  // The shared doorbell page (kDoorbellSize bytes), before any enable.
  void set_doorbells(uint32_t* page) { doorbells_ = page; }
  // What drop_host() runs on the reactor (the endpoint drops its client).
  void set_drop_host(std::function<void()> fn) { drop_host_fn_ = std::move(fn); }

  // QueueHost.
  bool on_enable() override;
  void on_disable() override;
  void on_shutdown() override;
  nvme::Status create_io_cq(uint16_t qid, uint32_t qsize, uint64_t prp1, bool pc, bool ien,
                            uint16_t iv) override;
  nvme::Status create_io_sq(uint16_t qid, uint32_t qsize, uint64_t prp1, bool pc, uint16_t cqid,
                            uint8_t qprio) override;
  nvme::Status delete_io_cq(uint16_t qid) override;
  nvme::Status delete_io_sq(uint16_t qid) override;
  void drop_host() override;

  // One pass over the doorbells, CQ backlogs and dead queues. Returns the
  // work done (0 = idle).
  int poll();
  // No live queue: nothing to poll.
  bool empty() const { return sqs_.empty() && cqs_.empty(); }
  // Nothing in flight anywhere (every deleted queue freed).
  bool drained() const { return zombies_.empty(); }
  // Drops every queue (the host is gone): same as a controller reset.
  void delete_all();
  const QueueStats& stats() const { return stats_; }

 private:
  friend class Sq;
  static constexpr uint16_t kMaxQid = 511;  // doorbell page: 512 pairs at DSTRD 0

  uint32_t load_doorbell(uint32_t index) const;
  void reset_doorbell(uint32_t index);
  // CC.MPS as of the last enable: fixed while the controller is enabled, and
  // read per command, so it is cached instead of asking the controller.
  uint32_t page_size() const { return page_size_; }
  nvme::Status make_cq(uint16_t qid, uint32_t size, uint64_t addr, bool ien, uint16_t iv);
  nvme::Status make_sq(uint16_t qid, uint32_t size, uint64_t addr, uint16_t cqid);
  bool fetch(Sq& sq, int* work);
  void dispatch(Sq& sq, const nvme::Sqe& sqe);
  void on_complete(Sq& sq, nvmf::Request* req);
  bool post(Cq& cq, Sq* sq, nvmf::Request* req);
  void release(Sq& sq, nvmf::Request* req);
  bool refresh_cq_head(Cq& cq);
  void flush_irqs();
  void kill_sq(uint16_t qid);
  void reap();
  void invalid_doorbell(const char* what, uint16_t qid, uint32_t value);
  Cq* find_cq(uint16_t qid) {
    auto it = cqs_.find(qid);
    return it == cqs_.end() ? nullptr : it->second.get();
  }

  Reactor& reactor_;
  Irqs& irqs_;
  uint32_t* doorbells_ = nullptr;
  uint32_t page_size_ = 4096;
  nvmf::Controller* ctrlr_ = nullptr;
  const DmaTable* dma_ = nullptr;
  std::map<uint16_t, std::unique_ptr<Sq>> sqs_;
  std::map<uint16_t, std::unique_ptr<Cq>> cqs_;
  std::vector<std::unique_ptr<Sq>> zombies_;
  std::vector<uint16_t> poll_qids_;  // poll()'s scratch: no allocation per pass
  bool in_poll_ = false;
  // Raises the vectors of completions posted outside poll(), once a pass.
  Reactor::PassTask irq_flush_{reactor_, [this] { flush_irqs(); }};
  bool quiesced_ = false;
  bool failed_ = false;
  QueueStats stats_;
  std::function<void()> drop_host_fn_;
};

}  // namespace nvemu::vfio_user
