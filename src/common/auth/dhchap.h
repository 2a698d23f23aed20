// DH-HMAC-CHAP primitives (NVMe Base 2.0, 8.13.5), shared by the target
// (nvmf/auth) and the initiator (host/tcp): the secret format, the key
// transform, the two responses, the augmented challenge and the FFDHE
// exchange. Every primitive is OpenSSL's; this file only arranges the bytes
// the spec (and Linux, the implementation to interoperate with) hashes.
// Secrets live in std::vector and are never formatted into a log line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvemu::auth {

using Bytes = std::vector<uint8_t>;

// Hash function identifiers (Base 2.0, Figure 458).
enum class Hash : uint8_t { kSha256 = 1, kSha384 = 2, kSha512 = 3 };
// Diffie-Hellman group identifiers (Figure 459); RFC 7919 groups.
enum class DhGroup : uint8_t {
  kNull = 0,
  kFfdhe2048 = 1,
  kFfdhe3072 = 2,
  kFfdhe4096 = 3,
  kFfdhe6144 = 4,
  kFfdhe8192 = 5,
};

// SPDK's names: "sha256", "sha384", "sha512"; "null", "ffdhe2048".. "ffdhe8192".
std::optional<Hash> hash_from_name(std::string_view name);
std::optional<Hash> hash_from_id(uint8_t id);
const char* hash_name(Hash h);
size_t hash_len(Hash h);
std::optional<DhGroup> dhgroup_from_name(std::string_view name);
std::optional<DhGroup> dhgroup_from_id(uint8_t id);
const char* dhgroup_name(DhGroup g);
// The names of the identifiers set in a bitmask (bit n = identifier n), in
// identifier order: what SPDK 24.x's save_config writes for dhchap_digests /
// dhchap_dhgroups.
std::vector<std::string> hash_names(uint32_t bits);
std::vector<std::string> dhgroup_names(uint32_t bits);
size_t dhgroup_bytes(DhGroup g);  // public value length; 0 for null

// A DH-HMAC-CHAP secret, "DHHC-1:<hh>:<base64(key || crc32(key))>:" (Base
// 2.0, 8.13.5.8): hh selects the transform (0 none, 1/2/3 SHA-256/384/512),
// the key is 32, 48 or 64 bytes.
struct Secret {
  uint8_t transform = 0;
  Bytes key;
};
// Parses text (trailing whitespace ignored). Returns "" or what is wrong,
// never echoing the secret.
std::string parse_secret(std::string_view text, Secret* out);
std::string format_secret(const Secret& s);

// The transformed key (8.13.5.8): the key itself for transform 0, else
// HMAC-H(key, nqn || "NVMe-over-Fabrics") with H the transform's hash.
Bytes transform_key(const Secret& s, std::string_view nqn);

Bytes hmac(Hash h, const Bytes& key, const uint8_t* data, size_t len);
Bytes digest(Hash h, const uint8_t* data, size_t len);

// Challenge augmented with the DH session key: HMAC-H(H(session), c).
Bytes augmented_challenge(Hash h, const Bytes& session_key, const Bytes& challenge);

// The host's response R1 = HMAC-H(Kh', C1 || S1 || T_ID || SC_C || "HostHost"
// || NQNh || 00h || NQNc) and the controller's R2 = HMAC-H(Kc', C2 || S2 ||
// T_ID || SC_C || "Controller" || NQNc || 00h || NQNh). `challenge` is
// already augmented when a DH group is in use.
Bytes host_response(Hash h, const Bytes& transformed_key, const Bytes& challenge, uint32_t seqnum,
                    uint16_t tid, uint8_t sc_c, std::string_view hostnqn, std::string_view subnqn);
Bytes ctrl_response(Hash h, const Bytes& transformed_key, const Bytes& challenge, uint32_t seqnum,
                    uint16_t tid, uint8_t sc_c, std::string_view subnqn, std::string_view hostnqn);

// Constant-time comparison (lengths must match too).
bool equal(const Bytes& a, const uint8_t* b, size_t blen);
bool random_bytes(void* out, size_t len);

// One side's ephemeral FFDHE key.
class DhKey {
 public:
  // nullptr with *error set when OpenSSL cannot make one.
  static std::unique_ptr<DhKey> generate(DhGroup g, std::string* error);
  ~DhKey();
  DhKey(const DhKey&) = delete;
  DhKey& operator=(const DhKey&) = delete;
  // Big-endian, padded to the group's size.
  const Bytes& public_value() const { return pub_; }
  // The shared secret g^xy mod p, padded to the group's size, or empty with
  // *error set (a peer value out of range, wrong length).
  Bytes derive(const uint8_t* peer, size_t len, std::string* error) const;

 private:
  DhKey() = default;
  DhGroup group_ = DhGroup::kNull;
  void* pkey_ = nullptr;  // EVP_PKEY
  Bytes pub_;
};

}  // namespace nvemu::auth
