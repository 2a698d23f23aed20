// DH-HMAC-CHAP message codec (Base 2.0, 8.13.5; Figures 456-463).
#include "common/auth/messages.h"

#include <fmt/format.h>

#include <cstring>

#include "nvme/auth.h"

namespace nvemu::auth {

namespace {

namespace w = nvme::auth;

Parsed fail(uint8_t reason, std::string error) {
  Parsed p;
  p.reason = reason;
  p.error = std::move(error);
  return p;
}
Parsed ok(Message m) {
  Parsed p;
  p.ok = true;
  p.msg = std::move(m);
  return p;
}

template <typename T>
T header(const uint8_t* data) {
  T h;
  std::memcpy(&h, data, sizeof h);
  return h;
}

Bytes slice(const uint8_t* p, size_t n) {
  return Bytes(p, p + n);
}

bool valid_hl(uint8_t hl) {
  return hl == 32 || hl == 48 || hl == 64;
}

Parsed parse_negotiate(const uint8_t* data, size_t len) {
  auto h = header<w::NegotiateHdr>(data);
  if (h.napd == 0 || len < sizeof h + size_t{h.napd} * sizeof(w::ProtocolDescriptor))
    return fail(
        w::why::kIncorrectPayload,
        fmt::format("negotiate: {} protocol descriptors do not fit in {} bytes", h.napd, len));
  Negotiate m;
  m.tid = h.t_id;
  m.sc_c = h.sc_c;
  bool found = false;
  for (unsigned i = 0; i < h.napd; ++i) {
    w::ProtocolDescriptor d;
    std::memcpy(&d, data + sizeof h + i * sizeof d, sizeof d);
    if (d.authid != w::kAuthIdDhchap) continue;
    if (d.halen > w::kDhIdOffset || d.dhlen > w::kDhIdOffset)
      return fail(w::why::kIncorrectPayload,
                  fmt::format("negotiate: halen {} / dhlen {} above 30", d.halen, d.dhlen));
    found = true;
    for (unsigned j = 0; j < d.halen; ++j)
      if (auto x = hash_from_id(d.idlist[j])) m.hashes.push_back(*x);
    for (unsigned j = 0; j < d.dhlen; ++j)
      if (auto x = dhgroup_from_id(d.idlist[w::kDhIdOffset + j])) m.groups.push_back(*x);
  }
  if (!found)
    return fail(w::why::kIncorrectProtocol, "negotiate: no DH-HMAC-CHAP protocol descriptor");
  return ok(m);
}

Parsed parse_challenge(const uint8_t* data, size_t len) {
  auto h = header<w::ChallengeHdr>(data);
  auto hash = hash_from_id(h.hashid);
  auto group = dhgroup_from_id(h.dhgid);
  if (!hash) return fail(w::why::kHashUnusable, fmt::format("challenge: hash id {}", h.hashid));
  if (!group)
    return fail(w::why::kDhgroupUnusable, fmt::format("challenge: DH group id {}", h.dhgid));
  if (h.hl != hash_len(*hash) || h.dhvlen != dhgroup_bytes(*group) ||
      len < sizeof h + h.hl + size_t{h.dhvlen})
    return fail(w::why::kIncorrectPayload,
                fmt::format("challenge: hl {} / dhvlen {} do not match {} / {} or exceed {} bytes",
                            h.hl, h.dhvlen, hash_name(*hash), dhgroup_name(*group), len));
  Challenge m;
  m.tid = h.t_id;
  m.hash = *hash;
  m.group = *group;
  m.seqnum = h.seqnum;
  m.c = slice(data + sizeof h, h.hl);
  m.dhv = slice(data + sizeof h + h.hl, h.dhvlen);
  return ok(m);
}

Parsed parse_reply(const uint8_t* data, size_t len) {
  auto h = header<w::ReplyHdr>(data);
  if (!valid_hl(h.hl) || len < sizeof h + 2 * size_t{h.hl} + h.dhvlen)
    return fail(w::why::kIncorrectPayload,
                fmt::format("reply: hl {} / dhvlen {} in {} bytes", h.hl, h.dhvlen, len));
  Reply m;
  m.tid = h.t_id;
  m.hl = h.hl;
  m.cvalid = h.cvalid != 0;
  m.seqnum = h.seqnum;
  m.r = slice(data + sizeof h, h.hl);
  m.c = slice(data + sizeof h + h.hl, h.hl);
  m.dhv = slice(data + sizeof h + 2 * h.hl, h.dhvlen);
  return ok(m);
}

Parsed parse_success1(const uint8_t* data, size_t len) {
  auto h = header<w::Success1Hdr>(data);
  if (!valid_hl(h.hl) || (h.rvalid && len < sizeof h + h.hl))
    return fail(w::why::kIncorrectPayload,
                fmt::format("success1: hl {} rvalid {} in {} bytes", h.hl, h.rvalid, len));
  Success1 m;
  m.tid = h.t_id;
  m.hl = h.hl;
  m.rvalid = h.rvalid != 0;
  if (m.rvalid) m.r = slice(data + sizeof h, h.hl);
  return ok(m);
}

}  // namespace

Parsed parse_message(const uint8_t* data, size_t len) {
  if (len < 2) return fail(w::why::kIncorrectPayload, "message shorter than its type and id");
  uint8_t type = data[0], id = data[1];
  auto need = [&](size_t n, const char* what) -> std::string {
    return len < n ? fmt::format("{}: {} bytes, at least {} needed", what, len, n) : "";
  };
  std::string short_msg;
  if (type == w::kTypeCommon) {
    if (id == w::kIdNegotiate) {
      if (!(short_msg = need(sizeof(w::NegotiateHdr), "negotiate")).empty()) goto too_short;
      return parse_negotiate(data, len);
    }
    if (id == w::kIdFailure1 || id == w::kIdFailure2) {
      if (!(short_msg = need(sizeof(w::Failure), "failure")).empty()) goto too_short;
      auto h = header<w::Failure>(data);
      return ok(Failure{h.t_id, id == w::kIdFailure1, h.rescode, h.rescode_exp});
    }
  } else if (type == w::kTypeDhchap) {
    switch (id) {
      case w::kIdChallenge:
        if (!(short_msg = need(sizeof(w::ChallengeHdr), "challenge")).empty()) goto too_short;
        return parse_challenge(data, len);
      case w::kIdReply:
        if (!(short_msg = need(sizeof(w::ReplyHdr), "reply")).empty()) goto too_short;
        return parse_reply(data, len);
      case w::kIdSuccess1:
        if (!(short_msg = need(sizeof(w::Success1Hdr), "success1")).empty()) goto too_short;
        return parse_success1(data, len);
      case w::kIdSuccess2:
        if (!(short_msg = need(sizeof(w::Success2), "success2")).empty()) goto too_short;
        return ok(Success2{header<w::Success2>(data).t_id});
      default:
        break;
    }
  }
  return fail(w::why::kIncorrectProtocol,
              fmt::format("unexpected message type {:#x} id {:#x}", type, id));
too_short:
  return fail(w::why::kIncorrectPayload, short_msg);
}

Bytes build(const Negotiate& m) {
  w::NegotiateHdr h{};
  h.auth_type = w::kTypeCommon;
  h.auth_id = w::kIdNegotiate;
  h.t_id = m.tid;
  h.sc_c = m.sc_c;
  h.napd = 1;
  w::ProtocolDescriptor d{};
  d.authid = w::kAuthIdDhchap;
  for (Hash x : m.hashes)
    if (d.halen < w::kDhIdOffset) d.idlist[d.halen++] = static_cast<uint8_t>(x);
  for (DhGroup g : m.groups)
    if (d.dhlen < w::kDhIdOffset) d.idlist[w::kDhIdOffset + d.dhlen++] = static_cast<uint8_t>(g);
  Bytes out(sizeof h + sizeof d);
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, &d, sizeof d);
  return out;
}

Bytes build(const Challenge& m) {
  w::ChallengeHdr h{};
  h.auth_type = w::kTypeDhchap;
  h.auth_id = w::kIdChallenge;
  h.t_id = m.tid;
  h.hl = static_cast<uint8_t>(m.c.size());
  h.hashid = static_cast<uint8_t>(m.hash);
  h.dhgid = static_cast<uint8_t>(m.group);
  h.dhvlen = static_cast<uint16_t>(m.dhv.size());
  h.seqnum = m.seqnum;
  Bytes out(sizeof h);
  std::memcpy(out.data(), &h, sizeof h);
  out.insert(out.end(), m.c.begin(), m.c.end());
  out.insert(out.end(), m.dhv.begin(), m.dhv.end());
  return out;
}

Bytes build(const Reply& m) {
  w::ReplyHdr h{};
  h.auth_type = w::kTypeDhchap;
  h.auth_id = w::kIdReply;
  h.t_id = m.tid;
  h.hl = m.hl;
  h.cvalid = m.cvalid;
  h.dhvlen = static_cast<uint16_t>(m.dhv.size());
  h.seqnum = m.seqnum;
  Bytes out(sizeof h + 2 * size_t{m.hl});
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, m.r.data(), std::min<size_t>(m.r.size(), m.hl));
  if (m.cvalid)
    std::memcpy(out.data() + sizeof h + m.hl, m.c.data(), std::min<size_t>(m.c.size(), m.hl));
  out.insert(out.end(), m.dhv.begin(), m.dhv.end());
  return out;
}

Bytes build(const Success1& m) {
  w::Success1Hdr h{};
  h.auth_type = w::kTypeDhchap;
  h.auth_id = w::kIdSuccess1;
  h.t_id = m.tid;
  h.hl = m.hl;  // Linux expects hl set whether or not rvalid is
  h.rvalid = m.rvalid;
  Bytes out(sizeof h);
  std::memcpy(out.data(), &h, sizeof h);
  if (m.rvalid) out.insert(out.end(), m.r.begin(), m.r.end());
  return out;
}

Bytes build(const Success2& m) {
  w::Success2 h{};
  h.auth_type = w::kTypeDhchap;
  h.auth_id = w::kIdSuccess2;
  h.t_id = m.tid;
  Bytes out(sizeof h);
  std::memcpy(out.data(), &h, sizeof h);
  return out;
}

Bytes build(const Failure& m) {
  w::Failure h{};
  h.auth_type = w::kTypeCommon;
  h.auth_id = m.failure1 ? w::kIdFailure1 : w::kIdFailure2;
  h.t_id = m.tid;
  h.rescode = w::kRescodeFailed;
  h.rescode_exp = m.explanation;
  Bytes out(sizeof h);
  std::memcpy(out.data(), &h, sizeof h);
  return out;
}

const char* failure_name(uint8_t explanation) {
  switch (explanation) {
    case w::why::kFailed:
      return "authentication failed";
    case w::why::kNotUsable:
      return "authentication protocol not usable";
    case w::why::kConcatMismatch:
      return "secure channel concatenation mismatch";
    case w::why::kHashUnusable:
      return "hash function not usable";
    case w::why::kDhgroupUnusable:
      return "DH group not usable";
    case w::why::kIncorrectPayload:
      return "incorrect payload";
    case w::why::kIncorrectProtocol:
      return "incorrect protocol message";
    default:
      return "unknown reason";
  }
}

}  // namespace nvemu::auth
