// Submission and completion queue entries (NVMe Base 2.0, 4.2 and 4.6) and
// the status type. Wire structs are little-endian with no bitfields; every
// size and offset the spec fixes is checked at build time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nvemu::nvme {

// Data pointer of an SQE: either two PRP entries or one SGL descriptor.
struct SglDescriptor {
  uint64_t address;
  uint32_t length;
  uint8_t reserved[3];
  uint8_t type;  // bits 7:4 descriptor type, bits 3:0 subtype
};
static_assert(sizeof(SglDescriptor) == 16);

enum SglType : uint8_t {
  kSglDataBlock = 0x0,
  kSglBitBucket = 0x1,
  kSglSegment = 0x2,
  kSglLastSegment = 0x3,
  kSglKeyedDataBlock = 0x4,
  kSglTransportDataBlock = 0x5,
};
enum SglSubtype : uint8_t { kSglAddress = 0x0, kSglOffset = 0x1, kSglTransport = 0xA };

struct Sqe {
  uint8_t opc;
  uint8_t flags;  // bits 1:0 FUSE, bits 7:6 PSDT
  uint16_t cid;
  uint32_t nsid;
  uint32_t cdw2;
  uint32_t cdw3;
  uint64_t mptr;
  union {
    struct {
      uint64_t prp1;
      uint64_t prp2;
    } prp;
    SglDescriptor sgl1;
  } dptr;
  uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;

  uint8_t fuse() const { return flags & 0x3; }
  uint8_t psdt() const { return flags >> 6; }
};
static_assert(sizeof(Sqe) == 64);
static_assert(offsetof(Sqe, nsid) == 4);
static_assert(offsetof(Sqe, mptr) == 16);
static_assert(offsetof(Sqe, dptr) == 24);
static_assert(offsetof(Sqe, cdw10) == 40);
static_assert(offsetof(Sqe, cdw15) == 60);

enum Fuse : uint8_t { kFuseNone = 0, kFuseFirst = 1, kFuseSecond = 2 };
enum Psdt : uint8_t { kPsdtPrp = 0, kPsdtSglMptrContig = 1, kPsdtSglMptrSgl = 2 };

struct Cqe {
  uint32_t cdw0;
  uint32_t cdw1;
  uint16_t sqhd;
  uint16_t sqid;
  uint16_t cid;
  uint16_t status;  // bit 0 phase; bits 15:1 status field

  bool phase() const { return status & 1; }
  uint8_t sc() const { return (status >> 1) & 0xff; }
  uint8_t sct() const { return (status >> 9) & 0x7; }
  bool more() const { return status & (1u << 14); }
  bool dnr() const { return status & (1u << 15); }
};
static_assert(sizeof(Cqe) == 16);
static_assert(offsetof(Cqe, sqhd) == 8);
static_assert(offsetof(Cqe, cid) == 12);

// Status Code Types (Base 2.0, Figure 94).
enum class Sct : uint8_t {
  kGeneric = 0x0,
  kCommandSpecific = 0x1,
  kMediaError = 0x2,
  kPath = 0x3,
  kVendor = 0x7,
};

// Generic command status values (Figure 95) used by nvemu.
namespace sc {
constexpr uint8_t kSuccess = 0x00;
constexpr uint8_t kInvalidOpcode = 0x01;
constexpr uint8_t kInvalidField = 0x02;
constexpr uint8_t kCommandIdConflict = 0x03;
constexpr uint8_t kDataTransferError = 0x04;
constexpr uint8_t kAbortedPowerLoss = 0x05;
constexpr uint8_t kInternalError = 0x06;
constexpr uint8_t kAbortedByRequest = 0x07;
constexpr uint8_t kAbortedSqDeletion = 0x08;
constexpr uint8_t kAbortedFailedFused = 0x09;
constexpr uint8_t kAbortedMissingFused = 0x0a;
constexpr uint8_t kInvalidNamespaceOrFormat = 0x0b;
constexpr uint8_t kCommandSequenceError = 0x0c;
constexpr uint8_t kInvalidSglSegDescriptor = 0x0d;
constexpr uint8_t kInvalidNumSglDescriptors = 0x0e;
constexpr uint8_t kDataSglLengthInvalid = 0x0f;
constexpr uint8_t kMetadataSglLengthInvalid = 0x10;
constexpr uint8_t kSglDescriptorTypeInvalid = 0x11;
constexpr uint8_t kInvalidControllerMemBuf = 0x12;
constexpr uint8_t kInvalidPrpOffset = 0x13;
constexpr uint8_t kAtomicWriteUnitExceeded = 0x14;
constexpr uint8_t kOperationDenied = 0x15;
constexpr uint8_t kInvalidSglOffset = 0x16;
constexpr uint8_t kHostIdInconsistentFormat = 0x18;
constexpr uint8_t kKeepAliveExpired = 0x19;
constexpr uint8_t kKeepAliveInvalid = 0x1a;
constexpr uint8_t kAbortedPreempt = 0x1b;
constexpr uint8_t kSanitizeFailed = 0x1c;
constexpr uint8_t kSanitizeInProgress = 0x1d;
constexpr uint8_t kSglDataBlockGranularityInvalid = 0x1e;
constexpr uint8_t kCommandInvalidInCmb = 0x1f;
constexpr uint8_t kNamespaceIsWriteProtected = 0x20;
constexpr uint8_t kCommandInterrupted = 0x21;
constexpr uint8_t kTransientTransportError = 0x22;
constexpr uint8_t kLbaOutOfRange = 0x80;
constexpr uint8_t kCapacityExceeded = 0x81;
constexpr uint8_t kNamespaceNotReady = 0x82;
constexpr uint8_t kReservationConflict = 0x83;
constexpr uint8_t kFormatInProgress = 0x84;
}  // namespace sc

// Command specific status values (Figure 96 and the fabrics figures).
namespace csc {
constexpr uint8_t kCompletionQueueInvalid = 0x00;
constexpr uint8_t kInvalidQueueIdentifier = 0x01;
constexpr uint8_t kInvalidQueueSize = 0x02;
constexpr uint8_t kAbortCommandLimitExceeded = 0x03;
constexpr uint8_t kAsyncEventRequestLimitExceeded = 0x05;
constexpr uint8_t kInvalidFirmwareSlot = 0x06;
constexpr uint8_t kInvalidFirmwareImage = 0x07;
constexpr uint8_t kInvalidInterruptVector = 0x08;
constexpr uint8_t kInvalidLogPage = 0x09;
constexpr uint8_t kInvalidFormat = 0x0a;
constexpr uint8_t kInvalidQueueDeletion = 0x0c;
constexpr uint8_t kFeatureIdNotSaveable = 0x0d;
constexpr uint8_t kFeatureNotChangeable = 0x0e;
constexpr uint8_t kFeatureNotNamespaceSpecific = 0x0f;
constexpr uint8_t kNamespaceAlreadyAttached = 0x18;
constexpr uint8_t kNamespaceIsPrivate = 0x19;
constexpr uint8_t kNamespaceNotAttached = 0x1a;
constexpr uint8_t kControllerListInvalid = 0x1c;
constexpr uint8_t kConflictingAttributes = 0x80;  // I/O command set specific
constexpr uint8_t kInvalidProtectionInfo = 0x81;
constexpr uint8_t kAttemptedWriteToRoRange = 0x82;
// Fabrics (NVMe over Fabrics 1.1, Figure 20).
constexpr uint8_t kFabricIncompatibleFormat = 0x80;
constexpr uint8_t kFabricControllerBusy = 0x81;
constexpr uint8_t kFabricInvalidParam = 0x82;
constexpr uint8_t kFabricRestartDiscovery = 0x83;
constexpr uint8_t kFabricInvalidHost = 0x84;
constexpr uint8_t kFabricLogRestartDiscovery = 0x90;
constexpr uint8_t kFabricAuthRequired = 0x91;
}  // namespace csc

// Media and data integrity errors (Figure 97).
namespace msc {
constexpr uint8_t kWriteFault = 0x80;
constexpr uint8_t kUnrecoveredReadError = 0x81;
constexpr uint8_t kGuardCheckError = 0x82;
constexpr uint8_t kApplicationTagCheckError = 0x83;
constexpr uint8_t kReferenceTagCheckError = 0x84;
constexpr uint8_t kCompareFailure = 0x85;
constexpr uint8_t kAccessDenied = 0x86;
constexpr uint8_t kDeallocatedOrUnwrittenBlock = 0x87;
}  // namespace msc

// A command's outcome: never a bare int. error_location is the byte offset
// (in the SQE) of the field that caused the error, for the Error log page.
struct Status {
  Sct sct = Sct::kGeneric;
  uint8_t sc = sc::kSuccess;
  bool dnr = false;
  bool more = false;
  uint16_t error_location = 0xffff;
  // Pads Status to 8 bytes: GCC assembles a 6-byte struct on the stack from
  // byte stores and reads it back whole, a store-forwarding stall on every
  // status check of the I/O path; 8 bytes stay in one register.
  uint16_t reserved_ = 0;

  static constexpr Status success() { return {}; }
  static constexpr Status generic(uint8_t code, bool dnr = true) {
    return {Sct::kGeneric, code, dnr, false, 0xffff};
  }
  static constexpr Status command_specific(uint8_t code, bool dnr = true) {
    return {Sct::kCommandSpecific, code, dnr, false, 0xffff};
  }
  static constexpr Status media(uint8_t code, bool dnr = false) {
    return {Sct::kMediaError, code, dnr, false, 0xffff};
  }
  constexpr Status at(uint16_t location) const {
    Status s = *this;
    s.error_location = location;
    return s;
  }
  constexpr bool ok() const { return sct == Sct::kGeneric && sc == sc::kSuccess; }
  // The 15-bit status field as it sits in CQE DW3 bits 31:17 (phase excluded).
  constexpr uint16_t field() const {
    return static_cast<uint16_t>((sc << 1) | (static_cast<uint8_t>(sct) << 9) |
                                 (more ? 1u << 14 : 0u) | (dnr ? 1u << 15 : 0u));
  }
};

}  // namespace nvemu::nvme
