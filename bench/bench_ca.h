// A self-signed CA for the benchmarks, the same for every file that mints: ECDSA P-256 ("ec")
// or RSA-2048 ("rsa"), one CN, directly signing or through the in-memory intermediate.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <string>

#include "tls/cert_authority.h"
#include "tls/cert_fields.h"

namespace mintgate::tls {

inline EvpPkeyPtr Key(const char* type) {
  return EvpPkeyPtr(std::string(type) == "ec" ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048));
}

// A minimal self-signed CA, built once per process.
inline std::unique_ptr<CertAuthority> MakeAuthority(const char* key_type, bool intermediate) {
  EvpPkeyPtr key = Key(key_type);
  X509Ptr x(X509_new());
  std::time_t now = std::time(nullptr);
  X509_set_version(x.get(), X509_VERSION_3);
  SetRandomSerial(x.get());
  X509_NAME_add_entry_by_NID(X509_get_subject_name(x.get()), NID_commonName, MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Bench Root"), -1, -1, 0);
  X509_set_issuer_name(x.get(), X509_get_subject_name(x.get()));
  SetTime(X509_getm_notBefore(x.get()), now - 3600);
  SetTime(X509_getm_notAfter(x.get()), now + 3650L * 86400);
  X509_set_pubkey(x.get(), key.get());
  X509ExtensionPtr exts[] = {MakeBasicConstraints(true), MakeKeyUsage(KU_KEY_CERT_SIGN),
                             MakeSubjectKeyId(x.get())};
  for (auto& e : exts) X509_add_ext(x.get(), e.get(), -1);
  X509_sign(x.get(), key.get(), EVP_sha256());
  CaMaterial m;
  m.cert = std::move(x);
  m.key = std::move(key);
  CaProfileSpec spec;
  spec.name = "bench";
  SignerOptions o;
  o.signing_intermediate = intermediate;
  return CertAuthority::Create(spec, std::move(m), o, now);
}

}  // namespace mintgate::tls
