// Controller registers (NVMe Base 2.0, 3.1.3, Figure 33): the BAR0 layout a
// PCIe host maps and the property space a fabrics host reaches with Property
// Get/Set (NVMe over Fabrics 1.1, 3.5). One model serves both.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nvemu::nvme {

namespace reg {
constexpr uint32_t kCap = 0x00;  // 8 bytes
constexpr uint32_t kVs = 0x08;
constexpr uint32_t kIntms = 0x0c;
constexpr uint32_t kIntmc = 0x10;
constexpr uint32_t kCc = 0x14;
constexpr uint32_t kCsts = 0x1c;
constexpr uint32_t kNssr = 0x20;
constexpr uint32_t kAqa = 0x24;
constexpr uint32_t kAsq = 0x28;  // 8 bytes
constexpr uint32_t kAcq = 0x30;  // 8 bytes
constexpr uint32_t kCmbloc = 0x38;
constexpr uint32_t kCmbsz = 0x3c;
constexpr uint32_t kBpinfo = 0x40;
constexpr uint32_t kBprsel = 0x44;
constexpr uint32_t kBpmbl = 0x48;  // 8 bytes
constexpr uint32_t kCmbmsc = 0x50;
constexpr uint32_t kCmbsts = 0x58;
constexpr uint32_t kPmrcap = 0xe00;
constexpr uint32_t kDoorbells = 0x1000;
constexpr uint32_t kNssrReset = 0x4e564d65;  // "NVMe": NVM Subsystem Reset
}  // namespace reg

// The register block as it sits in BAR0, for the offset checks below and
// for transports that keep a shadow copy.
struct RegisterBlock {
  uint64_t cap;
  uint32_t vs;
  uint32_t intms;
  uint32_t intmc;
  uint32_t cc;
  uint32_t reserved18;
  uint32_t csts;
  uint32_t nssr;
  uint32_t aqa;
  uint64_t asq;
  uint64_t acq;
  uint32_t cmbloc;
  uint32_t cmbsz;
  uint32_t bpinfo;
  uint32_t bprsel;
  uint64_t bpmbl;
  uint64_t cmbmsc;
  uint32_t cmbsts;
};
static_assert(offsetof(RegisterBlock, vs) == reg::kVs);
static_assert(offsetof(RegisterBlock, intms) == reg::kIntms);
static_assert(offsetof(RegisterBlock, cc) == reg::kCc);
static_assert(offsetof(RegisterBlock, csts) == reg::kCsts);
static_assert(offsetof(RegisterBlock, nssr) == reg::kNssr);
static_assert(offsetof(RegisterBlock, aqa) == reg::kAqa);
static_assert(offsetof(RegisterBlock, asq) == reg::kAsq);
static_assert(offsetof(RegisterBlock, acq) == reg::kAcq);
static_assert(offsetof(RegisterBlock, cmbloc) == reg::kCmbloc);
static_assert(offsetof(RegisterBlock, cmbsz) == reg::kCmbsz);
static_assert(offsetof(RegisterBlock, bpmbl) == reg::kBpmbl);
static_assert(offsetof(RegisterBlock, cmbmsc) == reg::kCmbmsc);
static_assert(offsetof(RegisterBlock, cmbsts) == reg::kCmbsts);

// Version register value: major.minor.tertiary. nvemu reports 1.3, like
// SPDK's fabrics target: it implements the 1.3 admin set plus the few 1.4/2.0
// additions hosts probe for (CNS 05h/06h) and nothing that 1.4 would oblige
// (e.g. persistent event log, ANA is optional).
constexpr uint32_t version(uint32_t major, uint32_t minor, uint32_t ter = 0) {
  return (major << 16) | (minor << 8) | ter;
}
constexpr uint32_t kVersion = version(1, 3);

// CAP, Figure 35.
struct Cap {
  uint64_t raw = 0;
  uint16_t mqes() const { return raw & 0xffff; }  // 0-based
  bool cqr() const { return raw >> 16 & 1; }
  uint8_t to() const { return raw >> 24 & 0xff; }  // 500 ms units
  uint8_t dstrd() const { return raw >> 32 & 0xf; }
  uint8_t css() const { return raw >> 37 & 0xff; }
  uint8_t mpsmin() const { return raw >> 48 & 0xf; }
  uint8_t mpsmax() const { return raw >> 52 & 0xf; }
  static Cap make(uint16_t mqes, bool cqr, uint8_t to_500ms, uint8_t mpsmin, uint8_t mpsmax) {
    Cap c;
    c.raw = uint64_t{mqes} | (uint64_t{cqr} << 16) | (uint64_t{to_500ms} << 24) |
            (uint64_t{1} << 37) /* CSS: NVM command set */ | (uint64_t{mpsmin} << 48) |
            (uint64_t{mpsmax} << 52);
    return c;
  }
};

// CC, Figure 41.
namespace cc {
constexpr uint32_t kEn = 1u << 0;
inline uint8_t css(uint32_t v) {
  return v >> 4 & 0x7;
}
inline uint8_t mps(uint32_t v) {
  return v >> 7 & 0xf;
}
inline uint8_t ams(uint32_t v) {
  return v >> 11 & 0x7;
}
inline uint8_t shn(uint32_t v) {
  return v >> 14 & 0x3;
}
inline uint8_t iosqes(uint32_t v) {
  return v >> 16 & 0xf;
}
inline uint8_t iocqes(uint32_t v) {
  return v >> 20 & 0xf;
}
constexpr uint8_t kShnNone = 0, kShnNormal = 1, kShnAbrupt = 2;
}  // namespace cc

// CSTS, Figure 42.
namespace csts {
constexpr uint32_t kRdy = 1u << 0;
constexpr uint32_t kCfs = 1u << 1;
constexpr uint32_t kShstMask = 3u << 2;
constexpr uint32_t kShstOccurring = 1u << 2;
constexpr uint32_t kShstComplete = 2u << 2;
constexpr uint32_t kNssro = 1u << 4;
}  // namespace csts

}  // namespace nvemu::nvme
