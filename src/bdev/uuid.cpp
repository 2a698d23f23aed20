// Name-based UUIDs (RFC 4122 section 4.3, version 5) for bdevs whose
// identity must survive a restart. SHA-1 is OpenSSL's (EVP), never ours.
#include <openssl/evp.h>

#include <cstdio>
#include <stdexcept>

#include "bdev/bdev.h"

namespace nvemu::bdev {
namespace {

bool parse(const std::string& text, uint8_t out[16]) {
  if (!is_valid_uuid(text)) return false;
  int n = 0;
  for (size_t i = 0; i < text.size() && n < 16; ++i) {
    if (text[i] == '-') continue;
    unsigned v;
    if (std::sscanf(text.c_str() + i, "%2x", &v) != 1) return false;
    out[n++] = static_cast<uint8_t>(v);
    ++i;
  }
  return n == 16;
}

}  // namespace

std::string name_based_uuid(const std::string& ns_uuid, const std::string& name) {
  uint8_t ns[16];
  if (!parse(ns_uuid, ns)) throw std::invalid_argument("name_based_uuid: bad namespace UUID");
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, ns, sizeof ns) == 1 &&
            EVP_DigestUpdate(ctx, name.data(), name.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, md, &len) == 1 && len >= 16;
  EVP_MD_CTX_free(ctx);
  if (!ok) throw std::runtime_error("name_based_uuid: OpenSSL SHA-1 failed");
  md[6] = (md[6] & 0x0f) | 0x50;  // version 5
  md[8] = (md[8] & 0x3f) | 0x80;  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
                md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11],
                md[12], md[13], md[14], md[15]);
  return out;
}

}  // namespace nvemu::bdev
