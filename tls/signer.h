// What signs leaves at a given moment: a profile's own certificate and key, or the in-memory
// signing intermediate made from them. Immutable once built; shared by every minting thread.
#pragma once

#include <ctime>
#include <memory>
#include <vector>

#include "tls/leaf.h"
#include "tls/openssl_ptr.h"

namespace mintgate::tls {

using AuthorityKeyIdPtr = std::unique_ptr<AUTHORITY_KEYID, OpenSslDeleter<AUTHORITY_KEYID_free>>;
using X509AlgorPtr = std::unique_ptr<X509_ALGOR, OpenSslDeleter<X509_ALGOR_free>>;

// Owned by a shared_ptr (make_shared): compact leaves keep their signer alive through it.
struct Signer : std::enable_shared_from_this<Signer> {
  X509Ptr cert;    // issuer of the leaves
  EvpPkeyPtr key;  // its private key
  // AKI for leaves (keyid = cert's SKI); null when the certificate has no SKI.
  AuthorityKeyIdPtr authority_key_id;
  // The same as a finished extension, copied into each leaf; null when there is no SKI.
  X509ExtensionPtr authority_key_id_extension;
  // EVP_DigestSignInit(SHA-256, key) done once: each mint copies it instead of fetching the
  // signature algorithm and key management again. Only ever read after construction.
  EvpMdCtxPtr sign_template;
  // The signature AlgorithmIdentifier that X509_sign_ctx writes when signing with
  // sign_template, learnt once by signing a throwaway certificate, and its DER. Leaves are
  // signed over a hand-encoded TBSCertificate (tls/leaf_minter.cc) that embeds these bytes.
  // When null, leaves are signed through X509_sign_ctx instead.
  X509AlgorPtr signature_algorithm;
  std::vector<unsigned char> signature_algorithm_der;
  std::time_t not_before = 0;
  std::time_t not_after = 0;               // leaves never outlive this
  std::shared_ptr<const CertChain> chain;  // served after each leaf
  bool is_intermediate = false;
};

// Fills `authority_key_id{,_extension}`, `sign_template` and `signature_algorithm{,_der}` from
// `cert` and `key`. False on failure (OpenSSL's error queue says why).
bool PrepareSigner(Signer& signer);

}  // namespace mintgate::tls
