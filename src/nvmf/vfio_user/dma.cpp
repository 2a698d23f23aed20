#include "nvmf/vfio_user/dma.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "wire/vfio_user/protocol.h"

namespace nvemu::vfio_user {

DmaRegion::~DmaRegion() {
  if (base) munmap(base, size);
}

int DmaTable::map(uint64_t iova, uint64_t size, int fd, uint64_t offset, uint32_t flags,
                  std::string* why) {
  struct FdCloser {
    int fd;
    ~FdCloser() {
      if (fd >= 0) close(fd);
    }
  } closer{fd};
  if (size == 0 || iova + size < iova) {
    *why = fmt::format("DMA_MAP of {:#x}+{:#x}: empty or wrapping range", iova, size);
    return EINVAL;
  }
  if ((iova | size | offset) & (kPgsizes - 1)) {
    *why = fmt::format("DMA_MAP of {:#x}+{:#x} at offset {:#x}: not {}-byte aligned", iova, size,
                       offset, kPgsizes);
    return EINVAL;
  }
  if (flags & ~(kDmaMapRead | kDmaMapWrite)) {
    *why = fmt::format("DMA_MAP: unknown flags {:#x}", flags);
    return EINVAL;
  }
  if (regions_.size() >= kMaxDmaMaps) {
    *why = fmt::format("DMA_MAP: the limit of {} mappings is reached", kMaxDmaMaps);
    return ENOSPC;
  }
  // Overlap: the first region at or after iova, and the one before it.
  auto next = regions_.lower_bound(iova);
  if (next != regions_.end() && next->first < iova + size) {
    *why = fmt::format("DMA_MAP of {:#x}+{:#x} overlaps the mapping at {:#x}", iova, size,
                       next->first);
    return EEXIST;
  }
  if (next != regions_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.get()->size > iova) {
      *why = fmt::format("DMA_MAP of {:#x}+{:#x} overlaps the mapping at {:#x}", iova, size,
                         prev->first);
      return EEXIST;
    }
  }
  DmaRef ref(new DmaRegion);
  DmaRegion* r = ref.get();
  r->iova = iova;
  r->size = size;
  r->readable = flags & kDmaMapRead;
  r->writable = flags & kDmaMapWrite;
  if (fd >= 0) {
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (offset > static_cast<uint64_t>(st.st_size) ||
         size > static_cast<uint64_t>(st.st_size) - offset)) {
      *why = fmt::format("DMA_MAP of {:#x}+{:#x}: offset {:#x} beyond the {}-byte file", iova, size,
                         offset, st.st_size);
      return EINVAL;
    }
    int prot = (r->readable ? PROT_READ : 0) | (r->writable ? PROT_WRITE : 0);
    if (prot == 0) prot = PROT_READ;
    void* p = mmap(nullptr, size, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
    if (p == MAP_FAILED) {
      int e = errno;
      *why = fmt::format("DMA_MAP of {:#x}+{:#x}: mmap: {}", iova, size, strerror(e));
      return e;
    }
    r->base = static_cast<uint8_t*>(p);
  }
  regions_.emplace(iova, std::move(ref));
  return 0;
}

int DmaTable::unmap(uint64_t iova, uint64_t size, uint64_t* unmapped, std::string* why) {
  *unmapped = 0;
  if (size == 0 || iova + size < iova) {
    *why = fmt::format("DMA_UNMAP of {:#x}+{:#x}: empty or wrapping range", iova, size);
    return EINVAL;
  }
  uint64_t end = iova + size;
  auto first = regions_.lower_bound(iova);
  if (first != regions_.begin()) {
    auto prev = std::prev(first);
    if (prev->first + prev->second.get()->size > iova) {
      *why = fmt::format("DMA_UNMAP of {:#x}+{:#x} splits the mapping at {:#x}", iova, size,
                         prev->first);
      return EINVAL;
    }
  }
  auto last = first;
  while (last != regions_.end() && last->first < end) {
    if (last->first + last->second.get()->size > end) {
      *why = fmt::format("DMA_UNMAP of {:#x}+{:#x} splits the mapping at {:#x}", iova, size,
                         last->first);
      return EINVAL;
    }
    ++last;
  }
  for (auto it = first; it != last; ++it) {
    it->second.get()->removed = true;
    *unmapped += it->second.get()->size;
  }
  // In-flight requests keep their DmaRef; the munmap happens when the last
  // one completes.
  last_ = nullptr;
  regions_.erase(first, last);
  return 0;
}

void DmaTable::unmap_all() {
  for (auto& [_, r] : regions_) r.get()->removed = true;
  last_ = nullptr;
  regions_.clear();
}

const DmaRegion* DmaTable::find(uint64_t iova) const {
  if (last_ && iova - last_->iova < last_->size) return last_;
  auto it = regions_.upper_bound(iova);
  if (it == regions_.begin()) return nullptr;
  --it;
  const DmaRegion* r = it->second.get();
  if (iova - r->iova >= r->size) return nullptr;
  last_ = r;
  return r;
}

uint8_t* DmaTable::translate_prefix(uint64_t iova, uint64_t len, bool write, uint64_t* got,
                                    DmaRef* ref, uint64_t* region_end) const {
  *got = 0;
  if (len == 0) return nullptr;
  const DmaRegion* found = find(iova);
  if (!found) return nullptr;
  const DmaRegion& r = *found;
  uint64_t off = iova - r.iova;
  if (!r.base) return nullptr;
  if (write ? !r.writable : !r.readable) return nullptr;
  *got = std::min(len, r.size - off);
  if (region_end) *region_end = r.iova + r.size;
  if (ref) *ref = DmaRef(const_cast<DmaRegion*>(found));
  return r.base + off;
}

uint8_t* DmaTable::translate(uint64_t iova, uint64_t len, bool write, DmaRef* ref) const {
  uint64_t got = 0;
  DmaRef tmp;
  uint8_t* p = translate_prefix(iova, len, write, &got, ref ? &tmp : nullptr);
  if (!p || got != len) return nullptr;
  if (ref) *ref = std::move(tmp);
  return p;
}

}  // namespace nvemu::vfio_user
