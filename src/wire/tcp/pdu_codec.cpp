#include "wire/tcp/pdu_codec.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace nvemu::wire::tcp {

uint32_t crc32c_update(uint32_t crc, const void* buf, size_t len) {
  auto* p = static_cast<unsigned char*>(const_cast<void*>(buf));
  // ISA-L takes an int length: feed huge buffers in slices.
  while (len > 0) {
    int n = static_cast<int>(std::min<size_t>(len, INT_MAX / 2));
    crc = crc32_iscsi(p, n, crc);
    p += n;
    len -= static_cast<size_t>(n);
  }
  return crc;
}

uint32_t digest_iov(const struct iovec* iov, int iovcnt, size_t offset, size_t len) {
  uint32_t crc = kCrc32cSeed;
  for (int i = 0; i < iovcnt && len > 0; ++i) {
    if (offset >= iov[i].iov_len) {
      offset -= iov[i].iov_len;
      continue;
    }
    size_t n = std::min(iov[i].iov_len - offset, len);
    crc = crc32c_update(crc, static_cast<const uint8_t*>(iov[i].iov_base) + offset, n);
    len -= n;
    offset = 0;
  }
  return crc32c_final(crc);
}

uint8_t expected_hlen(uint8_t pdu_type) {
  switch (static_cast<PduType>(pdu_type)) {
    case PduType::kICReq:
      return sizeof(ICReq);
    case PduType::kICResp:
      return sizeof(ICResp);
    case PduType::kH2CTermReq:
    case PduType::kC2HTermReq:
      return sizeof(TermReq);
    case PduType::kCapsuleCmd:
      return sizeof(CapsuleCmd);
    case PduType::kCapsuleResp:
      return sizeof(CapsuleResp);
    case PduType::kH2CData:
      return sizeof(H2CData);
    case PduType::kC2HData:
      return sizeof(C2HData);
    case PduType::kR2T:
      return sizeof(R2T);
  }
  return 0;
}

bool type_has_hdgst(PduType t) {
  switch (t) {
    case PduType::kCapsuleCmd:
    case PduType::kCapsuleResp:
    case PduType::kH2CData:
    case PduType::kC2HData:
    case PduType::kR2T:
      return true;
    default:
      return false;
  }
}

namespace {

constexpr uint32_t kOffType = offsetof(CommonHeader, pdu_type);
constexpr uint32_t kOffFlags = offsetof(CommonHeader, flags);
constexpr uint32_t kOffHlen = offsetof(CommonHeader, hlen);
constexpr uint32_t kOffPdo = offsetof(CommonHeader, pdo);
constexpr uint32_t kOffPlen = offsetof(CommonHeader, plen);

PduError invalid(uint32_t fei, const char* why) {
  return {Fes::kInvalidHeaderField, fei, why};
}

// Which types each side may receive.
bool legal_for(PduType t, Receiver r) {
  switch (t) {
    case PduType::kICReq:
    case PduType::kH2CTermReq:
    case PduType::kCapsuleCmd:
    case PduType::kH2CData:
      return r == Receiver::kController;
    case PduType::kICResp:
    case PduType::kC2HTermReq:
    case PduType::kCapsuleResp:
    case PduType::kC2HData:
    case PduType::kR2T:
      return r == Receiver::kHost;
  }
  return false;
}

bool carries_data(PduType t) {
  return t == PduType::kCapsuleCmd || t == PduType::kH2CData || t == PduType::kC2HData;
}

void put_le32(uint8_t* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}

// Appends the header digest (when enabled) and the pad up to the data
// alignment, returns the new length.
size_t finish_header(uint8_t* out, size_t hlen, bool hdgst, bool has_data, uint8_t pda) {
  size_t len = hlen;
  if (hdgst) {
    put_le32(out + len, digest(out, hlen));
    len += kDigestLen;
  }
  if (has_data) {
    size_t align = (static_cast<size_t>(pda) + 1) * 4;
    size_t pdo = (len + align - 1) / align * align;
    std::memset(out + len, 0, pdo - len);
    len = pdo;
  }
  return len;
}

void init_ch(CommonHeader* ch, PduType t, uint8_t flags, uint8_t hlen, uint8_t pdo, uint32_t plen) {
  ch->pdu_type = static_cast<uint8_t>(t);
  ch->flags = flags;
  ch->hlen = hlen;
  ch->pdo = pdo;
  ch->plen = plen;
}

}  // namespace

PduError check_common(const CommonHeader& ch, const LinkParams& p, PduLayout* layout) {
  uint8_t hlen = expected_hlen(ch.pdu_type);
  auto type = static_cast<PduType>(ch.pdu_type);
  if (hlen == 0 || !legal_for(type, p.receiver))
    return invalid(kOffType, "PDU type not valid here");

  // Sequence: the connection starts with exactly one ICReq/ICResp; a TermReq
  // may come at any time.
  bool is_ic = type == PduType::kICReq || type == PduType::kICResp;
  bool is_term = type == PduType::kH2CTermReq || type == PduType::kC2HTermReq;
  if (!is_term && is_ic == p.ic_done)
    return {Fes::kPduSequenceError, 0,
            is_ic ? "second connection initialization PDU" : "PDU before ICReq/ICResp"};

  if (ch.hlen != hlen) return invalid(kOffHlen, "HLEN does not match the PDU type");

  *layout = {};
  if (is_term) {
    // Data is the offending header, no digests (3.6.2.4).
    if (ch.plen < sizeof(TermReq) || ch.plen > kMaxTermReqPlen)
      return invalid(kOffPlen, "TermReq PLEN out of range");
    layout->header_len = hlen;
    layout->data_len = ch.plen - hlen;
    return {};
  }
  if (is_ic) {
    if (ch.plen != hlen) return invalid(kOffPlen, "ICReq/ICResp PLEN must be 128");
    layout->header_len = hlen;
    return {};
  }

  bool hd = p.hdgst && type_has_hdgst(type);
  if (static_cast<bool>(ch.flags & pdu_flags::kHdgst) != hd)
    return invalid(kOffFlags, hd ? "header digest missing" : "header digest not negotiated");
  uint32_t min_len = hlen + (hd ? kDigestLen : 0);
  layout->header_len = min_len;
  layout->has_hdgst = hd;
  bool ddgstf = ch.flags & pdu_flags::kDdgst;

  if (!carries_data(type) || ch.plen == min_len) {
    // No data: PLEN is the header, no data digest.
    if (ch.plen != min_len) return invalid(kOffPlen, "PLEN does not match a PDU without data");
    if (ddgstf) return invalid(kOffFlags, "data digest flag without data");
    return {};
  }
  if (ch.plen < min_len) return invalid(kOffPlen, "PLEN shorter than the header");
  if (ch.pdo < min_len) return invalid(kOffPdo, "PDO inside the header");
  if (ddgstf != p.ddgst)
    return invalid(kOffFlags, p.ddgst ? "data digest missing" : "data digest not negotiated");
  uint32_t dd = ddgstf ? kDigestLen : 0;
  if (static_cast<uint64_t>(ch.pdo) + dd >= ch.plen)
    return invalid(kOffPlen, "PLEN leaves no room for data");
  layout->pad_len = ch.pdo - min_len;
  layout->data_len = ch.plen - ch.pdo - dd;
  layout->ddgst_len = dd;

  if (type == PduType::kCapsuleCmd && layout->data_len > p.max_icd)
    return {Fes::kDataLimitExceeded, 0, "in-capsule data larger than the controller accepts"};
  if (type == PduType::kH2CData && layout->data_len > p.max_h2c_data)
    return {Fes::kDataLimitExceeded, 0, "H2CData larger than MAXH2CDATA"};
  return {};
}

PduError check_header(const uint8_t* hdr, const PduLayout& layout, const LinkParams& p) {
  CommonHeader ch;
  std::memcpy(&ch, hdr, sizeof ch);
  if (layout.has_hdgst) {
    uint32_t got;
    std::memcpy(&got, hdr + ch.hlen, 4);
    if (got != digest(hdr, ch.hlen)) return {Fes::kHeaderDigestError, 0, "header digest mismatch"};
  }
  switch (static_cast<PduType>(ch.pdu_type)) {
    case PduType::kICReq: {
      ICReq r;
      std::memcpy(&r, hdr, sizeof r);
      if (r.pfv != kPfv10)
        return {Fes::kUnsupportedParameter, offsetof(ICReq, pfv), "unsupported PDU format version"};
      if (r.hpda > 31) return invalid(offsetof(ICReq, hpda), "HPDA above 31");
      return {};
    }
    case PduType::kICResp: {
      ICResp r;
      std::memcpy(&r, hdr, sizeof r);
      if (r.pfv != kPfv10)
        return {Fes::kUnsupportedParameter, offsetof(ICResp, pfv),
                "unsupported PDU format version"};
      if (r.cpda > 31) return invalid(offsetof(ICResp, cpda), "CPDA above 31");
      if (r.maxh2cdata < kMinMaxH2CData || r.maxh2cdata % 4)
        return invalid(offsetof(ICResp, maxh2cdata), "MAXH2CDATA below 4096 or not dwords");
      // Digests must not be turned on that the host did not ask for.
      if ((r.dgst & dgst_flags::kHdgstEnable && !p.hdgst) ||
          (r.dgst & dgst_flags::kDdgstEnable && !p.ddgst))
        return invalid(offsetof(ICResp, dgst), "digest enabled that the host did not request");
      return {};
    }
    case PduType::kH2CData:
    case PduType::kC2HData: {
      H2CData d;  // same layout for the fields checked here
      std::memcpy(&d, hdr, sizeof d);
      if (d.datal != layout.data_len) return invalid(kOffPlen, "PLEN does not match DATAL");
      if (ch.flags & pdu_flags::kSuccess) {
        if (ch.pdu_type != static_cast<uint8_t>(PduType::kC2HData))
          return invalid(kOffFlags, "SUCCESS flag on H2CData");
        if (!(ch.flags & pdu_flags::kLastPdu))
          return invalid(kOffFlags, "SUCCESS without LAST_PDU");
      }
      return {};
    }
    case PduType::kR2T: {
      R2T r;
      std::memcpy(&r, hdr, sizeof r);
      if (r.r2tl == 0) return invalid(offsetof(R2T, r2tl), "zero-length R2T");
      return {};
    }
    default:
      return {};
  }
}

size_t build_icreq(uint8_t* out, uint8_t hpda, bool hdgst, bool ddgst, uint32_t maxr2t) {
  ICReq r{};
  init_ch(&r.ch, PduType::kICReq, 0, sizeof r, 0, sizeof r);
  r.pfv = kPfv10;
  r.hpda = hpda;
  r.dgst = (hdgst ? dgst_flags::kHdgstEnable : 0) | (ddgst ? dgst_flags::kDdgstEnable : 0);
  r.maxr2t = maxr2t;
  std::memcpy(out, &r, sizeof r);
  return sizeof r;
}

size_t build_icresp(uint8_t* out, uint8_t cpda, bool hdgst, bool ddgst, uint32_t maxh2cdata) {
  ICResp r{};
  init_ch(&r.ch, PduType::kICResp, 0, sizeof r, 0, sizeof r);
  r.pfv = kPfv10;
  r.cpda = cpda;
  r.dgst = (hdgst ? dgst_flags::kHdgstEnable : 0) | (ddgst ? dgst_flags::kDdgstEnable : 0);
  r.maxh2cdata = maxh2cdata;
  std::memcpy(out, &r, sizeof r);
  return sizeof r;
}

size_t build_term_req(uint8_t* out, PduType type, Fes fes, uint32_t fei, const uint8_t* bad_hdr,
                      size_t bad_len) {
  bad_len = std::min<size_t>(bad_len, kMaxTermReqData);
  TermReq t{};
  init_ch(&t.ch, type, 0, sizeof t, 0, static_cast<uint32_t>(sizeof t + bad_len));
  t.fes = static_cast<uint16_t>(fes);
  std::memcpy(t.fei, &fei, 4);
  std::memcpy(out, &t, sizeof t);
  if (bad_len) std::memcpy(out + sizeof t, bad_hdr, bad_len);
  return sizeof t + bad_len;
}

size_t build_capsule_cmd(uint8_t* out, const nvme::Sqe& sqe, uint32_t icd_len, bool hdgst,
                         bool ddgst, uint8_t pda) {
  CapsuleCmd c{};
  c.sqe = sqe;
  size_t hd = sizeof c + (hdgst ? kDigestLen : 0);
  size_t align = (static_cast<size_t>(pda) + 1) * 4;
  size_t pdo = icd_len ? (hd + align - 1) / align * align : 0;
  bool dd = icd_len && ddgst;
  uint8_t flags = (hdgst ? pdu_flags::kHdgst : 0) | (dd ? pdu_flags::kDdgst : 0);
  uint32_t plen = icd_len ? static_cast<uint32_t>(pdo + icd_len + (dd ? kDigestLen : 0))
                          : static_cast<uint32_t>(hd);
  init_ch(&c.ch, PduType::kCapsuleCmd, flags, sizeof c, static_cast<uint8_t>(pdo), plen);
  std::memcpy(out, &c, sizeof c);
  return finish_header(out, sizeof c, hdgst, icd_len > 0, pda);
}

size_t build_capsule_resp(uint8_t* out, const nvme::Cqe& cqe, bool hdgst) {
  CapsuleResp r{};
  init_ch(&r.ch, PduType::kCapsuleResp, hdgst ? pdu_flags::kHdgst : 0, sizeof r, 0,
          sizeof r + (hdgst ? kDigestLen : 0));
  r.cqe = cqe;
  std::memcpy(out, &r, sizeof r);
  return finish_header(out, sizeof r, hdgst, false, 0);
}

size_t build_r2t(uint8_t* out, uint16_t cccid, uint16_t ttag, uint32_t r2to, uint32_t r2tl,
                 bool hdgst) {
  R2T r{};
  init_ch(&r.ch, PduType::kR2T, hdgst ? pdu_flags::kHdgst : 0, sizeof r, 0,
          sizeof r + (hdgst ? kDigestLen : 0));
  r.cccid = cccid;
  r.ttag = ttag;
  r.r2to = r2to;
  r.r2tl = r2tl;
  std::memcpy(out, &r, sizeof r);
  return finish_header(out, sizeof r, hdgst, false, 0);
}

size_t build_data(uint8_t* out, PduType type, uint16_t cccid, uint16_t ttag, uint32_t datao,
                  uint32_t datal, uint8_t extra_flags, bool hdgst, bool ddgst, uint8_t pda) {
  H2CData d{};  // C2HData has the same layout with TTAG reserved
  d.cccid = cccid;
  d.ttag = type == PduType::kH2CData ? ttag : 0;
  d.datao = datao;
  d.datal = datal;
  // The pad depends only on the header length, so compute it first.
  size_t hd = sizeof d + (hdgst ? kDigestLen : 0);
  size_t align = (static_cast<size_t>(pda) + 1) * 4;
  size_t pdo = (hd + align - 1) / align * align;
  uint8_t flags = extra_flags | (hdgst ? pdu_flags::kHdgst : 0) | (ddgst ? pdu_flags::kDdgst : 0);
  init_ch(&d.ch, type, flags, sizeof d, static_cast<uint8_t>(pdo),
          static_cast<uint32_t>(pdo + datal + (ddgst ? kDigestLen : 0)));
  std::memcpy(out, &d, sizeof d);
  return finish_header(out, sizeof d, hdgst, true, pda);
}

const char* fes_name(Fes fes) {
  switch (fes) {
    case Fes::kNone:
      return "none";
    case Fes::kInvalidHeaderField:
      return "Invalid PDU Header Field";
    case Fes::kPduSequenceError:
      return "PDU Sequence Error";
    case Fes::kHeaderDigestError:
      return "Header Digest Error";
    case Fes::kDataOutOfRange:
      return "Data Transfer Out of Range";
    case Fes::kDataLimitExceeded:
      return "Data Transfer Limit Exceeded";
    case Fes::kUnsupportedParameter:
      return "Unsupported Parameter";
  }
  return "unknown";
}

const char* pdu_type_name(uint8_t type) {
  switch (static_cast<PduType>(type)) {
    case PduType::kICReq:
      return "ICReq";
    case PduType::kICResp:
      return "ICResp";
    case PduType::kH2CTermReq:
      return "H2CTermReq";
    case PduType::kC2HTermReq:
      return "C2HTermReq";
    case PduType::kCapsuleCmd:
      return "CapsuleCmd";
    case PduType::kCapsuleResp:
      return "CapsuleResp";
    case PduType::kH2CData:
      return "H2CData";
    case PduType::kC2HData:
      return "C2HData";
    case PduType::kR2T:
      return "R2T";
  }
  return "unknown";
}

}  // namespace nvemu::wire::tcp
