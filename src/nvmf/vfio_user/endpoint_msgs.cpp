// vfio-user request handlers of an Endpoint: one function per command,
// each validating every size, index and offset it reads before use. A bad
// request gets an error reply with an errno; only a broken stream (see
// MsgReader) or a failed send drops the client.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "nvme/registers.h"
#include "nvmf/controller.h"
#include "nvmf/vfio_user/endpoint.h"

namespace nvemu::vfio_user {

void Endpoint::reply(const Message& req, const void* payload, size_t len, const int* fds,
                     size_t nfds) {
  if (!req.wants_reply() || !client_fd_) return;
  Header h{};
  h.msg_id = req.hdr.msg_id;
  h.command = req.hdr.command;
  h.flags = kFlagReply;
  if (!send_message(client_fd_.get(), h, payload, len, fds, nfds, 2000))
    drop_client(fmt::format("sending the {} reply failed: {}", command_name(req.hdr.command),
                            strerror(errno)));
}

void Endpoint::reply_error(const Message& req, int err, const std::string& why) {
  stats_.errors++;
  LOG_WARN_LIMITED("vfio_user", "{}: {} (id {}) failed: {} ({})", path_,
                   command_name(req.hdr.command), req.hdr.msg_id,
                   why.empty() ? "invalid request" : why, strerror(err));
  if (!req.wants_reply() || !client_fd_) return;
  Header h{};
  h.msg_id = req.hdr.msg_id;
  h.command = req.hdr.command;
  h.flags = kFlagReply | kFlagError;
  h.error = static_cast<uint32_t>(err);
  if (!send_message(client_fd_.get(), h, nullptr, 0, nullptr, 0, 2000))
    drop_client("sending an error reply failed");
}

void Endpoint::handle_message(Message& m) {
  stats_.messages++;
  if (m.is_reply()) {
    // nvemu sends no requests (no DMA_READ/WRITE), so there is nothing to
    // match a reply to.
    stats_.errors++;
    LOG_WARN_LIMITED("vfio_user", "{}: unexpected reply (id {}, {}) ignored", path_, m.hdr.msg_id,
                     command_name(m.hdr.command));
    return;
  }
  std::string why;
  int err = 0;
  if (!negotiated_ && m.hdr.command != kVersion) {
    err = EINVAL;
    why = "VERSION must be negotiated first";
  } else {
    err = dispatch(m, &why);
  }
  if (err) reply_error(m, err, why);
  // Passed fds that no handler took are closed with the message.
}

int Endpoint::dispatch(Message& m, std::string* why) {
  switch (m.hdr.command) {
    case kVersion:
      return on_version(m, why);
    case kDmaMap:
      return on_dma_map(m, why);
    case kDmaUnmap:
      return on_dma_unmap(m, why);
    case kDeviceGetInfo:
      return on_get_info(m, why);
    case kDeviceGetRegionInfo:
      return on_region_info(m, why);
    case kDeviceGetIrqInfo:
      return on_irq_info(m, why);
    case kDeviceSetIrqs:
      return on_set_irqs(m, why);
    case kRegionRead:
      return on_region_read(m, why);
    case kRegionWrite:
      return on_region_write(m, why);
    case kDeviceReset:
      return on_reset(m, why);
    default:
      *why = fmt::format("command {} ({}) is not supported", m.hdr.command,
                         command_name(m.hdr.command));
      return ENOTSUP;
  }
}

int Endpoint::on_version(Message& m, std::string* why) {
  VersionPayload v;
  if (!m.get(&v)) {
    *why = fmt::format("payload of {} bytes is shorter than major/minor", m.payload.size());
    return EINVAL;
  }
  if (v.major != kMajor) {
    *why =
        fmt::format("client speaks vfio-user {}.{}, nvemu {}.{}", v.major, v.minor, kMajor, kMinor);
    return ENOTSUP;
  }
  if (m.payload.size() > sizeof v) {
    // The client's capabilities: a NUL-terminated JSON object.
    const char* json = reinterpret_cast<const char*>(m.payload.data() + sizeof v);
    size_t len = m.payload.size() - sizeof v;
    if (json[len - 1] != '\0') {
      *why = "capabilities string is not NUL-terminated";
      return EINVAL;
    }
    auto caps = nlohmann::json::parse(json, json + len - 1, nullptr, false);
    if (caps.is_discarded() || !caps.is_object()) {
      *why = "capabilities are not a JSON object";
      return EINVAL;
    }
  }
  nlohmann::json caps = {{"capabilities",
                          {{"max_msg_fds", kMaxMsgFds},
                           {"max_data_xfer_size", kMaxDataXferSize},
                           {"pgsizes", kPgsizes},
                           {"max_dma_maps", kMaxDmaMaps}}}};
  std::string text = caps.dump();
  std::vector<uint8_t> out(sizeof(VersionPayload) + text.size() + 1, 0);
  VersionPayload r{kMajor, std::min(v.minor, kMinor)};
  std::memcpy(out.data(), &r, sizeof r);
  std::memcpy(out.data() + sizeof r, text.c_str(), text.size() + 1);
  negotiated_ = true;
  reply(m, out.data(), out.size());
  return 0;
}

int Endpoint::on_dma_map(Message& m, std::string* why) {
  DmaMap d;
  if (!m.get(&d) || d.argsz < sizeof d) {
    *why = "DMA_MAP payload shorter than its 32-byte struct";
    return EINVAL;
  }
  if (m.fds.size() > 1) {
    *why = fmt::format("{} fds passed with one DMA_MAP", m.fds.size());
    return EINVAL;
  }
  int fd = m.fds.empty() ? -1 : m.fds[0].release();
  int err = dma_.map(d.address, d.size, fd, d.offset, d.flags, why);
  if (err) return err;
  LOG_DEBUG("vfio_user", "{}: DMA_MAP {:#x}+{:#x} fd {} offset {:#x} flags {:#x}", path_, d.address,
            d.size, fd, d.offset, d.flags);
  reply(m, nullptr, 0);
  return 0;
}

int Endpoint::on_dma_unmap(Message& m, std::string* why) {
  DmaUnmap d;
  if (!m.get(&d) || d.argsz < sizeof d) {
    *why = "DMA_UNMAP payload shorter than its 24-byte struct";
    return EINVAL;
  }
  if (d.flags & kDmaUnmapGetDirtyBitmap) {
    *why = "dirty page tracking is not supported (no migration)";
    return ENOTSUP;
  }
  if (d.flags & ~(kDmaUnmapAll)) {
    *why = fmt::format("unknown DMA_UNMAP flags {:#x}", d.flags);
    return EINVAL;
  }
  if (d.flags & kDmaUnmapAll) {
    if (d.address || d.size) {
      *why = "DMA_UNMAP with the ALL flag needs address and size 0";
      return EINVAL;
    }
    dma_.unmap_all();
  } else {
    uint64_t unmapped = 0;
    int err = dma_.unmap(d.address, d.size, &unmapped, why);
    if (err) return err;
  }
  d.argsz = sizeof d;
  reply(m, &d, sizeof d);
  return 0;
}

int Endpoint::on_get_info(Message& m, std::string* why) {
  DeviceInfo in;
  if (!m.get(&in) || in.argsz < sizeof in) {
    *why = "DEVICE_GET_INFO argsz shorter than 16 bytes";
    return EINVAL;
  }
  DeviceInfo out{sizeof out, kDeviceFlagPci | kDeviceFlagReset, kNumRegions, kNumIrqs};
  reply(m, &out, sizeof out);
  return 0;
}

int Endpoint::on_region_info(Message& m, std::string* why) {
  RegionInfo in;
  if (!m.get(&in) || in.argsz < sizeof in) {
    *why = "DEVICE_GET_REGION_INFO argsz shorter than 32 bytes";
    return EINVAL;
  }
  if (in.index >= kNumRegions) {
    *why = fmt::format("region index {} does not exist (0..{})", in.index, kNumRegions - 1);
    return EINVAL;
  }
  RegionInfo out{};
  out.index = in.index;
  out.argsz = sizeof out;
  bool sparse = false;
  switch (in.index) {
    case kBar0:
      out.size = kBar0Size;
      out.flags = kRegionFlagRead | kRegionFlagWrite | kRegionFlagMmap;
      sparse = true;
      break;
    case kBar4:
      out.size = kBar4Size;
      out.flags = kRegionFlagRead | kRegionFlagWrite;
      break;
    case kBar5:
      out.size = kBar5Size;
      out.flags = kRegionFlagRead | kRegionFlagWrite;
      break;
    case kConfig:
      out.size = kConfigSize;
      out.flags = kRegionFlagRead | kRegionFlagWrite;
      break;
    default:
      break;  // BAR1 (upper half of BAR0), BAR2/3, ROM, VGA: absent
  }
  if (!sparse) {
    reply(m, &out, sizeof out);
    return 0;
  }
  // BAR0: the doorbell page is mmappable from the memfd (file offset 0 =
  // region offset 0).
  struct {
    RegionInfo info;
    SparseMmapCap cap;
    SparseMmapArea area;
  } full{};
  static_assert(sizeof full == sizeof(RegionInfo) + sizeof(SparseMmapCap) + sizeof(SparseMmapArea));
  full.info = out;
  full.info.argsz = sizeof full;
  if (in.argsz < sizeof full) {
    // Too small for the capability chain: say how much is needed; the
    // client asks again (no CAPS flag, no fd in this reply).
    reply(m, &full.info, sizeof full.info);
    return 0;
  }
  full.info.flags |= kRegionFlagCaps;
  full.info.cap_offset = sizeof(RegionInfo);
  full.cap.header = {kCapSparseMmap, 1, 0};
  full.cap.nr_areas = 1;
  full.area = {kDoorbellOffset, kDoorbellSize};
  int fd = doorbell_fd_.get();
  reply(m, &full, sizeof full, &fd, 1);
  return 0;
}

int Endpoint::on_irq_info(Message& m, std::string* why) {
  IrqInfo in;
  if (!m.get(&in) || in.argsz < sizeof in) {
    *why = "DEVICE_GET_IRQ_INFO argsz shorter than 16 bytes";
    return EINVAL;
  }
  IrqInfo out;
  if (!irqs_.info(in.index, &out)) {
    *why = fmt::format("irq index {} does not exist (0..{})", in.index, kNumIrqs - 1);
    return EINVAL;
  }
  reply(m, &out, sizeof out);
  return 0;
}

int Endpoint::on_set_irqs(Message& m, std::string* why) {
  IrqSet s;
  if (!m.get(&s) || s.argsz < sizeof s) {
    *why = "DEVICE_SET_IRQS argsz shorter than 20 bytes";
    return EINVAL;
  }
  const uint8_t* data = m.payload.data() + sizeof s;
  size_t data_len = m.payload.size() - sizeof s;
  int err = irqs_.set(s, data, data_len, &m.fds, why);
  if (err) return err;
  reply(m, nullptr, 0);
  return 0;
}

int Endpoint::on_region_read(Message& m, std::string* why) {
  RegionAccess a;
  if (!m.get(&a)) {
    *why = "REGION_READ payload shorter than 16 bytes";
    return EINVAL;
  }
  if (a.count == 0 || a.count > kMaxDataXferSize) {
    *why = fmt::format("REGION_READ of {} bytes (1..{})", a.count, kMaxDataXferSize);
    return EINVAL;
  }
  std::vector<uint8_t> out(sizeof a + a.count, 0);
  int err = region_access(a.region, a.offset, out.data() + sizeof a, a.count, false, why);
  if (err) return err;
  std::memcpy(out.data(), &a, sizeof a);
  reply(m, out.data(), out.size());
  return 0;
}

int Endpoint::on_region_write(Message& m, std::string* why) {
  RegionAccess a;
  if (!m.get(&a)) {
    *why = "REGION_WRITE payload shorter than 16 bytes";
    return EINVAL;
  }
  if (a.count == 0 || a.count != m.payload.size() - sizeof a) {
    *why = fmt::format("REGION_WRITE count {} does not match the {} data bytes sent", a.count,
                       m.payload.size() - sizeof a);
    return EINVAL;
  }
  int err = region_access(a.region, a.offset, m.payload.data() + sizeof a, a.count, true, why);
  if (err) return err;
  reply(m, &a, sizeof a);
  return 0;
}

int Endpoint::on_reset(Message& m, std::string* why) {
  (void)why;
  device_reset();
  reply(m, nullptr, 0);
  return 0;
}

int Endpoint::region_access(uint32_t region, uint64_t offset, uint8_t* data, uint32_t count,
                            bool write, std::string* why) {
  auto out_of_range = [&](uint64_t size) {
    *why = fmt::format("region {} access at {:#x}+{} is outside its {} bytes", region, offset,
                       count, size);
    return EINVAL;
  };
  switch (region) {
    case kConfig:
      if (offset >= kConfigSize || count > kConfigSize - offset) return out_of_range(kConfigSize);
      return config_access(offset, data, count, write, why);
    case kBar0:
      if (offset >= kBar0Size || count > kBar0Size - offset) return out_of_range(kBar0Size);
      return bar0_access(offset, data, count, write, why);
    case kBar4:
      if (!irqs_.table_access(write, offset, data, count)) return out_of_range(kBar4Size);
      return 0;
    case kBar5:
      if (!irqs_.pba_access(write, offset, data, count)) return out_of_range(kBar5Size);
      return 0;
    default:
      *why = fmt::format("region {} is not implemented", region);
      return EINVAL;
  }
}

int Endpoint::config_access(uint64_t offset, uint8_t* data, uint32_t count, bool write,
                            std::string* why) {
  auto off = static_cast<uint32_t>(offset);
  if (!write) {
    config_.read(off, data, count);
    return 0;
  }
  bool was_masked = config_.msix_function_masked();
  config_.write(off, data, count);
  // PCIe Device Control bit 15: Initiate Function Level Reset.
  uint32_t devctl = cfg::kPcieCap + 8;
  if (off <= devctl + 1 && off + count > devctl + 1 && (data[devctl + 1 - off] & 0x80)) {
    device_reset();
    return 0;
  }
  if (was_masked && !config_.msix_function_masked()) irqs_.fire_pending();
  (void)why;
  return 0;
}

int Endpoint::bar0_access(uint64_t offset, uint8_t* data, uint32_t count, bool write,
                          std::string* why) {
  if (offset >= kDoorbellOffset) {
    if (offset >= kDoorbellOffset + kDoorbellSize) {  // reserved: reads 0, writes ignored
      if (!write) std::memset(data, 0, count);
      return 0;
    }
    if (count > kDoorbellOffset + kDoorbellSize - offset) {
      *why = "doorbell access crosses the end of the doorbell page";
      return EINVAL;
    }
    // The same page the host may mmap; the poller picks new values up.
    auto* page = reinterpret_cast<uint8_t*>(doorbells_) + (offset - kDoorbellOffset);
    if (write)
      std::memcpy(page, data, count);
    else
      std::memcpy(data, page, count);
    return 0;
  }
  if (!ctrlr_) return EIO;
  auto off = static_cast<uint32_t>(offset);
  if (count == 4 || count == 8) {
    if (off % 4) {
      *why = fmt::format("register access at {:#x} is not dword aligned", off);
      return EINVAL;
    }
    if (write) {
      uint64_t v = 0;
      std::memcpy(&v, data, count);
      ctrlr_->write_register(off, v, count);
    } else {
      uint64_t v = ctrlr_->read_register(off, count);
      std::memcpy(data, &v, count);
    }
    return 0;
  }
  if (!write && (count == 1 || count == 2) && (off % 4) + count <= 4) {
    auto v = static_cast<uint32_t>(ctrlr_->read_register(off & ~3u, 4));
    v >>= 8 * (off % 4);
    std::memcpy(data, &v, count);
    return 0;
  }
  *why = fmt::format(
      "register {} of {} bytes at {:#x}: only 4- and 8-byte accesses (and 1-2 byte "
      "reads) are supported",
      write ? "write" : "read", count, off);
  return EINVAL;
}

}  // namespace nvemu::vfio_user
