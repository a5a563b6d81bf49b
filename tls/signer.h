// What signs leaves at a given moment: a profile's own certificate and key, or the in-memory
// signing intermediate made from them. Immutable once built; shared by every minting thread.
#pragma once

#include <ctime>
#include <memory>

#include "tls/leaf.h"
#include "tls/openssl_ptr.h"

namespace mintgate::tls {

using AuthorityKeyIdPtr = std::unique_ptr<AUTHORITY_KEYID, OpenSslDeleter<AUTHORITY_KEYID_free>>;

struct Signer {
  X509Ptr cert;    // issuer of the leaves
  EvpPkeyPtr key;  // its private key
  // AKI for leaves (keyid = cert's SKI); null when the certificate has no SKI.
  AuthorityKeyIdPtr authority_key_id;
  // EVP_DigestSignInit(SHA-256, key) done once: each mint copies it instead of fetching the
  // signature algorithm and key management again. Only ever read after construction.
  EvpMdCtxPtr sign_template;
  std::time_t not_before = 0;
  std::time_t not_after = 0;               // leaves never outlive this
  std::shared_ptr<const CertChain> chain;  // served after each leaf
  bool is_intermediate = false;
};

// Fills `authority_key_id` and `sign_template` from `cert` and `key`. False on failure
// (OpenSSL's error queue says why).
bool PrepareSigner(Signer& signer);

}  // namespace mintgate::tls
