// Opcodes and command fields of the admin and NVM command sets (NVMe Base
// 2.0 Figure 138; NVM Command Set 1.0 Figure 18) and the feature IDs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nvemu::nvme {

namespace admin_opc {
constexpr uint8_t kDeleteIoSq = 0x00;
constexpr uint8_t kCreateIoSq = 0x01;
constexpr uint8_t kGetLogPage = 0x02;
constexpr uint8_t kDeleteIoCq = 0x04;
constexpr uint8_t kCreateIoCq = 0x05;
constexpr uint8_t kIdentify = 0x06;
constexpr uint8_t kAbort = 0x08;
constexpr uint8_t kSetFeatures = 0x09;
constexpr uint8_t kGetFeatures = 0x0a;
constexpr uint8_t kAsyncEventRequest = 0x0c;
constexpr uint8_t kNsManagement = 0x0d;
constexpr uint8_t kFirmwareCommit = 0x10;
constexpr uint8_t kFirmwareDownload = 0x11;
constexpr uint8_t kNsAttachment = 0x15;
constexpr uint8_t kKeepAlive = 0x18;
constexpr uint8_t kDoorbellBufferConfig = 0x7c;
constexpr uint8_t kFormatNvm = 0x80;
}  // namespace admin_opc

namespace nvm_opc {
constexpr uint8_t kFlush = 0x00;
constexpr uint8_t kWrite = 0x01;
constexpr uint8_t kRead = 0x02;
constexpr uint8_t kWriteUncorrectable = 0x04;
constexpr uint8_t kCompare = 0x05;
constexpr uint8_t kWriteZeroes = 0x08;
constexpr uint8_t kDatasetManagement = 0x09;
}  // namespace nvm_opc

namespace fid {
constexpr uint8_t kArbitration = 0x01;
constexpr uint8_t kPowerManagement = 0x02;
constexpr uint8_t kTemperatureThreshold = 0x04;
constexpr uint8_t kErrorRecovery = 0x05;
constexpr uint8_t kVolatileWriteCache = 0x06;
constexpr uint8_t kNumberOfQueues = 0x07;
constexpr uint8_t kInterruptCoalescing = 0x08;
constexpr uint8_t kInterruptVectorConfig = 0x09;
constexpr uint8_t kWriteAtomicity = 0x0a;
constexpr uint8_t kAsyncEventConfig = 0x0b;
constexpr uint8_t kKeepAliveTimer = 0x0f;
// Host Behavior Support (Base 2.0, 5.27.1.24): a 512-byte data structure.
constexpr uint8_t kHostBehaviorSupport = 0x16;
constexpr uint32_t kHostBehaviorSupportSize = 512;
constexpr uint8_t kHostIdentifier = 0x81;
}  // namespace fid

// Byte offsets of SQE fields, for Status::at() (Error log "parameter error
// location").
namespace loc {
constexpr uint16_t kOpc = 0;
constexpr uint16_t kFlags = 1;
constexpr uint16_t kNsid = 4;
constexpr uint16_t kDptr = 24;
constexpr uint16_t kCdw10 = 40;
constexpr uint16_t kCdw11 = 44;
constexpr uint16_t kCdw12 = 48;
constexpr uint16_t kCdw13 = 52;
constexpr uint16_t kCdw14 = 56;
constexpr uint16_t kCdw15 = 60;
}  // namespace loc

// Read/Write/Compare/Write Zeroes CDW12 bits.
namespace rw {
inline uint32_t nlb(uint32_t cdw12) {
  return (cdw12 & 0xffff) + 1;
}
constexpr uint32_t kFua = 1u << 30;
constexpr uint32_t kLr = 1u << 31;
constexpr uint32_t kDeac = 1u << 25;  // Write Zeroes: deallocate
}  // namespace rw

// Dataset Management range, NVM Command Set Figure 40.
struct DsmRange {
  uint32_t cattr;
  uint32_t nlb;
  uint64_t slba;
};
static_assert(sizeof(DsmRange) == 16);
namespace dsm {
constexpr uint32_t kAd = 1u << 2;  // CDW11: attribute deallocate
constexpr uint32_t kMaxRanges = 256;
}  // namespace dsm

}  // namespace nvemu::nvme
