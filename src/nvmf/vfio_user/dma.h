// The DMA map table of one vfio-user client: guest physical ranges the
// client shared with DMA_MAP (an fd + offset each), mmapped here, and the
// bounds-checked translation of guest addresses to local pointers.
//
// Unmapping while I/O is in flight: a request that translated an address
// holds a reference on the region (DmaRef). DMA_UNMAP removes the region
// from the lookup table at once (new translations fail with a Data
// Transfer Error), but the munmap waits until the last reference drops, so
// an in-flight bdev read never writes into unmapped memory. Owner reactor
// only: no locks, and the reference counts are plain integers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace nvemu::vfio_user {

struct DmaRegion {
  DmaRegion() = default;
  DmaRegion(const DmaRegion&) = delete;
  DmaRegion& operator=(const DmaRegion&) = delete;
  ~DmaRegion();

  uint64_t iova = 0;
  uint64_t size = 0;
  uint8_t* base = nullptr;  // nullptr: mapped without an fd (not reachable here)
  bool writable = false;
  bool readable = false;
  bool removed = false;
  uint32_t refs = 0;  // DmaRefs, the table's own included
};

// A counted reference that keeps a region's mapping alive; the region (and
// its mapping) goes with the last one.
class DmaRef {
 public:
  DmaRef() = default;
  explicit DmaRef(DmaRegion* r) : r_(r) {
    if (r_) ++r_->refs;
  }
  DmaRef(const DmaRef& o) : DmaRef(o.r_) {}
  DmaRef(DmaRef&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  DmaRef& operator=(DmaRef o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  ~DmaRef() { reset(); }
  DmaRegion* get() const { return r_; }
  void reset() {
    if (r_ && --r_->refs == 0) delete r_;
    r_ = nullptr;
  }
  explicit operator bool() const { return r_ != nullptr; }

 private:
  DmaRegion* r_ = nullptr;
};

class DmaTable {
 public:
  DmaTable() = default;
  DmaTable(const DmaTable&) = delete;
  DmaTable& operator=(const DmaTable&) = delete;

  // DMA_MAP. fd < 0: the client keeps the memory to itself (only
  // DMA_READ/WRITE could reach it); recorded so unmap matches, never
  // translated. Takes ownership of fd. Returns 0 or an errno.
  int map(uint64_t iova, uint64_t size, int fd, uint64_t offset, uint32_t flags, std::string* why);
  // DMA_UNMAP of [iova, iova+size): every region inside is removed; a
  // region only partly inside fails the call (EINVAL) and nothing changes.
  // Returns 0 or an errno; *unmapped = bytes removed.
  int unmap(uint64_t iova, uint64_t size, uint64_t* unmapped, std::string* why);
  void unmap_all();

  // Translates [iova, iova+len) that lies wholly in one region, checking
  // access (write = the device writes host memory). Returns nullptr when
  // unmapped, out of bounds, or forbidden. With ref, the caller gets a
  // reference that delays any munmap of the region.
  uint8_t* translate(uint64_t iova, uint64_t len, bool write, DmaRef* ref = nullptr) const;
  // Like translate but returns the largest prefix that is contiguous in one
  // region (≥ 1 byte) in *got, and that region's end (guest address) in
  // *region_end when given.
  uint8_t* translate_prefix(uint64_t iova, uint64_t len, bool write, uint64_t* got,
                            DmaRef* ref = nullptr, uint64_t* region_end = nullptr) const;

  size_t count() const { return regions_.size(); }

 private:
  const DmaRegion* find(uint64_t iova) const;

  std::map<uint64_t, DmaRef> regions_;  // by iova
  // The region of the last translation: guests map their RAM in a few big
  // regions, so nearly every lookup hits it.
  mutable const DmaRegion* last_ = nullptr;
};

}  // namespace nvemu::vfio_user
