// nvemu's userspace NVMe PCIe host driver over vfio-user: connects to a
// vfio-user NVMe function (<dir>/cntrl), shares a memfd with it as DMA
// memory, maps the doorbell page, enables the controller and runs admin and
// I/O queues with PRPs, polling completions (or MSI-X eventfds). Used by the
// tests and nvemu-perf. Single-threaded: one Device per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nvme/sqe.h"
#include "wire/vfio_user/msg_socket.h"
#include "wire/vfio_user/protocol.h"

namespace nvemu::host::vfio_user {

using nvemu::vfio_user::Message;

class Device {
 public:
  // path: a directory holding "cntrl", or the socket itself. Negotiates the
  // protocol version and reads device and region info.
  static std::unique_ptr<Device> connect(const std::string& path, std::string* error);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // ---- Protocol ----------------------------------------------------------
  // Sends a request and waits for its reply. false on transport failure
  // (*error set); an error reply returns true with reply->hdr.flags
  // carrying kFlagError and reply->hdr.error the errno.
  bool request(uint16_t cmd, const void* payload, size_t len, Message* reply, std::string* error,
               const int* fds = nullptr, size_t nfds = 0);
  int socket_fd() const { return sock_; }
  const nlohmann::json& server_caps() const { return caps_; }
  bool doorbells_mapped() const { return db_map_ != nullptr; }

  bool region_read(uint32_t region, uint64_t off, void* buf, uint32_t len, std::string* error);
  bool region_write(uint32_t region, uint64_t off, const void* buf, uint32_t len,
                    std::string* error);
  uint32_t config_read32(uint32_t off);
  uint32_t read32(uint32_t bar0_off);
  uint64_t read64(uint32_t bar0_off);
  bool write32(uint32_t bar0_off, uint32_t v);
  bool write64(uint32_t bar0_off, uint64_t v);

  // ---- DMA memory ----------------------------------------------------------
  // Creates a memfd of `bytes` and DMA_MAPs it at `iova`.
  bool setup_memory(size_t bytes, uint64_t iova, std::string* error);
  // Bump allocator over that memory (page aligned by default). nullptr when full.
  void* alloc(size_t bytes, size_t align = 4096);
  uint64_t iova(const void* p) const { return iova_ + (static_cast<const uint8_t*>(p) - mem_); }
  uint8_t* mem() const { return mem_; }
  size_t mem_size() const { return mem_size_; }

  // ---- NVMe ----------------------------------------------------------------
  // AQA/ASQ/ACQ, CC (MPS 4 KiB, IOSQES 6, IOCQES 4), CC.EN=1, waits CSTS.RDY.
  bool enable(uint16_t aq_depth, std::string* error);
  // CC.EN=0 and wait for CSTS.RDY=0.
  bool disable(std::string* error);
  // Submits an admin command, waits for its completion (timeout_ms).
  bool admin(nvme::Sqe cmd, nvme::Cqe* cqe, std::string* error, int timeout_ms = 5000);
  bool identify(uint8_t cns, uint32_t nsid, void* buf4k, std::string* error);
  // Create I/O CQ + SQ `qid` of `depth` entries; irq: use MSI-X vector qid
  // (call enable_msix first).
  bool create_io_queue(uint16_t qid, uint16_t depth, bool irq, std::string* error);
  bool delete_io_queue(uint16_t qid, std::string* error);
  // Passes an eventfd for MSI-X `vector` (SET_IRQS).
  bool set_msix_eventfd(uint16_t vector, int eventfd, std::string* error);

  // Fills the data pointer of cmd with PRPs for buf (inside DMA memory).
  // false when buf is outside it or too long for one PRP list page.
  bool build_prps(uint16_t qid, uint16_t cid, nvme::Sqe* cmd, void* buf, uint32_t len);
  // Submits cmd on qid (cid chosen here, returned). -1 when the SQ is full.
  int submit(uint16_t qid, nvme::Sqe cmd);
  // Reaps completions of qid, calling fn per CQE; returns how many.
  int poll(uint16_t qid, const std::function<void(const nvme::Cqe&)>& fn);
  // Synchronous Read/Write (opc 02h/01h) of nblocks at lba into/from buf.
  bool io(uint16_t qid, uint8_t opc, uint32_t nsid, uint64_t lba, uint32_t nblocks, void* buf,
          uint32_t len, nvme::Cqe* cqe, std::string* error, int timeout_ms = 5000);
  // Rings the SQ tail doorbell of qid with an arbitrary value (tests).
  void ring_sq(uint16_t qid, uint32_t tail);

 private:
  Device() = default;
  struct Queue {
    uint16_t qid = 0;
    uint16_t depth = 0;
    nvme::Sqe* sq = nullptr;
    nvme::Cqe* cq = nullptr;
    uint8_t* prp_lists = nullptr;  // one page per cid
    uint32_t sq_tail = 0, cq_head = 0;
    bool phase = true;
    uint16_t next_cid = 0;
    uint32_t outstanding = 0;
  };
  bool negotiate(std::string* error);
  void doorbell(uint32_t index, uint32_t value);
  bool wait_csts_rdy(bool want, int timeout_ms);

  int sock_ = -1;
  uint16_t next_id_ = 1;
  nlohmann::json caps_;
  int mem_fd_ = -1;
  uint8_t* mem_ = nullptr;
  size_t mem_size_ = 0, mem_used_ = 0;
  uint64_t iova_ = 0;
  int bar0_fd_ = -1;
  uint32_t db_stride_ = 4;      // bytes between doorbells: 4 << CAP.DSTRD
  uint8_t* db_area_ = nullptr;  // BAR0's mmapped sparse area, if any
  size_t db_area_len_ = 0;
  uint8_t* db_map_ = nullptr;  // where its doorbells start (BAR0 0x1000)
  size_t db_map_len_ = 0;
  std::map<uint16_t, Queue> queues_;
};

}  // namespace nvemu::host::vfio_user
