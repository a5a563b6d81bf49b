#include "unit/tls/test_pki.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "tls/cert_fields.h"

namespace mintgate::tls::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(WithOpenSslErrors(what));
}

X509Ptr BuildCaCert(X509_NAME* subject, EVP_PKEY* subject_key, X509_NAME* issuer,
                    EVP_PKEY* issuer_key, const ASN1_OCTET_STRING* issuer_ski, const CaOptions& o) {
  std::time_t now = std::time(nullptr);
  X509Ptr x(X509_new());
  Check(x != nullptr, "X509_new");
  Check(X509_set_version(x.get(), X509_VERSION_3) == 1, "version");
  Check(SetRandomSerial(x.get()), "serial");
  Check(X509_set_subject_name(x.get(), subject) == 1, "subject");
  Check(X509_set_issuer_name(x.get(), issuer) == 1, "issuer");
  Check(SetTime(X509_getm_notBefore(x.get()), o.not_before ? o.not_before : now - 3600), "nb");
  Check(SetTime(X509_getm_notAfter(x.get()), o.not_after ? o.not_after : now + 3650L * 86400),
        "na");
  Check(X509_set_pubkey(x.get(), subject_key) == 1, "pubkey");
  X509ExtensionPtr bc = MakeBasicConstraints(o.is_ca, o.path_len);
  X509ExtensionPtr ku =
      MakeKeyUsage(o.is_ca ? (KU_KEY_CERT_SIGN | KU_CRL_SIGN) : KU_DIGITAL_SIGNATURE);
  Check(X509_add_ext(x.get(), bc.get(), -1) == 1, "bc");
  Check(X509_add_ext(x.get(), ku.get(), -1) == 1, "ku");
  if (o.with_ski) {
    X509ExtensionPtr ski = MakeSubjectKeyId(x.get());
    Check(X509_add_ext(x.get(), ski.get(), -1) == 1, "ski");
  }
  if (issuer_ski != nullptr) {
    X509ExtensionPtr aki = MakeAuthorityKeyId(issuer_ski);
    Check(X509_add_ext(x.get(), aki.get(), -1) == 1, "aki");
  }
  Check(X509_sign(x.get(), issuer_key, EVP_sha256()) != 0, "sign");
  return x;
}

}  // namespace

EvpPkeyPtr MakeKey(const std::string& type) {
  EVP_PKEY* k = nullptr;
  if (type == "ec") k = EVP_EC_gen("P-256");
  if (type == "p384") k = EVP_EC_gen("P-384");
  if (type == "rsa2048") k = EVP_RSA_gen(2048);
  if (type == "rsa1024") k = EVP_RSA_gen(1024);
  Check(k != nullptr, "key generation");
  return EvpPkeyPtr(k);
}

TestCa MakeRoot(const std::string& cn, EvpPkeyPtr key, const CaOptions& options) {
  X509NamePtr name(X509_NAME_new());
  Check(X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0) == 1,
        "cn");
  // The SKI is computed from the key alone, so a self-signed root's AKI can be set up front.
  X509Ptr probe(X509_new());
  Check(X509_set_pubkey(probe.get(), key.get()) == 1, "probe");
  X509ExtensionPtr ski_ext = MakeSubjectKeyId(probe.get());
  auto* ski = static_cast<ASN1_OCTET_STRING*>(X509V3_EXT_d2i(ski_ext.get()));
  TestCa ca;
  ca.cert = BuildCaCert(name.get(), key.get(), name.get(), key.get(),
                        options.with_ski ? ski : nullptr, options);
  ASN1_OCTET_STRING_free(ski);
  ca.key = std::move(key);
  return ca;
}

X509Ptr CrossSign(const TestCa& subject, const TestCa& issuer, const CaOptions& options) {
  return BuildCaCert(X509_get_subject_name(subject.cert.get()), subject.key.get(),
                     X509_get_subject_name(issuer.cert.get()), issuer.key.get(),
                     X509_get0_subject_key_id(issuer.cert.get()), options);
}

CaProfileSpec Spec(const std::string& name) {
  CaProfileSpec s;
  s.name = name;
  s.cert_file = name + ".pem";
  s.key_file = name + ".key";
  return s;
}

CaMaterial Material(X509* cert, EVP_PKEY* key, std::vector<X509*> chain) {
  CaMaterial m;
  m.cert = UpRef(cert);
  m.key = UpRef(key);
  for (X509* c : chain) m.chain.push_back(UpRef(c));
  return m;
}

CaMaterial Material(const TestCa& ca, std::vector<X509*> chain) {
  return Material(ca.cert.get(), ca.key.get(), std::move(chain));
}

std::string Verify(X509* leaf, const std::vector<X509*>& untrusted,
                   const std::vector<X509*>& anchors, const std::string& host, std::time_t at) {
  X509StorePtr store(X509_STORE_new());
  for (X509* a : anchors) X509_STORE_add_cert(store.get(), a);
  struct StackFree {
    void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
  };
  std::unique_ptr<STACK_OF(X509), StackFree> chain(sk_X509_new_null());
  for (X509* c : untrusted) sk_X509_push(chain.get(), c);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, chain.get());
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  if (!host.empty() && X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
    ERR_clear_error();
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  }
  if (at != 0) X509_VERIFY_PARAM_set_time(param, at);
  if (X509_verify_cert(ctx.get()) == 1) return "";
  std::string why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  DrainOpenSslErrors();
  return why.empty() ? "failed" : why;
}

std::string VerifyLeaf(const Leaf& leaf, const std::vector<X509*>& anchors, const std::string& host,
                       std::time_t at) {
  std::vector<X509*> untrusted;
  for (const X509Ptr& c : leaf.chain->certs) untrusted.push_back(c.get());
  return Verify(leaf.cert.get(), untrusted, anchors, host, at);
}

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void WritePem(const std::string& path, const std::vector<X509*>& certs) {
  BioPtr bio(BIO_new_file(path.c_str(), "w"));
  Check(bio != nullptr, "open for writing");
  for (X509* c : certs) Check(PEM_write_bio_X509(bio.get(), c) == 1, "PEM_write");
}

}  // namespace mintgate::tls::testing
