#include "tls/cert_authority.h"

#include <openssl/obj_mac.h>

#include <algorithm>
#include <atomic>

#include "tls/cert_fields.h"
#include "tls/legacy_ec_key.h"

namespace mintgate::tls {
namespace {

std::atomic<std::uint64_t> g_next_id{1};

constexpr std::time_t kDay = 24 * 60 * 60;
constexpr std::time_t kBackdate = 60 * 60;

std::string CommonName(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return "(no CN)";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return "(unreadable CN)";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

// Number of CA certificates that will sit below `cert` (excluding the leaf) is `below`;
// its pathLenConstraint must allow that many.
void CheckPathLen(X509* cert, long below, const std::string& file, bool intermediate) {
  long path_len = X509_get_pathlen(cert);
  if (path_len >= 0 && path_len < below) {
    std::string why = "certificate \"" + CommonName(cert) + "\" has pathLenConstraint " +
                      std::to_string(path_len) + " but " + std::to_string(below) +
                      " CA certificate(s) would follow it";
    if (intermediate) why += " (signing_intermediate = true adds one; set it to false)";
    throw LoadError(file, why);
  }
}

X509Ptr ReparsedFromDer(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) return nullptr;
  const unsigned char* p = der;
  X509Ptr parsed(d2i_X509(nullptr, &p, len));
  OPENSSL_free(der);
  return parsed;
}

}  // namespace

CertAuthority::CertAuthority(const CaProfileSpec& spec, CaMaterial material,
                             const SignerOptions& options)
    : id_(g_next_id.fetch_add(1)),
      name_(spec.name),
      cert_file_(spec.cert_file),
      material_(std::move(material)),
      options_(options) {}

std::unique_ptr<CertAuthority> CertAuthority::Load(const CaProfileSpec& spec,
                                                   const SignerOptions& options, std::time_t now) {
  return Create(spec, LoadCaMaterial(spec, now), options, now);
}

std::unique_ptr<CertAuthority> CertAuthority::Create(const CaProfileSpec& spec, CaMaterial material,
                                                     const SignerOptions& options,
                                                     std::time_t now) {
  if (!material.cert || !material.key)
    throw LoadError(spec.cert_file, "missing certificate or key");
  std::unique_ptr<CertAuthority> ca(new CertAuthority(spec, std::move(material), options));
  X509* cert = ca->cert();
  ca->not_after_ = ToTimeT(X509_get0_notAfter(cert));
  ca->cross_signed_ = X509_check_issued(cert, cert) != X509_V_OK;

  long below = options.signing_intermediate ? 1 : 0;
  CheckPathLen(cert, below, spec.cert_file, options.signing_intermediate);
  for (std::size_t i = 0; i < ca->material_.chain.size(); ++i) {
    const std::string& file = spec.chain_files.empty()      ? spec.cert_file
                              : i < spec.chain_files.size() ? spec.chain_files[i]
                                                            : spec.chain_files.back();
    CheckPathLen(ca->material_.chain[i].get(), below + static_cast<long>(i) + 1, file,
                 options.signing_intermediate);
  }

  std::shared_ptr<const Signer> signer =
      options.signing_intermediate ? ca->MakeIntermediateSigner(now) : ca->MakeDirectSigner();
  if (!signer) {
    throw LoadError(spec.cert_file, WithOpenSslErrors("cannot prepare this CA for signing"));
  }
  ca->signer_ = std::move(signer);
  return ca;
}

std::shared_ptr<const Signer> CertAuthority::MakeDirectSigner() const {
  auto chain = std::make_shared<CertChain>();
  chain->certs.push_back(UpRef(cert()));
  for (const X509Ptr& c : material_.chain) chain->certs.push_back(UpRef(c.get()));

  auto s = std::make_shared<Signer>();
  s->cert = UpRef(cert());
  s->key = UpRef(key());
  if (!PrepareSigner(*s)) return nullptr;
  s->not_before = ToTimeT(X509_get0_notBefore(cert()));
  s->not_after = not_after_;
  s->chain = std::move(chain);
  return s;
}

std::shared_ptr<const Signer> CertAuthority::MakeIntermediateSigner(std::time_t now) const {
  EvpPkeyPtr ikey = GenerateLegacyEcP256Key();
  X509Ptr x(X509_new());
  if (!ikey || !x) return nullptr;
  std::time_t root_not_before = ToTimeT(X509_get0_notBefore(cert()));
  std::time_t not_before = std::max(now - kBackdate, root_not_before);
  std::time_t not_after =
      std::min(now + 2 * static_cast<std::time_t>(options_.leaf_days) * kDay, not_after_);
  if (not_after <= now) return nullptr;

  // A single attribute: every leaf copies this name as its issuer (a DER decode per mint),
  // and each attribute more costs about a sixth of an ECDSA signature.
  X509_NAME* subject = X509_get_subject_name(x.get());
  std::string cn = CommonName(cert()) + " signing intermediate";
  if (cn.size() > 64) cn = "mintgate signing intermediate";
  auto add = [subject](int nid, const std::string& v) {
    return X509_NAME_add_entry_by_NID(subject, nid, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(v.data()),
                                      static_cast<int>(v.size()), -1, 0) == 1;
  };
  if (X509_set_version(x.get(), X509_VERSION_3) != 1 || !SetRandomSerial(x.get()) ||
      !add(NID_commonName, cn) ||
      X509_set_issuer_name(x.get(), X509_get_subject_name(cert())) != 1 ||
      !SetTime(X509_getm_notBefore(x.get()), not_before) ||
      !SetTime(X509_getm_notAfter(x.get()), not_after) ||
      X509_set_pubkey(x.get(), ikey.get()) != 1) {
    return nullptr;
  }
  X509ExtensionPtr exts[] = {MakeBasicConstraints(true, 0),
                             MakeKeyUsage(KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE),
                             MakeSubjectKeyId(x.get()), nullptr};
  if (const ASN1_OCTET_STRING* ski = SubjectKeyIdOf(cert())) exts[3] = MakeAuthorityKeyId(ski);
  for (auto& ext : exts) {
    if (ext && X509_add_ext(x.get(), ext.get(), -1) != 1) return nullptr;
  }
  if (X509_sign(x.get(), key(), EVP_sha256()) == 0) return nullptr;
  // Parsed back from its DER: every handshake encodes each certificate of the chain twice
  // (i2d_X509, for the length and then the bytes), and only a parsed certificate keeps the
  // encoding of its TBS part (~0.3 µs an encoding instead of ~3.4 µs). Once per intermediate.
  x = ReparsedFromDer(x.get());
  if (!x) return nullptr;

  auto s = std::make_shared<Signer>();
  auto chain = std::make_shared<CertChain>();
  chain->certs.push_back(UpRef(x.get()));
  chain->certs.push_back(UpRef(cert()));
  for (const X509Ptr& c : material_.chain) chain->certs.push_back(UpRef(c.get()));
  s->cert = std::move(x);
  s->key = std::move(ikey);
  s->not_before = not_before;
  s->not_after = not_after;
  s->chain = std::move(chain);
  s->is_intermediate = true;
  if (!PrepareSigner(*s)) return nullptr;
  return s;
}

std::shared_ptr<const Signer> CertAuthority::signer(std::time_t now) {
  std::shared_ptr<const Signer> current;
  {
    std::lock_guard<std::mutex> lock(signer_mutex_);
    if (previous_ && now < signer_->not_before) return previous_;
    current = signer_;
  }
  if (!current->is_intermediate) return current;
  const std::time_t renew_before = static_cast<std::time_t>(options_.leaf_days) * kDay;
  // Renewing only helps while the root outlives the current intermediate.
  if (now < current->not_after - renew_before || current->not_after >= not_after_) {
    return current;
  }
  std::lock_guard<std::mutex> renewing(renew_mutex_);
  {
    std::lock_guard<std::mutex> lock(signer_mutex_);
    current = signer_;  // another thread may have renewed it meanwhile
  }
  if (now < current->not_after - renew_before) return current;
  if (std::shared_ptr<const Signer> fresh = MakeIntermediateSigner(now)) {
    std::lock_guard<std::mutex> lock(signer_mutex_);
    previous_ = std::move(signer_);
    signer_ = fresh;
    return fresh;
  }
  DrainOpenSslErrors();
  return current;
}

}  // namespace mintgate::tls
