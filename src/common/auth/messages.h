// DH-HMAC-CHAP messages: parse (validate every length and identifier
// before anything reads past the header) and build. Both ends use them:
// the target parses Negotiate/Reply/Success2/Failure2 and builds the rest,
// the initiator the other way round.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/auth/dhchap.h"

namespace nvemu::auth {

struct Negotiate {
  uint16_t tid = 0;
  uint8_t sc_c = 0;
  std::vector<Hash> hashes;     // the DH-HMAC-CHAP descriptor's, known ones only
  std::vector<DhGroup> groups;  // likewise
};
struct Challenge {
  uint16_t tid = 0;
  Hash hash = Hash::kSha256;
  DhGroup group = DhGroup::kNull;
  uint32_t seqnum = 0;
  Bytes c;
  Bytes dhv;
};
struct Reply {
  uint16_t tid = 0;
  uint8_t hl = 0;
  bool cvalid = false;
  uint32_t seqnum = 0;
  Bytes r;
  Bytes c;  // C2, meaningful when cvalid
  Bytes dhv;
};
struct Success1 {
  uint16_t tid = 0;
  uint8_t hl = 0;
  bool rvalid = false;
  Bytes r;  // R2 when rvalid
};
struct Success2 {
  uint16_t tid = 0;
};
struct Failure {
  uint16_t tid = 0;
  bool failure1 = false;  // sent by the controller (F1) or the host (F2)
  uint8_t rescode = 0;
  uint8_t explanation = 0;
};
using Message = std::variant<Negotiate, Challenge, Reply, Success1, Success2, Failure>;

struct Parsed {
  bool ok = false;
  Message msg;
  // When !ok: the failure explanation to answer with (nvme::auth::why) and
  // what was wrong, for the log.
  uint8_t reason = 0;
  std::string error;
};
Parsed parse_message(const uint8_t* data, size_t len);

Bytes build(const Negotiate& m);
Bytes build(const Challenge& m);
Bytes build(const Reply& m);
Bytes build(const Success1& m);
Bytes build(const Success2& m);
Bytes build(const Failure& m);

// "failed", "hash unusable", ...: the spec's name of a failure explanation.
const char* failure_name(uint8_t explanation);

}  // namespace nvemu::auth
