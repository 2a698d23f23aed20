// Log pages (NVMe Base 2.0, 5.16.1; NVMe over Fabrics 1.1, 5.3 for the
// discovery log). Wire layout, little-endian, no bitfields.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nvemu::nvme {

namespace lid {
constexpr uint8_t kErrorInfo = 0x01;
constexpr uint8_t kSmartHealth = 0x02;
constexpr uint8_t kFirmwareSlot = 0x03;
constexpr uint8_t kChangedNsList = 0x04;
constexpr uint8_t kCommandsEffects = 0x05;
constexpr uint8_t kDiscovery = 0x70;
}  // namespace lid

// Error Information entry, Figure 205.
struct ErrorLogEntry {
  uint64_t error_count;
  uint16_t sqid;
  uint16_t cid;
  uint16_t status;  // bit 0 phase tag, bits 15:1 status field
  uint16_t param_error_location;
  uint64_t lba;
  uint32_t nsid;
  uint8_t vendor_specific;
  uint8_t trtype;
  uint8_t reserved30[2];
  uint64_t command_specific;
  uint16_t trtype_specific;
  uint8_t reserved42[22];
};
static_assert(sizeof(ErrorLogEntry) == 64);
static_assert(offsetof(ErrorLogEntry, lba) == 16);
static_assert(offsetof(ErrorLogEntry, nsid) == 24);
static_assert(offsetof(ErrorLogEntry, command_specific) == 32);

// SMART / Health Information, Figure 207. 128-bit counters are two u64s
// (low first); temperature sits unaligned at byte 1, hence bytes.
struct SmartLog {
  uint8_t critical_warning;
  uint8_t temperature[2];  // Kelvin
  uint8_t available_spare;
  uint8_t available_spare_threshold;
  uint8_t percentage_used;
  uint8_t endurance_group_critical_warning;
  uint8_t reserved7[25];
  uint64_t data_units_read[2];
  uint64_t data_units_written[2];
  uint64_t host_read_commands[2];
  uint64_t host_write_commands[2];
  uint64_t controller_busy_time[2];
  uint64_t power_cycles[2];
  uint64_t power_on_hours[2];
  uint64_t unsafe_shutdowns[2];
  uint64_t media_errors[2];
  uint64_t num_error_log_entries[2];
  uint32_t warning_temp_time;
  uint32_t critical_temp_time;
  uint16_t temp_sensor[8];
  uint32_t thermal_mgmt_t1_count;
  uint32_t thermal_mgmt_t2_count;
  uint32_t thermal_mgmt_t1_time;
  uint32_t thermal_mgmt_t2_time;
  uint8_t reserved232[280];
};
static_assert(sizeof(SmartLog) == 512);
static_assert(offsetof(SmartLog, data_units_read) == 32);
static_assert(offsetof(SmartLog, host_read_commands) == 64);
static_assert(offsetof(SmartLog, power_on_hours) == 128);
static_assert(offsetof(SmartLog, num_error_log_entries) == 176);
static_assert(offsetof(SmartLog, warning_temp_time) == 192);
static_assert(offsetof(SmartLog, temp_sensor) == 200);

// Firmware Slot Information, Figure 208.
struct FirmwareSlotLog {
  uint8_t afi;  // bits 2:0 active slot
  uint8_t reserved1[7];
  char frs[7][8];
  uint8_t reserved64[448];
};
static_assert(sizeof(FirmwareSlotLog) == 512);
static_assert(offsetof(FirmwareSlotLog, frs) == 8);

// Changed Namespace List, Figure 209: up to 1024 NSIDs; a first entry of
// FFFFFFFFh means more than 1024 changed.
struct ChangedNsList {
  uint32_t nsid[1024];
};
static_assert(sizeof(ChangedNsList) == 4096);

// Commands Supported and Effects, Figures 210-211.
namespace effects {
constexpr uint32_t kCsupp = 1u << 0;  // command supported
constexpr uint32_t kLbcc = 1u << 1;   // logical block content change
constexpr uint32_t kNcc = 1u << 2;    // namespace capability change
constexpr uint32_t kNic = 1u << 3;    // namespace inventory change
constexpr uint32_t kCcc = 1u << 4;    // controller capability change
}  // namespace effects
struct CommandsEffectsLog {
  uint32_t admin[256];
  uint32_t io[256];
  uint8_t reserved[2048];
};
static_assert(sizeof(CommandsEffectsLog) == 4096);
static_assert(offsetof(CommandsEffectsLog, io) == 1024);

// Discovery log page header (NVMe-oF 1.1, Figure 38) and entries (Figure 39).
struct DiscoveryLogHeader {
  uint64_t genctr;
  uint64_t numrec;
  uint16_t recfmt;
  uint8_t reserved18[1006];
};
static_assert(sizeof(DiscoveryLogHeader) == 1024);
static_assert(offsetof(DiscoveryLogHeader, recfmt) == 16);

namespace disc {
constexpr uint8_t kTrtypeRdma = 1, kTrtypeFc = 2, kTrtypeTcp = 3, kTrtypeIntraHost = 254;
constexpr uint8_t kAdrfamIpv4 = 1, kAdrfamIpv6 = 2, kAdrfamIb = 3, kAdrfamFc = 4,
                  kAdrfamIntraHost = 254;
constexpr uint8_t kSubtypeDiscoveryReferral = 1, kSubtypeNvme = 2, kSubtypeCurrentDiscovery = 3;
constexpr uint8_t kTreqSecureNotRequired = 2;  // bits 1:0
}  // namespace disc

struct DiscoveryLogEntry {
  uint8_t trtype;
  uint8_t adrfam;
  uint8_t subtype;
  uint8_t treq;
  uint16_t portid;
  uint16_t cntlid;
  uint16_t asqsz;
  uint16_t eflags;
  uint8_t reserved12[20];
  char trsvcid[32];
  uint8_t reserved64[192];
  char subnqn[256];
  char traddr[256];
  uint8_t tsas[256];
};
static_assert(sizeof(DiscoveryLogEntry) == 1024);
static_assert(offsetof(DiscoveryLogEntry, asqsz) == 8);
static_assert(offsetof(DiscoveryLogEntry, trsvcid) == 32);
static_assert(offsetof(DiscoveryLogEntry, subnqn) == 256);
static_assert(offsetof(DiscoveryLogEntry, traddr) == 512);
static_assert(offsetof(DiscoveryLogEntry, tsas) == 768);

// Asynchronous event types and information (Figures 146-150).
namespace aen {
constexpr uint8_t kTypeError = 0, kTypeSmart = 1, kTypeNotice = 2, kTypeIoCmdSet = 6;
constexpr uint8_t kNoticeNsAttrChanged = 0x00;
constexpr uint8_t kNoticeFwActivation = 0x01;
constexpr uint8_t kNoticeDiscoveryChanged = 0xf0;
// Asynchronous Event Configuration (Feature 0Bh) bits.
constexpr uint32_t kCfgNsAttr = 1u << 8;
constexpr uint32_t kCfgFwActivation = 1u << 9;
constexpr uint32_t kCfgDiscovery = 1u << 31;
constexpr uint32_t pack(uint8_t type, uint8_t info, uint8_t log_page) {
  return uint32_t{type} | uint32_t{info} << 8 | uint32_t{log_page} << 16;
}
}  // namespace aen

}  // namespace nvemu::nvme
