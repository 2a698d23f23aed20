// nvemu's NVMe/TCP host: one remote controller reached over NVMe/TCP. It
// owns the admin Queue, runs the fabrics bring-up (Connect, Property Get/Set
// CC.EN=1, wait CSTS.RDY, Identify) synchronously, and connects I/O Queues
// that the caller owns and drives (Queue::poll()). The I/O helpers at the end
// build SQEs on the stack and submit them without allocating.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "common/auth/dhchap.h"
#include "host/tcp/queue.h"
#include "nvme/sqe.h"

namespace nvemu::host::tcp {

struct ConnectParams {
  std::string traddr = "127.0.0.1";
  uint16_t port = 4420;
  std::string subnqn;
  std::string hostnqn = "nqn.2014-08.org.nvmexpress:uuid:6e76656d-7500-4000-8000-000000000001";
  std::array<uint8_t, 16> hostid{0x6e, 0x76, 0x65, 0x6d, 0x75, 0, 0x40, 0,
                                 0x80, 0,    0,    0,    0,    0, 0,    1};
  bool hdgst = false;
  bool ddgst = false;
  uint16_t admin_depth = 32;
  uint32_t kato_ms = 0;         // 0: no keep-alive timer
  bool disable_sqflow = false;  // Connect CATTR bit 2
  bool enable = true;           // set CC.EN and wait for CSTS.RDY
  int timeout_ms = 5000;
  std::string src_addr;  // local address/port to bind (QueueOptions)
  uint16_t src_port = 0;
  // DH-HMAC-CHAP (Base 2.0, 8.13.5): the host's secret, answered whenever
  // a queue's Connect response asks for authentication; with the
  // controller's secret too, the host checks the controller back. The
  // digests and DH groups offered (bit = identifier) default to all.
  std::optional<auth::Secret> dhchap_key, dhchap_ctrlr_key;
  uint32_t dhchap_digests = 0xe;
  uint32_t dhchap_dhgroups = 0x3f;
};

// Bit 0 phase excluded: the 15-bit status field of a CQE as Status would
// encode it, and a readable rendering of it.
inline bool cqe_ok(const nvme::Cqe& c) {
  return (c.status >> 1) == 0;
}
std::string cqe_status_string(const nvme::Cqe& c);

class Host {
 public:
  // Admin queue connect + bring-up. Returns "" or what failed.
  std::string connect(const ConnectParams& p);
  // Connects `q` as I/O queue `qid` of this controller with `depth` slots.
  std::string connect_io_queue(Queue* q, uint16_t qid, uint16_t depth);
  void disconnect();

  std::string property_get(uint32_t offset, bool eight_bytes, uint64_t* value);
  std::string property_set(uint32_t offset, bool eight_bytes, uint64_t value);
  std::string identify(uint8_t cns, uint32_t nsid, void* buf4096);
  std::string get_log_page(uint8_t lid, void* buf, uint32_t len, uint64_t offset = 0,
                           uint32_t nsid = 0xffffffff);
  std::string keep_alive();
  // Any admin command, synchronously.
  std::string admin_cmd(const nvme::Sqe& sqe, void* buf, uint32_t len, Dir dir,
                        nvme::Cqe* cqe = nullptr);

  Queue& admin() { return admin_; }
  uint16_t cntlid() const { return cntlid_; }
  // In-capsule data bytes an I/O queue may carry (IOCCSZ * 16 - 64).
  uint32_t io_max_icd() const { return io_max_icd_; }
  const ConnectParams& params() const { return params_; }

 private:
  std::string fabrics_connect(Queue& q, uint16_t qid, uint16_t depth, uint16_t cntlid,
                              uint16_t* cntlid_out);
  // One DH-HMAC-CHAP transaction on q (host/tcp/auth.cpp).
  std::string authenticate(Queue& q, uint16_t qid);

  ConnectParams params_;
  Queue admin_;
  uint16_t cntlid_ = 0xffff;
  uint32_t io_max_icd_ = 0;
};

// NVM command set I/O, asynchronous. `nlb` is the number of blocks (1-based);
// len = nlb * block size. False when the queue has no free slot.
bool submit_read(Queue& q, uint32_t nsid, uint64_t slba, uint32_t nlb, void* buf, uint32_t len,
                 CompletionFn fn, void* ctx);
bool submit_write(Queue& q, uint32_t nsid, uint64_t slba, uint32_t nlb, const void* buf,
                  uint32_t len, CompletionFn fn, void* ctx);
bool submit_flush(Queue& q, uint32_t nsid, CompletionFn fn, void* ctx);

}  // namespace nvemu::host::tcp
