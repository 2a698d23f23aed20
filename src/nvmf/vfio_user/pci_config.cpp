#include "nvmf/vfio_user/pci_config.h"

#include <cstring>

namespace nvemu::vfio_user {

namespace {
constexpr uint8_t kCapIdPm = 0x01;
constexpr uint8_t kCapIdPcie = 0x10;
constexpr uint8_t kCapIdMsix = 0x11;
constexpr uint16_t kStatusCapList = 1u << 4;
}  // namespace

PciConfig::PciConfig() {
  reset();
}

void PciConfig::set16(uint32_t off, uint16_t v, uint16_t wmask) {
  set8(off, uint8_t(v), uint8_t(wmask));
  set8(off + 1, uint8_t(v >> 8), uint8_t(wmask >> 8));
}

void PciConfig::set32(uint32_t off, uint32_t v, uint32_t wmask) {
  set16(off, uint16_t(v), uint16_t(wmask));
  set16(off + 2, uint16_t(v >> 16), uint16_t(wmask >> 16));
}

void PciConfig::reset() {
  bytes_.fill(0);
  wmask_.fill(0);
  w1c_.fill(0);
  using namespace cfg;
  set16(kVendor, kPciVendorId);
  set16(kVendor + 2, kPciDeviceId);
  set16(kCommand, 0,
        kCmdIo | kCmdMemory | kCmdBusMaster | (1u << 6) /* parity */ | (1u << 8) /* SERR */ |
            kCmdIntxDisable);
  set16(kStatus, kStatusCapList);
  w1c_[kStatus + 1] = 0xf9;  // error bits 15:11 and 8 are RW1C
  set8(kRevision, 0);
  set8(kRevision + 1, kPciClassNvme & 0xff);          // programming interface 02h
  set8(kRevision + 2, (kPciClassNvme >> 8) & 0xff);   // subclass 08h
  set8(kRevision + 3, (kPciClassNvme >> 16) & 0xff);  // class 01h
  set8(0x0c, 0, 0xff);                                // cache line size
  // BAR0: 64-bit memory, non-prefetchable; BAR1 its upper half.
  set32(kBar0, 0x4, static_cast<uint32_t>(~(kBar0Size - 1)));
  set32(kBar0 + 4, 0, 0xffffffff);
  set32(kBar4, 0x0, static_cast<uint32_t>(~(kBar4Size - 1)));
  set32(kBar5, 0x0, static_cast<uint32_t>(~(kBar5Size - 1)));
  set16(kSubsysVendor, kPciVendorId);
  set16(kSubsysVendor + 2, 0);
  set8(kCapPtr, kPmCap);
  set8(kIntLine, 0, 0xff);
  set8(kIntPin, 1);  // INTA#

  // Power management, version 3; D0 only.
  set8(kPmCap, kCapIdPm);
  set8(kPmCap + 1, kMsixCap);
  set16(kPmCap + 2, 0x0003);
  set16(kPmCap + 4, 0x0008 /* No_Soft_Reset */, 0x0003);

  // MSI-X: table size N-1, table in BAR4 at 0, PBA in BAR5 at 0.
  set8(kMsixCap, kCapIdMsix);
  set8(kMsixCap + 1, kPcieCap);
  set16(kMsixCap + 2, kMsixVectors - 1, kMsixEnable | kMsixFunctionMask);
  set32(kMsixCap + 4, 0x0 | 4);
  set32(kMsixCap + 8, 0x0 | 5);

  // PCI Express capability v2, endpoint, FLR capable, x1 link at 2.5 GT/s.
  set8(kPcieCap, kCapIdPcie);
  set8(kPcieCap + 1, 0);
  set16(kPcieCap + 2, 0x0002);
  set32(kPcieCap + 4, 1u << 28 /* FLR */ | 1u << 15 /* role-based error reporting */);
  set16(kPcieCap + 8, 0x2810, 0x7fff);  // device control (bit 15 is the FLR trigger)
  set16(kPcieCap + 0xa, 0);
  w1c_[kPcieCap + 0xa] = 0x0f;
  set32(kPcieCap + 0xc, 0x11);          // link cap: speed 1, width x1
  set16(kPcieCap + 0x10, 0, 0x01c3);    // link control
  set16(kPcieCap + 0x12, 0x11);         // link status
  set32(kPcieCap + 0x24, 0);            // device cap 2
  set16(kPcieCap + 0x28, 0, 0x040f);    // device control 2
  set32(kPcieCap + 0x2c, 0x2);          // link cap 2: 2.5 GT/s
  set16(kPcieCap + 0x30, 0x1, 0x003f);  // link control 2
}

bool PciConfig::read(uint32_t offset, void* buf, uint32_t len) const {
  if (len == 0 || offset >= kConfigSize || len > kConfigSize - offset) return false;
  std::memcpy(buf, bytes_.data() + offset, len);
  return true;
}

bool PciConfig::write(uint32_t offset, const void* buf, uint32_t len) {
  if (len == 0 || offset >= kConfigSize || len > kConfigSize - offset) return false;
  const auto* in = static_cast<const uint8_t*>(buf);
  for (uint32_t i = 0; i < len; ++i) {
    uint32_t o = offset + i;
    uint8_t v = in[i];
    bytes_[o] = static_cast<uint8_t>((bytes_[o] & ~wmask_[o]) | (v & wmask_[o]));
    bytes_[o] &= static_cast<uint8_t>(~(v & w1c_[o]));
  }
  return true;
}

}  // namespace nvemu::vfio_user
