// PCI configuration space of the emulated NVMe function (PCI Local Bus 3.0,
// PCIe Base 4.0 7.5): the type-0 header, BAR sizing, and the capability
// chain PM (0x40) -> MSI-X (0x50) -> PCI Express endpoint (0x60).
//
// IDs: vendor 0x4e58 / device 0x0001, the pair SPDK's vfio-user NVMe
// emulation reports (0x4e58 is Nutanix's PCI vendor ID, used by the
// vfio-user reference server); class 01h/08h/02h (mass storage, NVM, NVMe).
//
// BARs: BAR0/1 is a 64-bit non-prefetchable memory BAR of 16 KiB (NVMe
// registers at 0x0, doorbells from 0x1000); BAR4 holds the MSI-X table and
// BAR5 the PBA (32-bit memory BARs of 4 KiB), as in SPDK's layout, so the
// doorbell page can be mmapped without covering the MSI-X table.
#pragma once

#include <array>
#include <cstdint>

namespace nvemu::vfio_user {

constexpr uint16_t kPciVendorId = 0x4e58;
constexpr uint16_t kPciDeviceId = 0x0001;
constexpr uint32_t kPciClassNvme = 0x010802;
constexpr uint32_t kConfigSize = 4096;  // PCIe extended config space (no extended caps)

constexpr uint64_t kBar0Size = 0x4000;
constexpr uint64_t kDoorbellOffset = 0x1000;
constexpr uint64_t kDoorbellSize = 0x1000;
constexpr uint64_t kBar4Size = 0x1000;  // MSI-X table
constexpr uint64_t kBar5Size = 0x1000;  // MSI-X PBA
constexpr uint16_t kMsixVectors = 256;  // 256 * 16 B = one 4 KiB table page

namespace cfg {
constexpr uint32_t kVendor = 0x00;
constexpr uint32_t kCommand = 0x04;
constexpr uint32_t kStatus = 0x06;
constexpr uint32_t kRevision = 0x08;
constexpr uint32_t kBar0 = 0x10;
constexpr uint32_t kBar4 = 0x20;
constexpr uint32_t kBar5 = 0x24;
constexpr uint32_t kSubsysVendor = 0x2c;
constexpr uint32_t kRomBar = 0x30;
constexpr uint32_t kCapPtr = 0x34;
constexpr uint32_t kIntLine = 0x3c;
constexpr uint32_t kIntPin = 0x3d;
constexpr uint32_t kPmCap = 0x40;
constexpr uint32_t kMsixCap = 0x50;
constexpr uint32_t kPcieCap = 0x60;
constexpr uint32_t kPcieCapSize = 0x3c;

constexpr uint16_t kCmdIo = 1u << 0;
constexpr uint16_t kCmdMemory = 1u << 1;
constexpr uint16_t kCmdBusMaster = 1u << 2;
constexpr uint16_t kCmdIntxDisable = 1u << 10;
constexpr uint16_t kMsixEnable = 1u << 15;
constexpr uint16_t kMsixFunctionMask = 1u << 14;
}  // namespace cfg

class PciConfig {
 public:
  PciConfig();
  // Back to power-on values (function-level reset).
  void reset();

  // Reads/writes of any length at any offset inside the space; false when
  // [offset, offset+len) is outside it. Reads of unimplemented bytes return
  // zero; writes only change writable bits (BARs follow the sizing rule:
  // the bits below the BAR's size read back as zero).
  bool read(uint32_t offset, void* buf, uint32_t len) const;
  bool write(uint32_t offset, const void* buf, uint32_t len);

  uint16_t command() const { return get16(cfg::kCommand); }
  bool bus_master() const { return command() & cfg::kCmdBusMaster; }
  bool intx_disabled() const { return command() & cfg::kCmdIntxDisable; }
  bool msix_enabled() const { return get16(cfg::kMsixCap + 2) & cfg::kMsixEnable; }
  bool msix_function_masked() const { return get16(cfg::kMsixCap + 2) & cfg::kMsixFunctionMask; }

 private:
  uint16_t get16(uint32_t off) const { return uint16_t(bytes_[off] | bytes_[off + 1] << 8); }
  void set8(uint32_t off, uint8_t v, uint8_t wmask = 0) {
    bytes_[off] = v;
    wmask_[off] = wmask;
  }
  void set16(uint32_t off, uint16_t v, uint16_t wmask = 0);
  void set32(uint32_t off, uint32_t v, uint32_t wmask = 0);

  std::array<uint8_t, kConfigSize> bytes_{};
  std::array<uint8_t, kConfigSize> wmask_{};  // 1 = writable bit
  std::array<uint8_t, kConfigSize> w1c_{};    // 1 = write-1-to-clear bit
};

}  // namespace nvemu::vfio_user
