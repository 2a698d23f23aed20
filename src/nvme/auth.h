// In-band authentication on the wire (NVMe Base 2.0, 6.3 and 8.13.5; the
// layouts Linux's include/linux/nvme.h uses): the Authentication Send /
// Receive fabrics commands and the DH-HMAC-CHAP messages they carry.
// Multi-byte fields are little-endian.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nvme/sqe.h"

namespace nvemu::nvme::auth {

constexpr uint8_t kSecpNvme = 0xe9;  // SECP: NVMe in-band authentication
constexpr uint8_t kSpsp = 0x01;      // SPSP0/SPSP1: DH-HMAC-CHAP

// Connect response DW0 bits beside CNTLID (Linux: NVME_CONNECT_AUTHREQ_*):
// authentication transaction required, secure channel required.
constexpr uint32_t kConnectAuthreqAtr = 1u << 17;
constexpr uint32_t kConnectAuthreqAscr = 1u << 18;

// Authentication Send (fctype 05h) / Receive (06h): TL resp. AL is the
// transfer length of the message.
struct AuthCmd {
  uint8_t opcode;
  uint8_t reserved1;
  uint16_t cid;
  uint8_t fctype;
  uint8_t reserved5[19];
  SglDescriptor sgl1;
  uint8_t reserved40;
  uint8_t spsp0;
  uint8_t spsp1;
  uint8_t secp;
  uint32_t len;  // TL (send) or AL (receive)
  uint8_t reserved48[16];
};
static_assert(sizeof(AuthCmd) == 64);
static_assert(offsetof(AuthCmd, spsp0) == 41);
static_assert(offsetof(AuthCmd, secp) == 43);
static_assert(offsetof(AuthCmd, len) == 44);

// Message types (AUTH_Type) and identifiers (AUTH_Id).
constexpr uint8_t kTypeCommon = 0x00;
constexpr uint8_t kTypeDhchap = 0x01;
constexpr uint8_t kIdNegotiate = 0x00;
constexpr uint8_t kIdChallenge = 0x01;
constexpr uint8_t kIdReply = 0x02;
constexpr uint8_t kIdSuccess1 = 0x03;
constexpr uint8_t kIdSuccess2 = 0x04;
constexpr uint8_t kIdFailure2 = 0xf0;
constexpr uint8_t kIdFailure1 = 0xf1;

constexpr uint8_t kAuthIdDhchap = 0x01;  // protocol descriptor AUTHID

// Failure reason code (always 01h) and explanations (Figure 461).
constexpr uint8_t kRescodeFailed = 0x01;
namespace why {
constexpr uint8_t kFailed = 0x01;
constexpr uint8_t kNotUsable = 0x02;
constexpr uint8_t kConcatMismatch = 0x03;
constexpr uint8_t kHashUnusable = 0x04;
constexpr uint8_t kDhgroupUnusable = 0x05;
constexpr uint8_t kIncorrectPayload = 0x06;
constexpr uint8_t kIncorrectProtocol = 0x07;
}  // namespace why

struct ProtocolDescriptor {
  uint8_t authid;
  uint8_t reserved1;
  uint8_t halen;  // hash identifiers in idlist[0..halen)
  uint8_t dhlen;  // DH group identifiers in idlist[30..30+dhlen)
  uint8_t idlist[60];
};
static_assert(sizeof(ProtocolDescriptor) == 64);
constexpr size_t kDhIdOffset = 30;

struct NegotiateHdr {
  uint8_t auth_type;
  uint8_t auth_id;
  uint16_t reserved2;
  uint16_t t_id;
  uint8_t sc_c;
  uint8_t napd;  // number of protocol descriptors that follow
};
static_assert(sizeof(NegotiateHdr) == 8);

// Challenge: then hl bytes of C1 and dhvlen bytes of the DH value.
struct ChallengeHdr {
  uint8_t auth_type;
  uint8_t auth_id;
  uint16_t reserved2;
  uint16_t t_id;
  uint8_t hl;
  uint8_t reserved7;
  uint8_t hashid;
  uint8_t dhgid;
  uint16_t dhvlen;
  uint32_t seqnum;
};
static_assert(sizeof(ChallengeHdr) == 16);

// Reply: then hl bytes of R1, hl bytes of C2 (valid if cvalid), dhvlen
// bytes of the host's DH value.
struct ReplyHdr {
  uint8_t auth_type;
  uint8_t auth_id;
  uint16_t reserved2;
  uint16_t t_id;
  uint8_t hl;
  uint8_t reserved7;
  uint8_t cvalid;
  uint8_t reserved9;
  uint16_t dhvlen;
  uint32_t seqnum;  // S2, 0 without controller authentication
};
static_assert(sizeof(ReplyHdr) == 16);

// Success1: then hl bytes of R2 when rvalid.
struct Success1Hdr {
  uint8_t auth_type;
  uint8_t auth_id;
  uint16_t reserved2;
  uint16_t t_id;
  uint8_t hl;
  uint8_t reserved7;
  uint8_t rvalid;
  uint8_t reserved9[7];
};
static_assert(sizeof(Success1Hdr) == 16);

struct Success2 {
  uint8_t auth_type;
  uint8_t auth_id;
  uint16_t reserved2;
  uint16_t t_id;
  uint8_t reserved6[10];
};
static_assert(sizeof(Success2) == 16);

struct Failure {
  uint8_t auth_type;
  uint8_t auth_id;
  uint16_t reserved2;
  uint16_t t_id;
  uint8_t rescode;
  uint8_t rescode_exp;
};
static_assert(sizeof(Failure) == 8);

}  // namespace nvemu::nvme::auth
