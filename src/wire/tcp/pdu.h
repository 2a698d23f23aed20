// NVMe/TCP PDU wire format (NVMe/TCP Transport Specification 1.0, section 3.6).
// Shared by the target (src/nvmf/tcp) and nvemu's initiator (src/host/tcp).
// Little-endian fields, no bitfields; every size and offset the spec fixes is
// checked at build time, so a header can be overlaid on received bytes.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "nvme/sqe.h"

namespace nvemu::wire::tcp {

static_assert(std::endian::native == std::endian::little,
              "PDU structs are overlaid on the little-endian wire format");

enum class PduType : uint8_t {
  kICReq = 0x00,
  kICResp = 0x01,
  kH2CTermReq = 0x02,
  kC2HTermReq = 0x03,
  kCapsuleCmd = 0x04,
  kCapsuleResp = 0x05,
  kH2CData = 0x06,
  kC2HData = 0x07,
  kR2T = 0x09,
};

// Common header FLAGS (3.6.1). LAST_PDU and SUCCESS only in data PDUs.
namespace pdu_flags {
constexpr uint8_t kHdgst = 1u << 0;    // HDGSTF: a header digest follows the header
constexpr uint8_t kDdgst = 1u << 1;    // DDGSTF: a data digest follows the data
constexpr uint8_t kLastPdu = 1u << 2;  // last data PDU of an R2T / of a C2H transfer
constexpr uint8_t kSuccess = 1u << 3;  // C2HData: command done, no CapsuleResp follows
}  // namespace pdu_flags

// ICReq/ICResp DGST field.
namespace dgst_flags {
constexpr uint8_t kHdgstEnable = 1u << 0;
constexpr uint8_t kDdgstEnable = 1u << 1;
}  // namespace dgst_flags

// Fatal Error Status of H2CTermReq/C2HTermReq (Figure 24).
enum class Fes : uint16_t {
  kNone = 0x00,
  kInvalidHeaderField = 0x01,  // FEI = byte offset of the bad field
  kPduSequenceError = 0x02,
  kHeaderDigestError = 0x03,
  kDataOutOfRange = 0x04,
  kDataLimitExceeded = 0x05,     // a.k.a. R2T Limit Exceeded in early drafts
  kUnsupportedParameter = 0x06,  // FEI = byte offset of the parameter
};

constexpr uint32_t kDigestLen = 4;
constexpr uint16_t kPfv10 = 0;                  // PDU format version 1.0
constexpr uint32_t kMinMaxH2CData = 4096;       // MAXH2CDATA floor (3.6.2.3)
constexpr uint32_t kAdminInCapsuleSize = 8192;  // hosts assume 8 KiB ICD on the admin queue
constexpr uint32_t kMaxTermReqData = 128;       // TermReq carries at most 128 header bytes

struct CommonHeader {
  uint8_t pdu_type;
  uint8_t flags;
  uint8_t hlen;   // header length without header digest
  uint8_t pdo;    // PDU data offset: where data starts, 0 if none
  uint32_t plen;  // whole PDU: header, digest, pad, data, data digest
};
static_assert(sizeof(CommonHeader) == 8);
static_assert(offsetof(CommonHeader, flags) == 1);
static_assert(offsetof(CommonHeader, hlen) == 2);
static_assert(offsetof(CommonHeader, pdo) == 3);
static_assert(offsetof(CommonHeader, plen) == 4);

struct ICReq {
  CommonHeader ch;
  uint16_t pfv;
  uint8_t hpda;  // host PDU data alignment, 0's based dwords (0..31)
  uint8_t dgst;
  uint32_t maxr2t;  // 0's based outstanding R2Ts per command
  uint8_t reserved[112];
};
static_assert(sizeof(ICReq) == 128);
static_assert(offsetof(ICReq, pfv) == 8);
static_assert(offsetof(ICReq, hpda) == 10);
static_assert(offsetof(ICReq, dgst) == 11);
static_assert(offsetof(ICReq, maxr2t) == 12);

struct ICResp {
  CommonHeader ch;
  uint16_t pfv;
  uint8_t cpda;  // controller PDU data alignment, 0's based dwords
  uint8_t dgst;
  uint32_t maxh2cdata;  // max data bytes per H2CData PDU
  uint8_t reserved[112];
};
static_assert(sizeof(ICResp) == 128);
static_assert(offsetof(ICResp, cpda) == 10);
static_assert(offsetof(ICResp, maxh2cdata) == 12);

// H2CTermReq and C2HTermReq. FEI sits at the unaligned offset 10, so it is
// kept as bytes.
struct TermReq {
  CommonHeader ch;
  uint16_t fes;
  uint8_t fei[4];
  uint8_t reserved[10];
};
static_assert(sizeof(TermReq) == 24);
static_assert(offsetof(TermReq, fes) == 8);
static_assert(offsetof(TermReq, fei) == 10);

struct CapsuleCmd {
  CommonHeader ch;
  nvme::Sqe sqe;
};
static_assert(sizeof(CapsuleCmd) == 72);
static_assert(offsetof(CapsuleCmd, sqe) == 8);

struct CapsuleResp {
  CommonHeader ch;
  nvme::Cqe cqe;
};
static_assert(sizeof(CapsuleResp) == 24);
static_assert(offsetof(CapsuleResp, cqe) == 8);

struct H2CData {
  CommonHeader ch;
  uint16_t cccid;  // command capsule CID
  uint16_t ttag;   // transfer tag from the R2T
  uint32_t datao;
  uint32_t datal;
  uint8_t reserved[4];
};
static_assert(sizeof(H2CData) == 24);
static_assert(offsetof(H2CData, cccid) == 8);
static_assert(offsetof(H2CData, ttag) == 10);
static_assert(offsetof(H2CData, datao) == 12);
static_assert(offsetof(H2CData, datal) == 16);

struct C2HData {
  CommonHeader ch;
  uint16_t cccid;
  uint16_t reserved0;
  uint32_t datao;
  uint32_t datal;
  uint8_t reserved1[4];
};
static_assert(sizeof(C2HData) == 24);
static_assert(offsetof(C2HData, datao) == 12);
static_assert(offsetof(C2HData, datal) == 16);

struct R2T {
  CommonHeader ch;
  uint16_t cccid;
  uint16_t ttag;
  uint32_t r2to;  // offset of the requested data
  uint32_t r2tl;  // length of the requested data
  uint8_t reserved[4];
};
static_assert(sizeof(R2T) == 24);
static_assert(offsetof(R2T, ttag) == 10);
static_assert(offsetof(R2T, r2to) == 12);
static_assert(offsetof(R2T, r2tl) == 16);

// Largest header plus its digest; receive buffers for headers use this.
constexpr size_t kMaxHeaderLen = sizeof(ICReq);
constexpr size_t kMaxHeaderWithDigest = kMaxHeaderLen + kDigestLen;
constexpr uint32_t kMaxTermReqPlen = sizeof(TermReq) + kMaxTermReqData;
static_assert(kMaxTermReqPlen == 152);

// SGL descriptor types a command capsule may carry (3.3.4 / NVMe-oF 2.3).
constexpr uint8_t kSglInCapsule = (nvme::kSglDataBlock << 4) | nvme::kSglOffset;  // 0x01
constexpr uint8_t kSglTransport =
    (nvme::kSglTransportDataBlock << 4) | nvme::kSglTransport;  // 0x5A

}  // namespace nvemu::wire::tcp
