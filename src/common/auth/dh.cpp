// FFDHE key agreement for DH-HMAC-CHAP (Base 2.0, 8.13.5.4): RFC 7919 named
// groups through OpenSSL's EVP_PKEY "DH" with the group name; values on the
// wire are big-endian and padded to the prime's size, as Linux sends them.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/dh.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "common/auth/dhchap.h"

namespace nvemu::auth {

namespace {
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct BldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
using Ctx = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Bn = std::unique_ptr<BIGNUM, BnFree>;
}  // namespace

std::unique_ptr<DhKey> DhKey::generate(DhGroup g, std::string* error) {
  size_t bytes = dhgroup_bytes(g);
  if (bytes == 0) {
    *error = "the null DH group has no key";
    return nullptr;
  }
  Ctx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0) {
    *error = "OpenSSL has no DH key generation";
    return nullptr;
  }
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                          const_cast<char*>(dhgroup_name(g)), 0),
                         OSSL_PARAM_construct_end()};
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_CTX_set_params(ctx.get(), params) <= 0 || EVP_PKEY_generate(ctx.get(), &raw) <= 0) {
    *error = std::string("OpenSSL could not generate an ") + dhgroup_name(g) + " key";
    return nullptr;
  }
  Pkey key(raw);
  BIGNUM* pub = nullptr;
  if (!EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_PUB_KEY, &pub)) {
    *error = "OpenSSL could not export the DH public value";
    return nullptr;
  }
  Bn pub_owner(pub);
  std::unique_ptr<DhKey> k(new DhKey());
  k->group_ = g;
  k->pub_.resize(bytes);
  if (BN_bn2binpad(pub, k->pub_.data(), static_cast<int>(bytes)) < 0) {
    *error = "the DH public value does not fit its group";
    return nullptr;
  }
  k->pkey_ = key.release();
  return k;
}

DhKey::~DhKey() {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_));
}

Bytes DhKey::derive(const uint8_t* peer, size_t len, std::string* error) const {
  size_t bytes = dhgroup_bytes(group_);
  if (len != bytes) {
    *error = "the peer's DH value is " + std::to_string(len) + " bytes, " + dhgroup_name(group_) +
             " needs " + std::to_string(bytes);
    return {};
  }
  Bn pub(BN_bin2bn(peer, static_cast<int>(len), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
  if (!pub || !bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, dhgroup_name(group_),
                                       0) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub.get())) {
    *error = "OpenSSL could not hold the peer's DH value";
    return {};
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  Ctx fctx(EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
  EVP_PKEY* raw_peer = nullptr;
  if (!params || !fctx || EVP_PKEY_fromdata_init(fctx.get()) <= 0 ||
      EVP_PKEY_fromdata(fctx.get(), &raw_peer, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    *error = "the peer's DH value is not a key of its group";
    return {};
  }
  Pkey peer_key(raw_peer);
  Ctx check(EVP_PKEY_CTX_new_from_pkey(nullptr, peer_key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    *error = "the peer's DH value is out of range for its group";
    return {};
  }
  Ctx dctx(EVP_PKEY_CTX_new_from_pkey(nullptr, static_cast<EVP_PKEY*>(pkey_), nullptr));
  Bytes out(bytes);
  size_t outlen = bytes;
  if (!dctx || EVP_PKEY_derive_init(dctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_dh_pad(dctx.get(), 1) <= 0 ||
      EVP_PKEY_derive_set_peer(dctx.get(), peer_key.get()) <= 0 ||
      EVP_PKEY_derive(dctx.get(), out.data(), &outlen) <= 0 || outlen != bytes) {
    OPENSSL_cleanse(out.data(), out.size());
    *error = "the DH shared secret could not be computed from the peer's value";
    return {};
  }
  return out;
}

}  // namespace nvemu::auth
