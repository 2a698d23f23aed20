#include "nvmf/vfio_user/irq.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

namespace nvemu::vfio_user {

namespace {
uint32_t irq_count(uint32_t index) {
  switch (index) {
    case kIrqIntx:
      return 1;
    case kIrqMsi:
      return 0;  // no MSI capability: MSI-X only
    case kIrqMsix:
      return kMsixVectors;
    case kIrqErr:
      return 1;
    case kIrqReq:
      return 1;
    default:
      return 0;
  }
}
}  // namespace

Irqs::Irqs(const PciConfig& config) : config_(config) {
  reset();
}

void Irqs::reset() {
  msix_.clear();
  msix_.resize(kMsixVectors);
  intx_.reset();
  intx_unmask_.reset();
  err_.reset();
  req_.reset();
  intx_masked_ = false;
  intx_pending_ = false;
  // Entries start unmasked (the spec's reset value is masked): QEMU emulates
  // the table on its side and never writes ours, so honouring a reset mask
  // here would silence it. A client that programs the table sets the bits.
  table_.assign(size_t{kMsixVectors} * 16, 0);
  pba_.assign((kMsixVectors + 63) / 64, 0);
}

bool Irqs::info(uint32_t index, IrqInfo* out) const {
  if (index >= kNumIrqs) return false;
  out->argsz = sizeof(IrqInfo);
  out->index = index;
  out->count = irq_count(index);
  out->flags = kIrqInfoEventfd;
  if (index == kIrqIntx)
    out->flags |= kIrqInfoMaskable;
  else
    out->flags |= kIrqInfoNoResize;
  return true;
}

int Irqs::set(const IrqSet& s, const uint8_t* data, size_t data_len, std::vector<UniqueFd>* fds,
              std::string* why) {
  if (s.index >= kNumIrqs) {
    *why = fmt::format("SET_IRQS: irq index {} does not exist", s.index);
    return EINVAL;
  }
  uint32_t max = irq_count(s.index);
  uint32_t dtype = s.flags & kIrqSetDataMask;
  uint32_t action = s.flags & kIrqSetActionMaskAll;
  if (s.flags & ~(kIrqSetDataMask | kIrqSetActionMaskAll) || std::popcount(dtype) != 1 ||
      std::popcount(action) != 1) {
    *why = fmt::format("SET_IRQS: flags {:#x} need exactly one data type and one action", s.flags);
    return EINVAL;
  }
  if (s.start > max || s.count > max - s.start) {
    *why = fmt::format("SET_IRQS: vectors {}+{} beyond the {} of irq index {}", s.start, s.count,
                       max, s.index);
    return EINVAL;
  }
  if (s.count == 0 && !(dtype == kIrqSetDataNone && action == kIrqSetActionTrigger)) {
    *why = "SET_IRQS: count 0 is only valid to disable an index (DATA_NONE|ACTION_TRIGGER)";
    return EINVAL;
  }
  if (dtype == kIrqSetDataEventfd) {
    if (!fds->empty() && fds->size() != s.count) {
      *why = fmt::format("SET_IRQS: {} fds passed for {} vectors", fds->size(), s.count);
      return EINVAL;
    }
  } else if (!fds->empty()) {
    *why = "SET_IRQS: fds passed without DATA_EVENTFD";
    return EINVAL;
  }
  if (dtype == kIrqSetDataBool && data_len < s.count) {
    *why = fmt::format("SET_IRQS: {} bool bytes for {} vectors", data_len, s.count);
    return EINVAL;
  }

  if (action == kIrqSetActionMask || action == kIrqSetActionUnmask) {
    if (s.index != kIrqIntx) {
      *why = "SET_IRQS: only INTx is maskable through SET_IRQS";
      return ENOTTY;
    }
    if (dtype == kIrqSetDataEventfd) {  // KVM resample fd: kept, unmask is implicit
      if (!fds->empty()) intx_unmask_ = std::move((*fds)[0]);
      return 0;
    }
    if (dtype == kIrqSetDataBool && !data[0]) return 0;
    intx_masked_ = action == kIrqSetActionMask;
    if (!intx_masked_ && intx_pending_) {
      intx_pending_ = false;
      signal(intx_.get());
    }
    return 0;
  }

  // ACTION_TRIGGER.
  auto slot = [&](uint32_t v) -> UniqueFd* {
    switch (s.index) {
      case kIrqIntx:
        return &intx_;
      case kIrqMsix:
        return &msix_[v];
      case kIrqErr:
        return &err_;
      case kIrqReq:
        return &req_;
      default:
        return nullptr;
    }
  };
  if (dtype == kIrqSetDataNone && s.count == 0) {  // disable the whole index
    for (uint32_t v = 0; v < max; ++v)
      if (UniqueFd* f = slot(v)) f->reset();
    return 0;
  }
  for (uint32_t i = 0; i < s.count; ++i) {
    UniqueFd* f = slot(s.start + i);
    if (!f) continue;
    if (dtype == kIrqSetDataEventfd) {
      *f = fds->empty() ? UniqueFd() : std::move((*fds)[i]);
    } else if (dtype == kIrqSetDataNone || data[i]) {
      signal(f->get());
    }
  }
  return 0;
}

void Irqs::signal(int fd) {
  if (fd < 0) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

bool Irqs::vector_masked(uint16_t v) const {
  if (config_.msix_function_masked()) return true;
  return table_[size_t{v} * 16 + 12] & 1;
}

void Irqs::trigger(uint16_t vector) {
  ++triggers_;
  if (vector < kMsixVectors && msix_[vector]) {
    if (vector_masked(vector)) {
      pba_[vector / 64] |= uint64_t{1} << (vector % 64);
      return;
    }
    signal(msix_[vector].get());
    return;
  }
  if (vector == 0 && intx_ && !config_.intx_disabled()) {
    if (intx_masked_) {
      intx_pending_ = true;
      return;
    }
    signal(intx_.get());
  }
}

bool Irqs::request_release() {
  if (!req_) return false;
  signal(req_.get());
  return true;
}

void Irqs::fire_pending() {
  for (uint16_t v = 0; v < kMsixVectors; ++v) {
    uint64_t bit = uint64_t{1} << (v % 64);
    if ((pba_[v / 64] & bit) && !vector_masked(v)) {
      pba_[v / 64] &= ~bit;
      signal(msix_[v].get());
    }
  }
}

bool Irqs::table_access(bool write, uint64_t offset, void* buf, uint32_t len) {
  if (len == 0 || len > 8 || offset >= table_.size() || len > table_.size() - offset) return false;
  if (!write) {
    std::memcpy(buf, table_.data() + offset, len);
    return true;
  }
  std::memcpy(table_.data() + offset, buf, len);
  fire_pending();  // an unmask releases pending vectors
  return true;
}

bool Irqs::pba_access(bool write, uint64_t offset, void* buf, uint32_t len) {
  uint64_t size = pba_.size() * 8;
  if (len == 0 || len > 8 || offset >= kBar5Size || len > kBar5Size - offset) return false;
  if (write) return true;  // read-only
  std::memset(buf, 0, len);
  if (offset < size)
    std::memcpy(buf, reinterpret_cast<const uint8_t*>(pba_.data()) + offset,
                std::min<uint64_t>(len, size - offset));
  return true;
}

}  // namespace nvemu::vfio_user
