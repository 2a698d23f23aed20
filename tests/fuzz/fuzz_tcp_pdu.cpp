// libFuzzer entry for the NVMe/TCP PDU header parser/validator. The first
// byte picks the link state (receiver side, ICReq done, digests); the rest is
// a stream of PDUs walked the way a connection reads them: common header,
// check_common(), the rest of the header, check_header(), then the data the
// layout says to skip. Any crash, overflow or UB is a bug; a validation
// failure ends the stream as a real connection would.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "wire/tcp/pdu_codec.h"

using namespace nvemu::wire::tcp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  LinkParams p;
  uint8_t mode = data[0];
  p.receiver = mode & 1 ? Receiver::kHost : Receiver::kController;
  p.ic_done = mode & 2;
  p.hdgst = mode & 4;
  p.ddgst = mode & 8;
  p.max_icd = mode & 16 ? 8192 : 4096;
  p.max_h2c_data = 131072;
  ++data;
  --size;

  alignas(8) uint8_t hdr[kMaxHeaderWithDigest] = {};
  while (size >= sizeof(CommonHeader)) {
    CommonHeader ch;
    std::memcpy(&ch, data, sizeof ch);
    PduLayout l;
    if (!check_common(ch, p, &l).ok()) break;
    // The layout must describe a PDU that fits its own PLEN.
    if (l.header_len > kMaxHeaderWithDigest) __builtin_trap();
    if (static_cast<uint64_t>(l.header_len) + l.pad_len + l.data_len + l.ddgst_len != ch.plen)
      __builtin_trap();
    if (size < l.header_len) break;
    std::memcpy(hdr, data, l.header_len);
    if (!check_header(hdr, l, p).ok()) break;
    if (ch.pdu_type == static_cast<uint8_t>(PduType::kICReq) ||
        ch.pdu_type == static_cast<uint8_t>(PduType::kICResp))
      p.ic_done = true;
    size_t total = ch.plen;
    if (total > size) break;
    // Exercise the digest over the data as a receiver would.
    if (l.data_len) (void)digest(data + l.header_len + l.pad_len, l.data_len);
    data += total;
    size -= total;
  }

  // The builders must produce PDUs their own validator accepts.
  uint8_t out[kMaxHeaderWithDigest + 256];
  nvemu::nvme::Sqe sqe{};
  std::memcpy(&sqe, hdr, sizeof(sqe) < sizeof hdr ? sizeof(sqe) : sizeof hdr);
  LinkParams c;
  c.ic_done = true;
  c.hdgst = p.hdgst;
  c.ddgst = p.ddgst;
  uint32_t icd = mode & 32 ? 4096 : 0;
  build_capsule_cmd(out, sqe, icd, c.hdgst, c.ddgst, mode >> 6);
  CommonHeader ch;
  std::memcpy(&ch, out, sizeof ch);
  PduLayout l;
  if (!check_common(ch, c, &l).ok() || !check_header(out, l, c).ok()) __builtin_trap();
  return 0;
}
