// NVMe/TCP PDU codec: header validation and header building, shared by the
// target and the initiator. Validation happens in two steps because a
// receiver first reads the 8-byte common header (which says how long the rest
// is) and then the rest: check_common() judges everything the common header
// alone determines, check_header() the PDU-specific fields and the header
// digest. Each failure names the Fatal Error Status and, for Invalid PDU
// Header Field / Unsupported Parameter, the byte offset of the field (FEI),
// so the caller can send the TermReq the spec asks for (3.6.2.4/5).
// Nothing here allocates or touches a socket.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "wire/tcp/pdu.h"

namespace nvemu::wire::tcp {

// CRC32C (Castagnoli) as NVMe/TCP digests use it: seed ~0, final xor ~0,
// stored little-endian (3.6.1.3), computed by ISA-L.
uint32_t crc32c_update(uint32_t crc, const void* buf, size_t len);
constexpr uint32_t kCrc32cSeed = 0xffffffffu;
inline uint32_t crc32c_final(uint32_t crc) {
  return crc ^ 0xffffffffu;
}
inline uint32_t digest(const void* buf, size_t len) {
  return crc32c_final(crc32c_update(kCrc32cSeed, buf, len));
}
uint32_t digest_iov(const struct iovec* iov, int iovcnt, size_t offset, size_t len);

// Who is receiving: decides which PDU types are legal.
enum class Receiver : uint8_t { kController, kHost };

// What the receiving side of one connection has negotiated so far.
struct LinkParams {
  Receiver receiver = Receiver::kController;
  bool ic_done = false;  // ICReq/ICResp exchanged
  bool hdgst = false;    // header digests negotiated
  bool ddgst = false;    // data digests negotiated
  // Controller side: max in-capsule data bytes and MAXH2CDATA it announced.
  uint32_t max_icd = kAdminInCapsuleSize;
  uint32_t max_h2c_data = 131072;
};

struct PduError {
  Fes fes = Fes::kNone;
  uint32_t fei = 0;
  const char* why = "";  // for the log line; static string
  bool ok() const { return fes == Fes::kNone; }
};

// Layout of one PDU as derived from a valid common header.
struct PduLayout {
  uint32_t header_len = 0;  // hlen + header digest
  uint32_t pad_len = 0;     // bytes between header digest and data
  uint32_t data_len = 0;
  uint32_t ddgst_len = 0;  // 4 when a data digest follows the data
  bool has_hdgst = false;
};

// Expected HLEN for a PDU type, 0 for an unknown type.
uint8_t expected_hlen(uint8_t pdu_type);
// True for types that carry a header digest once negotiated.
bool type_has_hdgst(PduType t);

// Step 1: the common header alone. On success fills *layout.
PduError check_common(const CommonHeader& ch, const LinkParams& p, PduLayout* layout);
// Step 2: the whole header (layout.header_len bytes, digest included),
// after check_common() accepted its common header.
PduError check_header(const uint8_t* hdr, const PduLayout& layout, const LinkParams& p);

// Header builders. Each writes the header, its digest when `hdgst` and any pad
// the receiver's data alignment needs, and returns the bytes written (at most
// kMaxHeaderWithDigest + 128). `pda` is the peer's 0's based PDU data
// alignment (HPDA for C2H data, CPDA for H2C data).
size_t build_icreq(uint8_t* out, uint8_t hpda, bool hdgst, bool ddgst, uint32_t maxr2t);
size_t build_icresp(uint8_t* out, uint8_t cpda, bool hdgst, bool ddgst, uint32_t maxh2cdata);
size_t build_term_req(uint8_t* out, PduType type, Fes fes, uint32_t fei, const uint8_t* bad_hdr,
                      size_t bad_len);
size_t build_capsule_cmd(uint8_t* out, const nvme::Sqe& sqe, uint32_t icd_len, bool hdgst,
                         bool ddgst, uint8_t pda);
size_t build_capsule_resp(uint8_t* out, const nvme::Cqe& cqe, bool hdgst);
size_t build_r2t(uint8_t* out, uint16_t cccid, uint16_t ttag, uint32_t r2to, uint32_t r2tl,
                 bool hdgst);
size_t build_data(uint8_t* out, PduType type, uint16_t cccid, uint16_t ttag, uint32_t datao,
                  uint32_t datal, uint8_t extra_flags, bool hdgst, bool ddgst, uint8_t pda);

const char* fes_name(Fes fes);
const char* pdu_type_name(uint8_t type);

}  // namespace nvemu::wire::tcp
