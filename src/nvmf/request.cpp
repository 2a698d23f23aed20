#include "nvmf/request.h"

#include <algorithm>
#include <cstring>

namespace nvemu::nvmf {

XferDir xfer_dir_of(uint8_t opcode) {
  switch (opcode & 0x3) {
    case 0:
      return XferDir::kNone;
    case 1:
      return XferDir::kHostToController;
    case 2:
      return XferDir::kControllerToHost;
    default:
      return XferDir::kBidirectional;
  }
}

XferDir fabrics_xfer_dir_of(uint8_t fctype) {
  return xfer_dir_of(fctype);
}

size_t Request::copy_to_iov(const void* src, size_t len, size_t offset) {
  const auto* s = static_cast<const uint8_t*>(src);
  size_t done = 0;
  for (int i = 0; i < iovcnt && done < len; ++i) {
    size_t seg = iov[i].iov_len;
    if (offset >= seg) {
      offset -= seg;
      continue;
    }
    size_t n = std::min(seg - offset, len - done);
    std::memcpy(static_cast<uint8_t*>(iov[i].iov_base) + offset, s + done, n);
    done += n;
    offset = 0;
  }
  return done;
}

size_t Request::copy_from_iov(void* dst, size_t len, size_t offset) const {
  auto* d = static_cast<uint8_t*>(dst);
  size_t done = 0;
  for (int i = 0; i < iovcnt && done < len; ++i) {
    size_t seg = iov[i].iov_len;
    if (offset >= seg) {
      offset -= seg;
      continue;
    }
    size_t n = std::min(seg - offset, len - done);
    std::memcpy(d + done, static_cast<const uint8_t*>(iov[i].iov_base) + offset, n);
    done += n;
    offset = 0;
  }
  return done;
}

}  // namespace nvemu::nvmf
