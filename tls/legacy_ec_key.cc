// Why deprecated API: in OpenSSL 3.0, X509_set_pubkey() with a provider-native key runs the
// encoder machinery (OSSL_ENCODER_CTX_new_for_pkey + decode back) on every call, which makes
// a leaf mint cost 12-15x its ECDSA signature. A key whose EVP_PKEY wraps a legacy EC_KEY or
// RSA object takes the old pub_encode path instead and keeps the same EVP_PKEY referenced
// from the certificate. The benchmark BM_Mint/ecdsa_p256 (bench/mint_bench.cc) shows the
// regression if this is "modernised" to EVP_EC_gen/EVP_RSA_gen; BM_MintProviderKey shows
// what that costs. Keep this file small.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "tls/legacy_ec_key.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>

#include <memory>

namespace mintgate::tls {
namespace {

using EcKeyPtr = std::unique_ptr<EC_KEY, OpenSslDeleter<EC_KEY_free>>;
using EcGroupPtr = std::unique_ptr<EC_GROUP, OpenSslDeleter<EC_GROUP_free>>;
using EcPointPtr = std::unique_ptr<EC_POINT, OpenSslDeleter<EC_POINT_free>>;

// P-256 on OpenSSL's generic Montgomery method instead of the x86-64 nistz256 one. The public
// point is then stored in affine form and encoding it (once per minted certificate) needs no
// field inversion: nistz256 inverts on every encode, which costs about 15% of a signature.
// The curve keeps its name, so certificates carry the named-curve OID; when the key signs in
// a TLS handshake, OpenSSL exports it to the default provider by that name, which uses the
// fast implementation again.
EcGroupPtr GenericP256Group() {
  EcGroupPtr named(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  BignumPtr p(BN_new()), a(BN_new()), b(BN_new());
  if (!named || !p || !a || !b ||
      EC_GROUP_get_curve(named.get(), p.get(), a.get(), b.get(), nullptr) != 1) {
    return nullptr;
  }
  EcGroupPtr group(EC_GROUP_new_curve_GFp(p.get(), a.get(), b.get(), nullptr));
  if (!group) return nullptr;
  // Points cannot be copied between groups of different methods: rebuild the generator from
  // its coordinates.
  BignumPtr gx(BN_new()), gy(BN_new());
  EcPointPtr generator(EC_POINT_new(group.get()));
  if (!gx || !gy || !generator ||
      EC_POINT_get_affine_coordinates(named.get(), EC_GROUP_get0_generator(named.get()), gx.get(),
                                      gy.get(), nullptr) != 1 ||
      EC_POINT_set_affine_coordinates(group.get(), generator.get(), gx.get(), gy.get(), nullptr) !=
          1 ||
      EC_GROUP_set_generator(group.get(), generator.get(), EC_GROUP_get0_order(named.get()),
                             EC_GROUP_get0_cofactor(named.get())) != 1) {
    return nullptr;
  }
  EC_GROUP_set_curve_name(group.get(), NID_X9_62_prime256v1);
  EC_GROUP_set_asn1_flag(group.get(), OPENSSL_EC_NAMED_CURVE);
  return group;
}

}  // namespace

EvpPkeyPtr GenerateLegacyEcP256Key() {
  // Generate on the standard group, then move the key pair onto the generic one: OpenSSL
  // 3.0 may compute a generated public point with the named curve's own method.
  EcKeyPtr generated(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  EcGroupPtr group = GenericP256Group();
  EcKeyPtr ec(EC_KEY_new());
  if (!generated || !group || !ec || EC_KEY_generate_key(generated.get()) != 1 ||
      EC_KEY_set_group(ec.get(), group.get()) != 1 ||
      EC_KEY_set_private_key(ec.get(), EC_KEY_get0_private_key(generated.get())) != 1) {
    return nullptr;
  }
  unsigned char octets[65];
  const EC_GROUP* key_group = EC_KEY_get0_group(ec.get());
  EcPointPtr pub(EC_POINT_new(key_group));
  if (!pub ||
      EC_POINT_point2oct(EC_KEY_get0_group(generated.get()),
                         EC_KEY_get0_public_key(generated.get()), POINT_CONVERSION_UNCOMPRESSED,
                         octets, sizeof octets, nullptr) != sizeof octets ||
      EC_POINT_oct2point(key_group, pub.get(), octets, sizeof octets, nullptr) != 1 ||
      EC_POINT_make_affine(key_group, pub.get(), nullptr) != 1 ||
      EC_KEY_set_public_key(ec.get(), pub.get()) != 1 || EC_KEY_check_key(ec.get()) != 1) {
    return nullptr;
  }
  EvpPkeyPtr pkey(EVP_PKEY_new());
  if (!pkey || EVP_PKEY_assign_EC_KEY(pkey.get(), ec.get()) != 1) return nullptr;
  ec.release();  // now owned by pkey
  return pkey;
}

EvpPkeyPtr GenerateLegacyRsaKey(int bits) {
  std::unique_ptr<RSA, OpenSslDeleter<RSA_free>> rsa(RSA_new());
  BignumPtr e(BN_new());
  if (!rsa || !e || BN_set_word(e.get(), RSA_F4) != 1 ||
      RSA_generate_key_ex(rsa.get(), bits, e.get(), nullptr) != 1) {
    return nullptr;
  }
  EvpPkeyPtr pkey(EVP_PKEY_new());
  if (!pkey || EVP_PKEY_assign_RSA(pkey.get(), rsa.get()) != 1) return nullptr;
  rsa.release();
  return pkey;
}

}  // namespace mintgate::tls
