// nvemu-host: one NVMe controller reached through nvemu's own initiators
// (src/host/vfio_user for a PCIe function, src/host/tcp for NVMe/TCP),
// behind the few synchronous operations the tool needs.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <string>

#include "nvme/sqe.h"

namespace nvemu::hosttool {

// An SPDK transport ID: 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1
// trsvcid:4420 subnqn:NQN' or 'trtype:VFIOUSER traddr:/path/dir'. Keys are
// case-insensitive and end at the first ':' or '=', as spdk_nvme_transport_id_parse.
struct Trid {
  std::string trtype;  // upper-cased: TCP or VFIOUSER
  std::string adrfam;
  std::string traddr;
  std::string trsvcid;
  std::string subnqn;
};
// "" or what is wrong with the string.
std::string parse_trid(const std::string& s, Trid* out);

class HostCtrl {
 public:
  virtual ~HostCtrl() = default;
  // Attaches, enables the controller (CC.EN=1, CSTS.RDY) and creates I/O
  // queue 1. nullptr with *error on failure.
  static std::unique_ptr<HostCtrl> open(const Trid& t, const std::string& hostnqn,
                                        std::string* error);

  // Admin Identify into a 4 KiB buffer. "" or the failure.
  virtual std::string identify(uint8_t cns, uint32_t nsid, void* buf4k) = 0;
  // Read (write=false) or Write of nblocks at lba on queue 1; len bytes,
  // at most max_transfer(). "" or the failure.
  virtual std::string rw(bool write, uint32_t nsid, uint64_t lba, uint32_t nblocks, void* buf,
                         uint32_t len) = 0;
  // Another NVM command on queue 1 (Flush, Write Zeroes, Dataset
  // Management); `buf`/`len` is data sent with it (may be empty). "" or the
  // failure, naming the command as `name`.
  virtual std::string io_cmd(const char* name, const nvme::Sqe& sqe, const void* buf,
                             uint32_t len) {
    (void)sqe, (void)buf, (void)len;
    return fmt::format("{} is not supported by nvemu-host on this transport", name);
  }
  // Bytes one command may move (before MDTS is applied).
  virtual uint32_t max_transfer() const = 0;
  // Called about once a second while holding (TCP keep-alive). "" or failure.
  virtual std::string tick() { return ""; }
  // Orderly detach: delete the I/O queue, CC.EN=0 (PCIe) or disconnect.
  virtual void close() = 0;
};

std::unique_ptr<HostCtrl> open_vfio_user(const Trid& t, std::string* error);
std::unique_ptr<HostCtrl> open_tcp(const Trid& t, const std::string& hostnqn, std::string* error);

}  // namespace nvemu::hosttool
