#include "tls/signer.h"

#include "tls/cert_fields.h"

namespace mintgate::tls {
namespace {

// ASN1_item_sign_ctx picks the AlgorithmIdentifier from the key and the context (legacy
// methods, provider "algorithm-id" parameters, NULL parameters for RSA PKCS#1 v1.5). Rather
// than repeating those rules, sign a throwaway certificate with a copy of the prepared
// context and keep what OpenSSL wrote into it.
bool LearnSignatureAlgorithm(Signer& signer) {
  X509Ptr dummy(X509_new());
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!dummy || !ctx || X509_set_version(dummy.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(dummy.get(), signer.key.get()) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(dummy.get()), 0) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(dummy.get()), 60) == nullptr ||
      EVP_MD_CTX_copy_ex(ctx.get(), signer.sign_template.get()) != 1 ||
      X509_sign_ctx(dummy.get(), ctx.get()) <= 0) {
    return false;
  }
  const X509_ALGOR* alg = X509_get0_tbs_sigalg(dummy.get());
  signer.signature_algorithm.reset(X509_ALGOR_dup(alg));
  if (!signer.signature_algorithm) return false;
  const int len = i2d_X509_ALGOR(alg, nullptr);
  if (len <= 0) return false;
  signer.signature_algorithm_der.resize(static_cast<std::size_t>(len));
  unsigned char* p = signer.signature_algorithm_der.data();
  return i2d_X509_ALGOR(alg, &p) == len;
}

}  // namespace

bool PrepareSigner(Signer& signer) {
  if (const ASN1_OCTET_STRING* ski = SubjectKeyIdOf(signer.cert.get())) {
    signer.authority_key_id.reset(AUTHORITY_KEYID_new());
    if (!signer.authority_key_id) return false;
    signer.authority_key_id->keyid = ASN1_OCTET_STRING_dup(ski);
    if (signer.authority_key_id->keyid == nullptr) return false;
    signer.authority_key_id_extension = MakeAuthorityKeyId(ski);
    if (!signer.authority_key_id_extension) return false;
  }
  signer.sign_template.reset(EVP_MD_CTX_new());
  return signer.sign_template &&
         EVP_DigestSignInit(signer.sign_template.get(), nullptr, EVP_sha256(), nullptr,
                            signer.key.get()) == 1 &&
         LearnSignatureAlgorithm(signer);
}

}  // namespace mintgate::tls
