// vfio-user wire format (QEMU docs/interop/vfio-user.rst, protocol 0.1).
//
// Every message is a 16-byte header followed by a command-specific payload;
// file descriptors travel as SCM_RIGHTS ancillary data of the message's
// first bytes. All fields are little-endian (nvemu runs on little-endian
// hosts only, checked below). The payload structs mirror the VFIO ioctl
// structs of <linux/vfio.h>, which the protocol imports; sizes are checked
// at build time.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace nvemu::vfio_user {

static_assert(std::endian::native == std::endian::little, "vfio-user is little-endian");

constexpr uint16_t kMajor = 0;
constexpr uint16_t kMinor = 1;

enum Command : uint16_t {
  kVersion = 1,
  kDmaMap = 2,
  kDmaUnmap = 3,
  kDeviceGetInfo = 4,
  kDeviceGetRegionInfo = 5,
  kDeviceGetRegionIoFds = 6,
  kDeviceGetIrqInfo = 7,
  kDeviceSetIrqs = 8,
  kRegionRead = 9,
  kRegionWrite = 10,
  kDmaRead = 11,
  kDmaWrite = 12,
  kDeviceReset = 13,
  kDirtyPages = 14,        // removed from the protocol; always rejected
  kRegionWriteMulti = 15,  // only with the "write_multiple" capability (not offered)
};
const char* command_name(uint16_t cmd);

struct Header {
  uint16_t msg_id;
  uint16_t command;
  uint32_t msg_size;  // header included
  uint32_t flags;
  uint32_t error;  // errno, valid in a reply with kFlagError
};
static_assert(sizeof(Header) == 16);
static_assert(offsetof(Header, msg_size) == 4);
static_assert(offsetof(Header, error) == 12);

constexpr uint32_t kFlagTypeMask = 0xf;
constexpr uint32_t kFlagRequest = 0x0;
constexpr uint32_t kFlagReply = 0x1;
constexpr uint32_t kFlagNoReply = 0x10;
constexpr uint32_t kFlagError = 0x20;

struct VersionPayload {
  uint16_t major;
  uint16_t minor;
  // followed by a NUL-terminated JSON object: {"capabilities": {...}}
};
static_assert(sizeof(VersionPayload) == 4);

// VFIO_USER_DMA_MAP (vfio_iommu_type1_dma_map with vaddr replaced by offset).
struct DmaMap {
  uint32_t argsz;
  uint32_t flags;
  uint64_t offset;   // into the passed fd
  uint64_t address;  // guest physical address (IOVA)
  uint64_t size;
};
static_assert(sizeof(DmaMap) == 32);
constexpr uint32_t kDmaMapRead = 1u << 0;
constexpr uint32_t kDmaMapWrite = 1u << 1;

struct DmaUnmap {
  uint32_t argsz;
  uint32_t flags;
  uint64_t address;
  uint64_t size;
};
static_assert(sizeof(DmaUnmap) == 24);
constexpr uint32_t kDmaUnmapGetDirtyBitmap = 1u << 0;
constexpr uint32_t kDmaUnmapAll = 1u << 1;

struct DeviceInfo {
  uint32_t argsz;
  uint32_t flags;
  uint32_t num_regions;
  uint32_t num_irqs;
};
static_assert(sizeof(DeviceInfo) == 16);
constexpr uint32_t kDeviceFlagReset = 1u << 0;
constexpr uint32_t kDeviceFlagPci = 1u << 1;

// Region indexes of a PCI device (VFIO_PCI_*_REGION_INDEX).
enum RegionIndex : uint32_t {
  kBar0 = 0,
  kBar1 = 1,
  kBar2 = 2,
  kBar3 = 3,
  kBar4 = 4,
  kBar5 = 5,
  kRom = 6,
  kConfig = 7,
  kVga = 8,
  kNumRegions = 9,
};

struct RegionInfo {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t cap_offset;  // from the start of this struct
  uint64_t size;
  uint64_t offset;  // file offset of the region in the passed fd, if any
};
static_assert(sizeof(RegionInfo) == 32);
constexpr uint32_t kRegionFlagRead = 1u << 0;
constexpr uint32_t kRegionFlagWrite = 1u << 1;
constexpr uint32_t kRegionFlagMmap = 1u << 2;
constexpr uint32_t kRegionFlagCaps = 1u << 3;

struct CapHeader {
  uint16_t id;
  uint16_t version;
  uint32_t next;  // offset from the start of RegionInfo, 0 = last
};
static_assert(sizeof(CapHeader) == 8);
constexpr uint16_t kCapSparseMmap = 1;

struct SparseMmapArea {
  uint64_t offset;  // within the region
  uint64_t size;
};
struct SparseMmapCap {
  CapHeader header;
  uint32_t nr_areas;
  uint32_t reserved;
  // followed by nr_areas SparseMmapArea
};
static_assert(sizeof(SparseMmapArea) == 16);
static_assert(sizeof(SparseMmapCap) == 16);

enum IrqIndex : uint32_t {
  kIrqIntx = 0,
  kIrqMsi = 1,
  kIrqMsix = 2,
  kIrqErr = 3,
  kIrqReq = 4,
  kNumIrqs = 5,
};

struct IrqInfo {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t count;
};
static_assert(sizeof(IrqInfo) == 16);
constexpr uint32_t kIrqInfoEventfd = 1u << 0;
constexpr uint32_t kIrqInfoMaskable = 1u << 1;
constexpr uint32_t kIrqInfoAutomasked = 1u << 2;
constexpr uint32_t kIrqInfoNoResize = 1u << 3;

struct IrqSet {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t start;
  uint32_t count;
  // DATA_BOOL: count bytes follow; DATA_EVENTFD: count fds (or none) attached
};
static_assert(sizeof(IrqSet) == 20);
constexpr uint32_t kIrqSetDataNone = 1u << 0;
constexpr uint32_t kIrqSetDataBool = 1u << 1;
constexpr uint32_t kIrqSetDataEventfd = 1u << 2;
constexpr uint32_t kIrqSetDataMask = 0x7;
constexpr uint32_t kIrqSetActionMask = 1u << 3;
constexpr uint32_t kIrqSetActionUnmask = 1u << 4;
constexpr uint32_t kIrqSetActionTrigger = 1u << 5;
constexpr uint32_t kIrqSetActionMaskAll = 0x38;

// VFIO_USER_REGION_READ / _WRITE; data follows (a write reply carries none).
struct RegionAccess {
  uint64_t offset;
  uint32_t region;
  uint32_t count;
};
static_assert(sizeof(RegionAccess) == 16);

// Limits nvemu offers in its VERSION reply.
constexpr uint32_t kMaxMsgFds = 8;
constexpr uint32_t kMaxDataXferSize = 1u << 20;
constexpr uint64_t kPgsizes = 4096;
constexpr uint32_t kMaxDmaMaps = 65535;
// The largest message accepted: a region write of kMaxDataXferSize.
constexpr uint32_t kMaxMsgSize = kMaxDataXferSize + sizeof(Header) + sizeof(RegionAccess);

}  // namespace nvemu::vfio_user
