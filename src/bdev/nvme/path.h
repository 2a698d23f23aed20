// A path to a remote NVMe controller, the only part of bdev_nvme that knows
// the transport. Bring-up (connect, enable, identify) and I/O qpair creation
// block, so they run on a worker thread; once handed over, the admin queue is
// driven from the main reactor and each I/O qpair from the one reactor that
// owns it, all without blocking.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "keyring/keyring.h"
#include "nvme/sqe.h"

namespace nvemu::bdev::nvme {

enum class Trtype : uint8_t { kTcp, kVfioUser };

// SPDK's spdk_nvme_transport_id, as far as bdev_nvme uses it.
struct Trid {
  Trtype trtype = Trtype::kTcp;
  std::string adrfam;  // "IPv4" for TCP, empty for vfio-user
  std::string traddr, trsvcid, subnqn;
  std::string hostaddr, hostsvcid;

  // "TCP" / "VFIOUSER", as spdk_nvme_transport_id_trtype_str.
  const char* trtype_str() const;
  // Same network path (SPDK: traddr, trsvcid, hostaddr, hostsvcid).
  bool same_path(const Trid& o) const;
  std::string describe() const;  // "TCP 127.0.0.1:4420 nqn..."
  // nvme_bdev_dump_trid_json's members, added to `out`.
  void dump(nlohmann::json& out) const;
};

struct PathOptions {
  std::string hostnqn;
  bool hdgst = false, ddgst = false;
  uint32_t kato_ms = 10000;
  int timeout_ms = 5000;  // connect and each bring-up command
  uint32_t transport_retry_count = 4;
  size_t io_qpairs = 1;  // vfio-user sizes its DMA memory for them
  // DH-HMAC-CHAP keys (keyring), for targets that require authentication.
  std::shared_ptr<const keyring::Key> dhchap_key, dhchap_ctrlr_key;
  uint32_t dhchap_digests = 0xe, dhchap_dhgroups = 0x3f;  // offered (bdev_nvme_set_options)
};

// What bring-up learned about the controller and its active namespaces.
struct NsInfo {
  uint32_t nsid = 0;
  uint32_t block_size = 512;
  uint64_t num_blocks = 0;
  std::string uuid;  // canonical text, empty when the controller reports none
  bool can_share = false;
};

struct CtrlrInfo {
  uint16_t cntlid = 0, vid = 0, oacs = 0;
  uint16_t oncs = 0;  // optional NVM commands: bit 2 Dataset Management, bit 3 Write Zeroes
  uint8_t cmic = 0;
  uint32_t ver = 0, kas_ms = 0, max_xfer = 128 * 1024;
  uint16_t io_depth = 128;
  std::string sn, mn, fr, subnqn;
  std::vector<NsInfo> namespaces;
};

using AdminCallback = std::function<void(const ::nvemu::nvme::Cqe& cqe)>;
using IoCallback = void (*)(void* ctx, const ::nvemu::nvme::Cqe& cqe);

// One I/O qpair. Owner reactor only.
class IoQpair {
 public:
  virtual ~IoQpair() = default;
  // Read (opc 02h) / write (01h) / flush (00h) / write zeroes (08h) of nlb
  // blocks with the data in iovs (total len), or a deallocate (DSM, 09h)
  // whose iovs hold its one 16-byte range. False when no slot is free now.
  virtual bool submit(uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
                      const struct iovec* iovs, int iovcnt, uint32_t len, IoCallback cb,
                      void* ctx) = 0;
  // Completions delivered, or -1 once the qpair failed (see AdminPath::poll).
  virtual int poll() = 0;
  // An fd that becomes readable when completions may be waiting, or -1 when
  // the qpair must be polled (shared-memory queues).
  virtual int fd() const = 0;
  virtual uint32_t outstanding() const = 0;
  // The connection broke (completions that follow carry a path error).
  virtual bool failed() const = 0;
  virtual std::string error() const = 0;
};

// The admin side of one connection to a controller.
class AdminPath {
 public:
  virtual ~AdminPath() = default;
  // Blocking, worker thread: enable the controller, identify it and its
  // active namespaces.
  virtual std::string bring_up(CtrlrInfo* info) = 0;
  // Blocking, worker thread, after bring_up: I/O qpair `qid`.
  virtual std::unique_ptr<IoQpair> create_io_qpair(uint16_t qid, uint16_t depth,
                                                   std::string* error) = 0;
  // Blocking, worker thread: identify namespace `nsid` (active or not).
  virtual std::string identify_ns(uint32_t nsid, NsInfo* out, bool* active) = 0;

  // Main reactor, after hand-over: asynchronous admin commands. `buf` must
  // stay valid until `cb` runs. False when the queue is down or full.
  virtual bool submit_admin(const ::nvemu::nvme::Sqe& sqe, void* buf, uint32_t len, bool to_ctrlr,
                            AdminCallback cb) = 0;
  // -1 once the connection failed. A poll that delivers completions and
  // then fails may still return their count: check failed() too, before the
  // fd number (closed by then) is reused by anything else.
  virtual int poll() = 0;
  virtual bool failed() const = 0;
  virtual int fd() const = 0;
  virtual std::string error() const = 0;
};

// Opens the transport connection (blocking). nullptr with *error set.
std::unique_ptr<AdminPath> connect_path(const Trid& trid, const PathOptions& opts,
                                        std::string* error, int* err_no);
std::unique_ptr<AdminPath> connect_tcp(const Trid& trid, const PathOptions& opts,
                                       std::string* error, int* err_no);
std::unique_ptr<AdminPath> connect_vfio_user(const Trid& trid, const PathOptions& opts,
                                             std::string* error, int* err_no);

// The command dwords of an I/O command for both transports: the LBA range in
// CDW10-12, except Dataset Management, whose one range (deallocate) travels
// as its 16 bytes of data.
void set_io_dwords(::nvemu::nvme::Sqe* s, uint8_t opc, uint64_t slba, uint32_t nlb);
// Whether the command's data goes to the controller (write, the DSM range).
bool data_to_controller(uint8_t opc);

// Identify Controller / Namespace parsing shared by both transports.
void parse_identify_ctrlr(const void* buf4k, CtrlrInfo* info);
bool parse_identify_ns(const void* buf4k, uint32_t nsid, NsInfo* out);
// Namespace Identification Descriptor list (CNS 03h) → UUID text or "".
std::string parse_ns_uuid(const void* buf4k);

}  // namespace nvemu::bdev::nvme
