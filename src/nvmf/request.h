// The controller <-> transport contract, part 1: a request.
//
// A transport turns whatever arrives on its wire (an NVMe/TCP command capsule,
// an SQE fetched from host memory over vfio-user) into a Request, makes the
// command's data reachable through iovecs, and hands it to the controller with
// Controller::execute() (or Target::connect() for a fabrics Connect). The
// controller fills `rsp` and `status` and calls qpair->complete(req) exactly
// once, on the qpair's reactor. It never learns which transport carries it.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>

#include "bdev/bdev.h"
#include "nvme/sqe.h"

namespace nvemu::nvmf {

class Qpair;

enum class XferDir : uint8_t {
  kNone,
  kHostToController,  // host data the controller consumes (Write, Set Features...)
  kControllerToHost,  // data the controller produces (Read, Identify, Get Log Page...)
  kBidirectional,     // invalid for every command nvemu supports
};

// Direction from the opcode's low bits (Base 2.0, Figure 86). For a fabrics
// command (opcode 7Fh) pass the fctype; its low bits follow the same rule.
XferDir xfer_dir_of(uint8_t opcode);
XferDir fabrics_xfer_dir_of(uint8_t fctype);

struct Request {
  static constexpr int kMaxIov = 33;  // 128 KiB in 4 KiB pages + an unaligned head

  nvme::Sqe cmd{};
  nvme::Cqe rsp{};        // controller sets cdw0/cdw1; transport sets sqhd/sqid/cid/phase
  nvme::Status status{};  // controller's verdict; the transport encodes it into rsp
  Qpair* qpair = nullptr;

  // The command's data buffer, valid for the whole execution. For
  // kHostToController it holds the host's data before execute(); for
  // kControllerToHost the controller fills it. `length` is the data length
  // the host described (SGL length or PRP-walked length).
  struct iovec iov[kMaxIov];
  int iovcnt = 0;
  uint32_t length = 0;
  XferDir xfer = XferDir::kNone;

  // Transport: a read's data may be left where the bdev holds it (memory
  // bdevs): the controller then points iov at it and sets data_hold, which
  // the transport drops (data_hold.reset()) once it has sent the data.
  bool direct_ok = false;
  std::shared_ptr<void> data_hold;

  // Controller-private scratch, so the I/O path allocates nothing.
  bdev::BdevIo bdev_io{};
  void* ctrlr_ctx = nullptr;
  uint64_t ctrlr_word = 0;
  Request* fused_partner = nullptr;
  // Links in the channel's list of writes in flight (poll_group.h).
  Request* write_prev = nullptr;
  Request* write_next = nullptr;

  // Transport-private.
  void* transport_ctx = nullptr;

  void reset() {
    status = {};
    rsp = {};
    iovcnt = 0;
    length = 0;
    xfer = XferDir::kNone;
    ctrlr_ctx = nullptr;
    ctrlr_word = 0;
    fused_partner = nullptr;
    direct_ok = false;
    data_hold.reset();
  }
  // Copy helpers between the flat buffer a command handler builds (Identify
  // data, a log page) and the request's iovecs. Return bytes copied.
  size_t copy_to_iov(const void* src, size_t len, size_t offset = 0);
  size_t copy_from_iov(void* dst, size_t len, size_t offset = 0) const;
};

}  // namespace nvemu::nvmf
