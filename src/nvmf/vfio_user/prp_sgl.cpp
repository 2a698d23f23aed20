#include "nvmf/vfio_user/prp_sgl.h"

#include <algorithm>
#include <cstring>

namespace nvemu::vfio_user {

using nvme::Status;
namespace sc = nvme::sc;

namespace {

constexpr uint16_t kDptrOffset = offsetof(nvme::Sqe, dptr);
constexpr uint16_t kFlagsOffset = offsetof(nvme::Sqe, flags);

Status dptr_error(uint8_t code) {
  return Status::generic(code).at(kDptrOffset);
}

class IovSink {
 public:
  IovSink(const DmaTable& dma, bool write, struct iovec* iov, int max, DmaRefs* refs)
      : dma_(dma), write_(write), iov_(iov), max_(max), refs_(refs) {}

  // Appends guest range [addr, addr+len), possibly across regions.
  Status add(uint64_t addr, uint64_t len) {
    if (addr + len < addr) return dptr_error(sc::kDataTransferError);
    // The next page of a buffer already mapped (a PRP list of a contiguous
    // buffer): extend the last piece; same region, reference already held.
    if (n_ > 0 && addr == next_iova_ && len <= region_end_ - addr) {
      iov_[n_ - 1].iov_len += len;
      next_iova_ += len;
      return Status::success();
    }
    while (len > 0) {
      uint64_t got = 0;
      DmaRef ref;
      uint8_t* p =
          dma_.translate_prefix(addr, len, write_, &got, refs_ ? &ref : nullptr, &region_end_);
      if (!p) return dptr_error(sc::kDataTransferError);
      if (refs_ && !refs_->add(std::move(ref))) return dptr_error(sc::kDataTransferError);
      if (n_ > 0 && static_cast<uint8_t*>(iov_[n_ - 1].iov_base) + iov_[n_ - 1].iov_len == p) {
        iov_[n_ - 1].iov_len += got;
      } else {
        // More pieces than a request holds: beyond what MDTS allows.
        if (n_ == max_) return Status::generic(sc::kInvalidField).at(kDptrOffset);
        iov_[n_].iov_base = p;
        iov_[n_].iov_len = got;
        ++n_;
      }
      addr += got;
      len -= got;
      next_iova_ = addr;
    }
    return Status::success();
  }
  int count() const { return n_; }

 private:
  const DmaTable& dma_;
  bool write_;
  struct iovec* iov_;
  int max_;
  DmaRefs* refs_;
  int n_ = 0;
  uint64_t next_iova_ = 0;   // guest address right after the last piece
  uint64_t region_end_ = 0;  // end of the region that piece lies in
};

Status walk_prp(const nvme::Sqe& cmd, const DataMapParams& p, const DmaTable& dma, IovSink* sink) {
  const uint64_t page = p.page_size;
  const uint64_t mask = page - 1;
  uint64_t prp1 = cmd.dptr.prp.prp1;
  uint64_t prp2 = cmd.dptr.prp.prp2;
  if (prp1 & 0x3) return dptr_error(sc::kInvalidPrpOffset);
  uint64_t remaining = p.length;
  uint64_t first = std::min<uint64_t>(remaining, page - (prp1 & mask));
  Status s = sink->add(prp1, first);
  if (!s.ok()) return s;
  remaining -= first;
  if (remaining == 0) return Status::success();
  if (remaining <= page) {
    // PRP2 is the second (and last) data page.
    if (prp2 & mask) return Status::generic(sc::kInvalidPrpOffset).at(kDptrOffset + 8);
    return sink->add(prp2, remaining);
  }
  // PRP2 points to a PRP list; the last entry of a full list page points to
  // the next list page.
  uint64_t list = prp2;
  for (;;) {
    if (list & 0x3) return Status::generic(sc::kInvalidPrpOffset).at(kDptrOffset + 8);
    uint64_t entries = (page - (list & mask)) / 8;
    const uint8_t* lp = dma.translate(list, entries * 8, false);
    if (!lp) return dptr_error(sc::kDataTransferError);
    for (uint64_t i = 0; i < entries; ++i) {
      uint64_t e;
      std::memcpy(&e, lp + i * 8, 8);
      if (i == entries - 1 && remaining > page) {
        list = e;  // chain to the next list page
        break;
      }
      if (e & mask) return dptr_error(sc::kInvalidPrpOffset);
      uint64_t n = std::min<uint64_t>(remaining, page);
      s = sink->add(e, n);
      if (!s.ok()) return s;
      remaining -= n;
      if (remaining == 0) return Status::success();
    }
  }
}

uint8_t sgl_type(const nvme::SglDescriptor& d) {
  return d.type >> 4;
}
uint8_t sgl_subtype(const nvme::SglDescriptor& d) {
  return d.type & 0xf;
}

Status walk_sgl(const nvme::Sqe& cmd, const DataMapParams& p, const DmaTable& dma, IovSink* sink) {
  uint64_t remaining = p.length;
  uint32_t budget = p.max_sgl_descriptors;
  // The descriptor being processed, and the segment it came from.
  nvme::SglDescriptor d = cmd.dptr.sgl1;
  const uint8_t* seg = nullptr;  // current segment's descriptors
  uint32_t seg_count = 0, seg_index = 0;
  bool in_last_segment = false;
  bool from_sqe = true;
  for (;;) {
    if (budget-- == 0) return dptr_error(sc::kInvalidNumSglDescriptors);
    if (sgl_subtype(d) != nvme::kSglAddress) return dptr_error(sc::kSglDescriptorTypeInvalid);
    switch (sgl_type(d)) {
      case nvme::kSglDataBlock: {
        uint64_t n = std::min<uint64_t>(remaining, d.length);
        if (n > 0) {
          Status s = sink->add(d.address, n);
          if (!s.ok()) return s;
          remaining -= n;
        }
        break;
      }
      case nvme::kSglSegment:
      case nvme::kSglLastSegment: {
        bool last = sgl_type(d) == nvme::kSglLastSegment;
        // A segment descriptor must end its segment, and a last segment
        // holds no further segment descriptors.
        if (in_last_segment || (!from_sqe && seg_index != seg_count))
          return dptr_error(sc::kInvalidSglSegDescriptor);
        if (d.length == 0 || d.length % sizeof(nvme::SglDescriptor))
          return dptr_error(sc::kInvalidSglSegDescriptor);
        seg = dma.translate(d.address, d.length, false);
        if (!seg) return dptr_error(sc::kDataTransferError);
        seg_count = d.length / sizeof(nvme::SglDescriptor);
        seg_index = 0;
        in_last_segment = last;
        from_sqe = false;
        break;
      }
      case nvme::kSglBitBucket:
      case nvme::kSglKeyedDataBlock:
      case nvme::kSglTransportDataBlock:
      default:
        return dptr_error(sc::kSglDescriptorTypeInvalid);
    }
    if (remaining == 0 && sgl_type(d) == nvme::kSglDataBlock) return Status::success();
    // Next descriptor: from the current segment, if any is left.
    if (from_sqe || seg_index == seg_count) {
      // The data described is shorter than the command needs.
      return dptr_error(sc::kDataSglLengthInvalid);
    }
    std::memcpy(&d, seg + seg_index * sizeof(nvme::SglDescriptor), sizeof d);
    ++seg_index;
  }
}

}  // namespace

bool DmaRefs::add(DmaRef&& r) {
  if (!r) return true;
  for (int i = 0; i < n; ++i)
    if (refs[i].get() == r.get()) return true;
  if (n == kMax) return false;
  refs[n++] = std::move(r);
  return true;
}

Status map_data(const nvme::Sqe& cmd, const DataMapParams& p, const DmaTable& dma,
                struct iovec* iov, int max_iov, int* iovcnt, DmaRefs* refs) {
  *iovcnt = 0;
  if (p.length == 0) return Status::success();
  if (p.page_size < 4096 || (p.page_size & (p.page_size - 1)))
    return Status::generic(sc::kInternalError);
  IovSink sink(dma, p.device_writes, iov, max_iov, refs);
  Status s;
  switch (cmd.psdt()) {
    case nvme::kPsdtPrp:
      s = walk_prp(cmd, p, dma, &sink);
      break;
    case nvme::kPsdtSglMptrContig:
    case nvme::kPsdtSglMptrSgl:
      // PCIe: admin commands use PRPs only (Base 2.0, 4.1.2).
      if (p.admin) return Status::generic(sc::kInvalidField).at(kFlagsOffset);
      s = walk_sgl(cmd, p, dma, &sink);
      break;
    default:
      return Status::generic(sc::kInvalidField).at(kFlagsOffset);
  }
  if (s.ok()) *iovcnt = sink.count();
  return s;
}

}  // namespace nvemu::vfio_user
