// The DH-HMAC-CHAP message codec: every message survives build -> parse,
// and the malformed ones a peer can send are refused with the spec's
// failure explanation before anything reads past the bytes given.
#include "common/auth/messages.h"

#include <gtest/gtest.h>

#include "nvme/auth.h"

using namespace nvemu::auth;
namespace why = nvemu::nvme::auth::why;

TEST(AuthMessages, RoundTrips) {
  Negotiate n{7, 0, {Hash::kSha256, Hash::kSha512}, {DhGroup::kNull, DhGroup::kFfdhe2048}};
  Bytes b = build(n);
  EXPECT_EQ(b.size(), 8u + 64u);
  Parsed p = parse_message(b.data(), b.size());
  ASSERT_TRUE(p.ok) << p.error;
  auto& n2 = std::get<Negotiate>(p.msg);
  EXPECT_EQ(n2.tid, 7);
  EXPECT_EQ(n2.hashes, n.hashes);
  EXPECT_EQ(n2.groups, n.groups);

  Challenge c{9, Hash::kSha384, DhGroup::kFfdhe2048, 0x01020304, Bytes(48, 1), Bytes(256, 2)};
  b = build(c);
  p = parse_message(b.data(), b.size());
  ASSERT_TRUE(p.ok) << p.error;
  auto& c2 = std::get<Challenge>(p.msg);
  EXPECT_EQ(c2.seqnum, 0x01020304u);
  EXPECT_EQ(c2.c, c.c);
  EXPECT_EQ(c2.dhv, c.dhv);

  Reply r{9, 32, true, 5, Bytes(32, 3), Bytes(32, 4), {}};
  b = build(r);
  EXPECT_EQ(b.size(), 16u + 64u);
  p = parse_message(b.data(), b.size());
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(std::get<Reply>(p.msg).c, r.c);
  EXPECT_TRUE(std::get<Reply>(p.msg).cvalid);

  b = build(Success1{9, 64, true, Bytes(64, 5)});
  p = parse_message(b.data(), b.size());
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(std::get<Success1>(p.msg).r, Bytes(64, 5));

  b = build(Failure{9, true, 1, why::kFailed});
  EXPECT_EQ(b.size(), 8u);
  p = parse_message(b.data(), b.size());
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(std::get<Failure>(p.msg).failure1);
  EXPECT_EQ(std::get<Failure>(p.msg).explanation, why::kFailed);
}

TEST(AuthMessages, RefusesMalformed) {
  // Truncated: every prefix of a challenge fails, none reads past it.
  Bytes c = build(Challenge{1, Hash::kSha256, DhGroup::kFfdhe2048, 1, Bytes(32), Bytes(256)});
  for (size_t n = 0; n < c.size(); ++n) {
    Bytes prefix(c.begin(), c.begin() + static_cast<long>(n));
    EXPECT_FALSE(parse_message(prefix.data(), prefix.size()).ok) << n;
  }
  // hl that does not match the hash.
  c[6] = 48;
  Parsed p = parse_message(c.data(), c.size());
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.reason, why::kIncorrectPayload);
  // Unknown hash id.
  c[6] = 32;
  c[8] = 9;
  p = parse_message(c.data(), c.size());
  EXPECT_EQ(p.reason, why::kHashUnusable);
  // Negotiate with more descriptors than bytes, and with no DH-HMAC-CHAP one.
  Bytes n = build(Negotiate{1, 0, {Hash::kSha256}, {DhGroup::kNull}});
  n[7] = 2;
  EXPECT_EQ(parse_message(n.data(), n.size()).reason, why::kIncorrectPayload);
  n[7] = 1;
  n[8] = 0x02;  // AUTHID other than DH-HMAC-CHAP
  EXPECT_EQ(parse_message(n.data(), n.size()).reason, why::kIncorrectProtocol);
  // halen above the 30 slots.
  n[8] = 0x01;
  n[10] = 31;
  EXPECT_EQ(parse_message(n.data(), n.size()).reason, why::kIncorrectPayload);
  // A reply whose hl is not a hash length.
  Bytes r = build(Reply{1, 32, false, 0, Bytes(32), Bytes(32), {}});
  r[6] = 33;
  EXPECT_FALSE(parse_message(r.data(), r.size()).ok);
  // Unknown type/id.
  uint8_t junk[16] = {0x05, 0x00};
  EXPECT_EQ(parse_message(junk, sizeof junk).reason, why::kIncorrectProtocol);
}
