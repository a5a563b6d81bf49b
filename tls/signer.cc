#include "tls/signer.h"

#include "tls/cert_fields.h"

namespace mintgate::tls {

bool PrepareSigner(Signer& signer) {
  if (const ASN1_OCTET_STRING* ski = SubjectKeyIdOf(signer.cert.get())) {
    signer.authority_key_id.reset(AUTHORITY_KEYID_new());
    if (!signer.authority_key_id) return false;
    signer.authority_key_id->keyid = ASN1_OCTET_STRING_dup(ski);
    if (signer.authority_key_id->keyid == nullptr) return false;
  }
  signer.sign_template.reset(EVP_MD_CTX_new());
  return signer.sign_template && EVP_DigestSignInit(signer.sign_template.get(), nullptr,
                                                    EVP_sha256(), nullptr, signer.key.get()) == 1;
}

}  // namespace mintgate::tls
