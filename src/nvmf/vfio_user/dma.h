// The DMA map table of one vfio-user client: guest physical ranges the
// client shared with DMA_MAP (an fd + offset each), mmapped here, and the
// bounds-checked translation of guest addresses to local pointers.
//
// Unmapping while I/O is in flight: a request that translated an address
// holds a reference on the region (DmaRef). DMA_UNMAP removes the region
// from the lookup table at once (new translations fail with a Data
// Transfer Error), but the munmap waits until the last reference drops, so
// an in-flight bdev read never writes into unmapped memory. Owner reactor
// only; no locks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace nvemu::vfio_user {

struct DmaRegion {
  uint64_t iova = 0;
  uint64_t size = 0;
  uint8_t* base = nullptr;  // nullptr: mapped without an fd (not reachable here)
  bool writable = false;
  bool readable = false;
  bool removed = false;
  ~DmaRegion();
};

// A counted reference that keeps a region's mapping alive.
class DmaRef {
 public:
  DmaRef() = default;
  explicit DmaRef(std::shared_ptr<DmaRegion> r) : r_(std::move(r)) {}
  DmaRegion* get() const { return r_.get(); }
  void reset() { r_.reset(); }
  explicit operator bool() const { return r_ != nullptr; }

 private:
  std::shared_ptr<DmaRegion> r_;  // mapping dropped with the last owner
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
  // region (≥ 1 byte) in *got.
  uint8_t* translate_prefix(uint64_t iova, uint64_t len, bool write, uint64_t* got,
                            DmaRef* ref = nullptr) const;

  size_t count() const { return regions_.size(); }

 private:
  std::map<uint64_t, std::shared_ptr<DmaRegion>> regions_;  // by iova
};

}  // namespace nvemu::vfio_user
