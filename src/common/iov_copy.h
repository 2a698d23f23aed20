// Copies between an iovec list and one flat buffer, for a transport that
// needs the data in a place of its own (a bounce slot, shared DMA memory).
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace nvemu {

// gather: iovs -> flat; otherwise flat -> iovs. Copies at most len bytes.
inline void iov_copy(const struct iovec* iovs, int iovcnt, uint8_t* flat, uint32_t len,
                     bool gather) {
  uint32_t done = 0;
  for (int i = 0; i < iovcnt && done < len; ++i) {
    size_t k = std::min<size_t>(iovs[i].iov_len, len - done);
    if (gather)
      std::memcpy(flat + done, iovs[i].iov_base, k);
    else
      std::memcpy(iovs[i].iov_base, flat + done, k);
    done += static_cast<uint32_t>(k);
  }
}

}  // namespace nvemu
