// Leaf keys built through OpenSSL's legacy key API. See legacy_ec_key.cc for why.
#pragma once

#include "tls/openssl_ptr.h"

namespace mintgate::tls {

// A fresh ECDSA P-256 key whose EVP_PKEY is backed by a legacy EC_KEY.
EvpPkeyPtr GenerateLegacyEcP256Key();

// A fresh RSA key of `bits` whose EVP_PKEY is backed by a legacy RSA object.
EvpPkeyPtr GenerateLegacyRsaKey(int bits);

}  // namespace mintgate::tls
