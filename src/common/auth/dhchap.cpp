// DH-HMAC-CHAP secrets, key transform, responses (Base 2.0, 8.13.5) on
// OpenSSL's HMAC and digests; CRC-32 of the secret from ISA-L (zlib's CRC).
#include "common/auth/dhchap.h"

#include <isa-l/crc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

namespace nvemu::auth {

namespace {

struct HashInfo {
  Hash id;
  const char* name;
  size_t len;
};
constexpr HashInfo kHashes[] = {
    {Hash::kSha256, "sha256", 32}, {Hash::kSha384, "sha384", 48}, {Hash::kSha512, "sha512", 64}};

struct GroupInfo {
  DhGroup id;
  const char* name;
  size_t bytes;
};
constexpr GroupInfo kGroups[] = {{DhGroup::kNull, "null", 0},
                                 {DhGroup::kFfdhe2048, "ffdhe2048", 256},
                                 {DhGroup::kFfdhe3072, "ffdhe3072", 384},
                                 {DhGroup::kFfdhe4096, "ffdhe4096", 512},
                                 {DhGroup::kFfdhe6144, "ffdhe6144", 768},
                                 {DhGroup::kFfdhe8192, "ffdhe8192", 1024}};

const EVP_MD* md_of(Hash h) {
  switch (h) {
    case Hash::kSha256:
      return EVP_sha256();
    case Hash::kSha384:
      return EVP_sha384();
    case Hash::kSha512:
      return EVP_sha512();
  }
  return EVP_sha256();
}

uint32_t crc32(const uint8_t* p, size_t n) {
  return crc32_gzip_refl(0, p, n);  // zlib's CRC-32, what Linux's ~crc32(~0, ..) computes
}

void append(Bytes& b, const void* p, size_t n) {
  auto* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
}
void append(Bytes& b, std::string_view s) {
  append(b, s.data(), s.size());
}

Bytes response(Hash h, const Bytes& key, const Bytes& challenge, uint32_t seqnum, uint16_t tid,
               uint8_t sc_c, std::string_view role, std::string_view nqn1, std::string_view nqn2) {
  Bytes m;
  append(m, challenge.data(), challenge.size());
  uint8_t le[4] = {uint8_t(seqnum), uint8_t(seqnum >> 8), uint8_t(seqnum >> 16),
                   uint8_t(seqnum >> 24)};
  append(m, le, 4);
  uint8_t tle[2] = {uint8_t(tid), uint8_t(tid >> 8)};
  append(m, tle, 2);
  m.push_back(sc_c);
  append(m, role);
  append(m, nqn1);
  m.push_back(0);
  append(m, nqn2);
  return hmac(h, key, m.data(), m.size());
}

}  // namespace

namespace {

// The names of TABLE's entries whose identifier's bit is set, in table order.
template <typename Table>
std::vector<std::string> names_in(const Table& table, uint32_t bits) {
  std::vector<std::string> out;
  for (const auto& i : table)
    if (bits & (1u << static_cast<unsigned>(i.id))) out.emplace_back(i.name);
  return out;
}

}  // namespace

std::vector<std::string> hash_names(uint32_t bits) {
  return names_in(kHashes, bits);
}

std::vector<std::string> dhgroup_names(uint32_t bits) {
  return names_in(kGroups, bits);
}

std::optional<Hash> hash_from_name(std::string_view name) {
  for (const auto& i : kHashes)
    if (name == i.name) return i.id;
  return std::nullopt;
}
std::optional<Hash> hash_from_id(uint8_t id) {
  for (const auto& i : kHashes)
    if (id == static_cast<uint8_t>(i.id)) return i.id;
  return std::nullopt;
}
const char* hash_name(Hash h) {
  for (const auto& i : kHashes)
    if (h == i.id) return i.name;
  return "unknown";
}
size_t hash_len(Hash h) {
  for (const auto& i : kHashes)
    if (h == i.id) return i.len;
  return 0;
}
std::optional<DhGroup> dhgroup_from_name(std::string_view name) {
  for (const auto& i : kGroups)
    if (name == i.name) return i.id;
  return std::nullopt;
}
std::optional<DhGroup> dhgroup_from_id(uint8_t id) {
  for (const auto& i : kGroups)
    if (id == static_cast<uint8_t>(i.id)) return i.id;
  return std::nullopt;
}
const char* dhgroup_name(DhGroup g) {
  for (const auto& i : kGroups)
    if (g == i.id) return i.name;
  return "unknown";
}
size_t dhgroup_bytes(DhGroup g) {
  for (const auto& i : kGroups)
    if (g == i.id) return i.bytes;
  return 0;
}

std::string parse_secret(std::string_view text, Secret* out) {
  while (!text.empty() &&
         (text.back() == '\n' || text.back() == ' ' || text.back() == '\r' || text.back() == '\t'))
    text.remove_suffix(1);
  constexpr std::string_view kPrefix = "DHHC-1:";
  if (text.substr(0, kPrefix.size()) != kPrefix)
    return "a DH-HMAC-CHAP secret starts with 'DHHC-1:' (as nvme gen-dhchap-key prints)";
  text.remove_prefix(kPrefix.size());
  if (text.size() < 4 || text[2] != ':' || text[0] != '0' || text[1] < '0' || text[1] > '3')
    return "the transform field after 'DHHC-1:' must be 00, 01, 02 or 03";
  uint8_t transform = static_cast<uint8_t>(text[1] - '0');
  text.remove_prefix(3);
  if (text.empty() || text.back() != ':') return "the secret must end with ':'";
  text.remove_suffix(1);
  if (text.size() % 4 != 0 || text.size() > 128)
    return "the base64 part has a length that no 32, 48 or 64-byte key encodes to";
  uint8_t buf[128];
  int n = EVP_DecodeBlock(buf, reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return "the key part is not valid base64";
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  size_t len = static_cast<size_t>(n) - pad;
  if (len != 36 && len != 52 && len != 68) {
    OPENSSL_cleanse(buf, sizeof buf);
    return "the key must be 32, 48 or 64 bytes followed by its CRC-32";
  }
  size_t klen = len - 4;
  uint32_t crc = uint32_t{buf[klen]} | uint32_t{buf[klen + 1]} << 8 |
                 uint32_t{buf[klen + 2]} << 16 | uint32_t{buf[klen + 3]} << 24;
  if (crc != crc32(buf, klen)) {
    OPENSSL_cleanse(buf, sizeof buf);
    return "the key's CRC-32 does not match (a mistyped or truncated secret)";
  }
  out->transform = transform;
  out->key.assign(buf, buf + klen);
  OPENSSL_cleanse(buf, sizeof buf);
  return "";
}

std::string format_secret(const Secret& s) {
  Bytes raw = s.key;
  uint32_t crc = crc32(raw.data(), raw.size());
  for (int i = 0; i < 4; ++i) raw.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  std::string b64(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), raw.data(),
                          static_cast<int>(raw.size()));
  b64.resize(static_cast<size_t>(n));
  OPENSSL_cleanse(raw.data(), raw.size());
  return "DHHC-1:0" + std::to_string(s.transform) + ":" + b64 + ":";
}

Bytes transform_key(const Secret& s, std::string_view nqn) {
  auto h = hash_from_id(s.transform);
  if (!h) return s.key;
  Bytes m(nqn.begin(), nqn.end());
  append(m, std::string_view("NVMe-over-Fabrics"));
  return hmac(*h, s.key, m.data(), m.size());
}

Bytes hmac(Hash h, const Bytes& key, const uint8_t* data, size_t len) {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned outlen = 0;
  if (!HMAC(md_of(h), key.data(), static_cast<int>(key.size()), data, len, out.data(), &outlen))
    return {};
  out.resize(outlen);
  return out;
}

Bytes digest(Hash h, const uint8_t* data, size_t len) {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned outlen = 0;
  if (!EVP_Digest(data, len, out.data(), &outlen, md_of(h), nullptr)) return {};
  out.resize(outlen);
  return out;
}

Bytes augmented_challenge(Hash h, const Bytes& session_key, const Bytes& challenge) {
  Bytes hashed = digest(h, session_key.data(), session_key.size());
  Bytes out = hmac(h, hashed, challenge.data(), challenge.size());
  OPENSSL_cleanse(hashed.data(), hashed.size());
  return out;
}

Bytes host_response(Hash h, const Bytes& transformed_key, const Bytes& challenge, uint32_t seqnum,
                    uint16_t tid, uint8_t sc_c, std::string_view hostnqn, std::string_view subnqn) {
  return response(h, transformed_key, challenge, seqnum, tid, sc_c, "HostHost", hostnqn, subnqn);
}

Bytes ctrl_response(Hash h, const Bytes& transformed_key, const Bytes& challenge, uint32_t seqnum,
                    uint16_t tid, uint8_t sc_c, std::string_view subnqn, std::string_view hostnqn) {
  return response(h, transformed_key, challenge, seqnum, tid, sc_c, "Controller", subnqn, hostnqn);
}

bool equal(const Bytes& a, const uint8_t* b, size_t blen) {
  return a.size() == blen && !a.empty() && CRYPTO_memcmp(a.data(), b, blen) == 0;
}

bool random_bytes(void* out, size_t len) {
  return RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(len)) == 1;
}

}  // namespace nvemu::auth
