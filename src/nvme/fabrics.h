// Fabrics command capsules (NVMe over Fabrics 1.1, section 3): Connect with
// its 1024-byte data, Property Get/Set. They travel in a 64-byte SQE with
// opcode 7Fh and the fabrics command type at byte 4.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nvme/sqe.h"

namespace nvemu::nvme {

constexpr uint8_t kFabricsOpcode = 0x7f;

namespace fctype {
constexpr uint8_t kPropertySet = 0x00;
constexpr uint8_t kConnect = 0x01;
constexpr uint8_t kPropertyGet = 0x04;
constexpr uint8_t kAuthSend = 0x05;
constexpr uint8_t kAuthRecv = 0x06;
constexpr uint8_t kDisconnect = 0x08;
}  // namespace fctype

struct FabricsCmd {
  uint8_t opcode;
  uint8_t reserved1;
  uint16_t cid;
  uint8_t fctype;
  uint8_t reserved5[19];
  SglDescriptor sgl1;
  uint8_t specific[24];
};
static_assert(sizeof(FabricsCmd) == 64);
static_assert(offsetof(FabricsCmd, fctype) == 4);
static_assert(offsetof(FabricsCmd, sgl1) == 24);

// Connect command, Figure 19.
struct ConnectCmd {
  uint8_t opcode;
  uint8_t reserved1;
  uint16_t cid;
  uint8_t fctype;
  uint8_t reserved5[19];
  SglDescriptor sgl1;
  uint16_t recfmt;
  uint16_t qid;
  uint16_t sqsize;  // 0-based
  uint8_t cattr;
  uint8_t reserved47;
  uint32_t kato;  // ms
  uint8_t reserved52[12];
};
static_assert(sizeof(ConnectCmd) == 64);
static_assert(offsetof(ConnectCmd, recfmt) == 40);
static_assert(offsetof(ConnectCmd, qid) == 42);
static_assert(offsetof(ConnectCmd, sqsize) == 44);
static_assert(offsetof(ConnectCmd, cattr) == 46);
static_assert(offsetof(ConnectCmd, kato) == 48);

// Connect data, Figure 20.
struct ConnectData {
  uint8_t hostid[16];
  uint16_t cntlid;
  uint8_t reserved18[238];
  char subnqn[256];
  char hostnqn[256];
  uint8_t reserved768[256];
};
static_assert(sizeof(ConnectData) == 1024);
static_assert(offsetof(ConnectData, cntlid) == 16);
static_assert(offsetof(ConnectData, subnqn) == 256);
static_assert(offsetof(ConnectData, hostnqn) == 512);

constexpr uint16_t kDynamicCntlid = 0xffff;
constexpr uint16_t kStaticCntlidAny = 0xfffe;

// Connect response DW0 (Figure 21): CNTLID on success; for Connect Invalid
// Parameters the offending field: IPO (byte offset) and IATTR (0 = in the
// command, 1 = in the Connect data).
constexpr uint32_t connect_invalid_param(bool in_data, uint16_t offset) {
  return uint32_t{offset} | (in_data ? 1u << 16 : 0u);
}

// Property Get / Set, Figures 23-26. ATTRIB bits 2:0: 0 = 4 bytes, 1 = 8.
struct PropertyCmd {
  uint8_t opcode;
  uint8_t reserved1;
  uint16_t cid;
  uint8_t fctype;
  uint8_t reserved5[35];
  uint8_t attrib;
  uint8_t reserved41[3];
  uint32_t ofst;
  uint64_t value;  // Property Set only
  uint8_t reserved56[8];
};
static_assert(sizeof(PropertyCmd) == 64);
static_assert(offsetof(PropertyCmd, attrib) == 40);
static_assert(offsetof(PropertyCmd, ofst) == 44);
static_assert(offsetof(PropertyCmd, value) == 48);

// Reinterpret a 64-byte SQE as a fabrics capsule.
template <typename T>
inline T as(const Sqe& sqe) {
  static_assert(sizeof(T) == sizeof(Sqe));
  T t;
  std::memcpy(&t, &sqe, sizeof t);
  return t;
}

}  // namespace nvemu::nvme
