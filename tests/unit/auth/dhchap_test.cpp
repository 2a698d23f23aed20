// DH-HMAC-CHAP primitives against fixed vectors: the secret format's CRC and
// base64 (a key nvme gen-dhchap-key printed), RFC 4231's HMAC vectors, the
// response layout recomputed by hand from its parts, and a DH exchange whose
// two sides must agree.
#include "common/auth/dhchap.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace nvemu::auth;

namespace {
Bytes hex(const char* s) {
  Bytes b;
  for (size_t i = 0; s[i] && s[i + 1]; i += 2)
    b.push_back(std::stoi(std::string(s + i, 2), nullptr, 16));
  return b;
}
Bytes str(std::string_view s) {
  return Bytes(s.begin(), s.end());
}
}  // namespace

TEST(Dhchap, SecretRoundTripsAndChecksCrc) {
  Secret s;
  s.transform = 1;
  for (int i = 0; i < 32; ++i) s.key.push_back(static_cast<uint8_t>(i * 7));
  std::string text = format_secret(s);
  EXPECT_EQ(text.substr(0, 10), "DHHC-1:01:");
  EXPECT_EQ(text.back(), ':');
  Secret back;
  ASSERT_EQ(parse_secret(text + "\n", &back), "");
  EXPECT_EQ(back.transform, 1);
  EXPECT_EQ(back.key, s.key);
  // One flipped base64 character breaks the CRC.
  std::string bad = text;
  bad[12] = bad[12] == 'A' ? 'B' : 'A';
  EXPECT_NE(parse_secret(bad, &back).find("CRC-32"), std::string::npos);
  EXPECT_NE(parse_secret("DHHC-1:04:" + text.substr(10), &back), "");
  EXPECT_NE(parse_secret("DHHC-2:00:AAAA:", &back), "");
  EXPECT_NE(parse_secret(text.substr(0, text.size() - 1), &back), "");
}

// CRC-32 as zlib computes it: the secret of 32 zero bytes has the CRC of
// 32 zero bytes, 190a55ad, appended little-endian.
TEST(Dhchap, SecretCrcIsZlibs) {
  Secret s;
  s.key.assign(32, 0);
  std::string text = format_secret(s);
  EXPECT_EQ(text, "DHHC-1:00:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACtVQoZ:");
}

// RFC 4231 test case 2 for each hash.
TEST(Dhchap, HmacMatchesRfc4231) {
  Bytes key = str("Jefe");
  Bytes msg = str("what do ya want for nothing?");
  EXPECT_EQ(hmac(Hash::kSha256, key, msg.data(), msg.size()),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
  EXPECT_EQ(
      hmac(Hash::kSha384, key, msg.data(), msg.size()),
      hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239"
          "ecfab21649"));
  EXPECT_EQ(
      hmac(Hash::kSha512, key, msg.data(), msg.size()),
      hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d03"
          "4f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"));
}

TEST(Dhchap, TransformIsHmacOfNqnAndLabel) {
  Secret s;
  s.transform = 2;
  s.key.assign(48, 0x11);
  std::string nqn = "nqn.2014-08.org.nvmexpress:uuid:0001";
  Bytes m = str(nqn + "NVMe-over-Fabrics");
  EXPECT_EQ(transform_key(s, nqn), hmac(Hash::kSha384, s.key, m.data(), m.size()));
  s.transform = 0;
  EXPECT_EQ(transform_key(s, nqn), s.key);
}

TEST(Dhchap, ResponsesHashTheSpecsLayout) {
  Bytes key(32, 0x5a), c(32, 0xc1);
  Bytes m = c;
  for (uint8_t b : {0x04, 0x03, 0x02, 0x01, 0x34, 0x12, 0x00}) m.push_back(b);
  for (char ch : std::string("HostHost") + "hnqn") m.push_back(static_cast<uint8_t>(ch));
  m.push_back(0);
  for (char ch : std::string("snqn")) m.push_back(static_cast<uint8_t>(ch));
  EXPECT_EQ(host_response(Hash::kSha256, key, c, 0x01020304, 0x1234, 0, "hnqn", "snqn"),
            hmac(Hash::kSha256, key, m.data(), m.size()));
  Bytes r2 = ctrl_response(Hash::kSha256, key, c, 0x01020304, 0x1234, 0, "snqn", "hnqn");
  EXPECT_NE(r2, host_response(Hash::kSha256, key, c, 0x01020304, 0x1234, 0, "hnqn", "snqn"));
  EXPECT_EQ(r2.size(), 32u);
}

TEST(Dhchap, Ffdhe2048BothSidesAgree) {
  std::string err;
  auto a = DhKey::generate(DhGroup::kFfdhe2048, &err);
  auto b = DhKey::generate(DhGroup::kFfdhe2048, &err);
  ASSERT_TRUE(a && b) << err;
  ASSERT_EQ(a->public_value().size(), 256u);
  Bytes sa = a->derive(b->public_value().data(), b->public_value().size(), &err);
  Bytes sb = b->derive(a->public_value().data(), a->public_value().size(), &err);
  ASSERT_EQ(sa.size(), 256u) << err;
  EXPECT_EQ(sa, sb);
  // A value of 1 (a degenerate key) and a short value are refused.
  Bytes one(256, 0);
  one.back() = 1;
  EXPECT_TRUE(a->derive(one.data(), one.size(), &err).empty());
  EXPECT_TRUE(a->derive(one.data(), 100, &err).empty());
  EXPECT_NE(err.find("256"), std::string::npos);
}

TEST(Dhchap, AugmentedChallengeIsHmacUnderHashedSessionKey) {
  Bytes sess(256, 0x42), c(48, 0x07);
  Bytes hk = digest(Hash::kSha384, sess.data(), sess.size());
  EXPECT_EQ(augmented_challenge(Hash::kSha384, sess, c),
            hmac(Hash::kSha384, hk, c.data(), c.size()));
}

// Vectors from nvme-cli 2.3 (Debian 12): `nvme gen-dhchap-key
// --secret=000102..1f --hmac=N [--nqn=nqn.test]`. With an HMAC it prints
// the key already transformed with the NQN (libnvme's nvme_gen_dhchap_key),
// which is our transform_key() of the raw secret.
TEST(Dhchap, MatchesNvmeCliGenDhchapKey) {
  Secret raw;
  raw.key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  EXPECT_EQ(format_secret(raw), "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:");
  Secret cli;
  ASSERT_EQ(parse_secret("DHHC-1:01:vb3shNpwt6PnRJ3wYKwspZpHfeAH17cXc1fDwlzRPrxJu191:", &cli), "");
  raw.transform = 1;
  EXPECT_EQ(cli.key, transform_key(raw, "nqn.test"));
}
