// Walks a PCIe command's data pointer (PRP entries and lists, NVMe Base
// 2.0, 4.1.1; or an SGL, 4.1.2) through the DMA map table into local iovecs.
// Every entry, list pointer, segment and length is checked; a bad one yields
// the status the spec names (Invalid PRP Offset, Data Transfer Error, SGL
// Descriptor Type Invalid, Data SGL Length Invalid, ...) with the error
// location of the data pointer, never an out-of-bounds access.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "nvme/sqe.h"
#include "nvmf/vfio_user/dma.h"

namespace nvemu::vfio_user {

// References on the DMA regions a request's iovecs point into (so a
// DMA_UNMAP waits for the request). Fixed size: no allocation per I/O.
struct DmaRefs {
  static constexpr int kMax = 40;
  DmaRef refs[kMax];
  int n = 0;
  // Adds a reference unless the region is already held. False when full.
  bool add(DmaRef&& r);
  void clear() {
    for (int i = 0; i < n; ++i) refs[i].reset();
    n = 0;
  }
};

struct DataMapParams {
  uint32_t length = 0;         // bytes the command moves (Controller::data_length)
  bool admin = false;          // admin commands on PCIe must use PRPs
  bool device_writes = false;  // controller-to-host: the mapping must be writable
  uint32_t page_size = 4096;   // CC.MPS
  uint32_t max_sgl_descriptors = 1024;
};

// Fills iov[0..*iovcnt) with `p.length` bytes described by cmd's data
// pointer. Contiguous pieces are merged. Returns the status to complete the
// command with when the pointer is invalid.
nvme::Status map_data(const nvme::Sqe& cmd, const DataMapParams& p, const DmaTable& dma,
                      struct iovec* iov, int max_iov, int* iovcnt, DmaRefs* refs);

}  // namespace nvemu::vfio_user
