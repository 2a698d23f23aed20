// Private to the initiator queue: a command slot and a queued PDU.
#pragma once

#include <sys/uio.h>

#include "host/tcp/queue.h"

namespace nvemu::host::tcp {

using wire::tcp::CapsuleCmd;
using wire::tcp::H2CData;
using wire::tcp::kDigestLen;

struct Queue::Item {
  enum class Kind : uint8_t { kCapsule, kH2C, kControl };
  struct iovec iov[Queue::kMaxIov + 3];  // header, data pieces, digest
  int iovcnt = 0;
  Kind kind = Kind::kControl;
  bool queued = false;
  Item* next = nullptr;
  Slot* slot = nullptr;
  void add(const void* b, size_t n) {
    iov[iovcnt].iov_base = const_cast<void*>(b);
    iov[iovcnt].iov_len = n;
    ++iovcnt;
  }
};

struct Queue::Slot {
  bool busy = false;
  bool zombie = false;  // completed while its PDUs were still queued
  bool data_error = false;
  uint16_t cid = 0;
  nvme::Sqe sqe{};
  uint8_t* buf = nullptr;
  const struct iovec* data_iov = nullptr;  // instead of buf (submit_iov writes)
  int data_iovcnt = 0;
  uint32_t len = 0;
  // Adds [off, off + n) of the command's data to `it`, and returns its CRC32C
  // when `digest` (the data digest).
  uint32_t add_data(Item& it, uint32_t off, uint32_t n, bool digest) {
    if (!data_iov) {
      it.add(buf + off, n);
      return digest ? wire::tcp::digest(buf + off, n) : 0;
    }
    uint32_t skip = off, left = n;
    for (int i = 0; i < data_iovcnt && left; ++i) {
      size_t l = data_iov[i].iov_len;
      if (skip >= l) {
        skip -= static_cast<uint32_t>(l);
        continue;
      }
      size_t k = std::min<size_t>(l - skip, left);
      it.add(static_cast<uint8_t*>(data_iov[i].iov_base) + skip, k);
      left -= static_cast<uint32_t>(k);
      skip = 0;
    }
    return digest ? wire::tcp::digest_iov(data_iov, data_iovcnt, off, n) : 0;
  }
  Dir dir = Dir::kNone;
  CompletionFn fn = nullptr;
  void* ctx = nullptr;
  nvme::Cqe pending{};  // CQE held while a zombie drains

  Item cap;
  alignas(8) uint8_t cap_hdr[sizeof(CapsuleCmd) + kDigestLen + 128];
  uint32_t cap_ddgst = 0;

  Item h2c;
  alignas(8) uint8_t h2c_hdr[sizeof(H2CData) + kDigestLen + 128];
  uint32_t h2c_ddgst = 0;
  uint16_t ttag = 0;
  uint32_t h2c_next = 0, r2t_end = 0;

  uint32_t c2h_next = 0;
};

}  // namespace nvemu::host::tcp
