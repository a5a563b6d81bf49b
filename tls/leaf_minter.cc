#include "tls/leaf_minter.h"

#include <openssl/err.h>

#include <algorithm>
#include <stdexcept>

#include "tls/host_name.h"

namespace mintgate::tls {
namespace {

constexpr std::time_t kDay = 24 * 60 * 60;
constexpr std::time_t kBackdate = 60 * 60;

// Every mint in the same second gets the same validity, so the two ASN1_TIME values are
// formatted once per thread and second and copied into each certificate.
bool SetValidity(X509* cert, std::time_t not_before, std::time_t not_after) {
  struct Cached {
    std::time_t not_before = -1;
    std::time_t not_after = -1;
    Asn1TimePtr before{ASN1_TIME_new()};
    Asn1TimePtr after{ASN1_TIME_new()};
  };
  thread_local Cached cache;
  if (!cache.before || !cache.after) return false;
  if (cache.not_before != not_before || cache.not_after != not_after) {
    if (!SetTime(cache.before.get(), not_before) || !SetTime(cache.after.get(), not_after)) {
      cache.not_before = cache.not_after = -1;
      return false;
    }
    cache.not_before = not_before;
    cache.not_after = not_after;
  }
  return X509_set1_notBefore(cert, cache.before.get()) == 1 &&
         X509_set1_notAfter(cert, cache.after.get()) == 1;
}

// Copies the signer's prepared DigestSign context into a per-thread context and signs with
// it. FINALISE lets OpenSSL finish in place instead of duplicating the context once more.
bool Sign(X509* cert, const Signer& signer) {
  thread_local EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_MD_CTX_copy_ex(ctx.get(), signer.sign_template.get()) != 1) return false;
  EVP_MD_CTX_set_flags(ctx.get(), EVP_MD_CTX_FLAG_FINALISE);
  return X509_sign_ctx(cert, ctx.get()) > 0;
}

}  // namespace

LeafMinter::LeafMinter(LeafKeys& keys, int leaf_days)
    : keys_(keys),
      leaf_days_(leaf_days),
      basic_constraints_(MakeBasicConstraintsValue(false)),
      key_usage_ec_(MakeKeyUsageValue(KU_DIGITAL_SIGNATURE)),
      key_usage_rsa_(MakeKeyUsageValue(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT)),
      server_auth_(MakeServerAuthEkuValue()) {
  if (leaf_days < 1 || leaf_days > kMaxLeafDays) {
    throw std::invalid_argument("leaf_days must be between 1 and " + std::to_string(kMaxLeafDays) +
                                ", got " + std::to_string(leaf_days));
  }
  if (!basic_constraints_ || !key_usage_ec_ || !key_usage_rsa_ || !server_auth_) {
    throw std::runtime_error(WithOpenSslErrors("cannot build leaf extensions"));
  }
}

Result<LeafPtr> LeafMinter::Mint(const Signer& signer, const MintRequest& request,
                                 std::time_t now) const {
  ERR_clear_error();
  Result<SanName> primary = ParseSanName(request.host);
  if (!primary) return Error{primary.error()};
  std::vector<SanName> extras;
  std::vector<const SanName*> names{&primary.value()};
  if (request.extra_names != nullptr) {
    extras.reserve(request.extra_names->size());
    for (const std::string& n : *request.extra_names) {
      Result<SanName> parsed = ParseSanName(n);
      if (!parsed) return Error{parsed.error()};
      extras.push_back(std::move(parsed.value()));
    }
    for (const SanName& e : extras) {
      bool dup = std::any_of(names.begin(), names.end(), [&e](const SanName* n) {
        return n->kind == e.kind && n->text == e.text;
      });
      if (!dup) names.push_back(&e);
    }
  }

  EVP_PKEY* leaf_key = keys_.Get(request.key_type);
  if (leaf_key == nullptr) return Error{WithOpenSslErrors("leaf key unavailable")};

  const std::time_t not_before = std::max(now - kBackdate, signer.not_before);
  const std::time_t not_after =
      std::min(now + static_cast<std::time_t>(leaf_days_) * kDay, signer.not_after);
  if (not_after <= now) return Error{"signing CA has expired"};

  GeneralNamesPtr san = MakeGeneralNames(names);
  X509Ptr x(X509_new());
  if (!san || !x) return Error{WithOpenSslErrors("out of memory")};
  X509* cert = x.get();
  const BitStringPtr& key_usage =
      request.key_type == LeafKeyType::kRsa2048 ? key_usage_rsa_ : key_usage_ec_;
  constexpr unsigned long kAppend = X509V3_ADD_APPEND;  // NOLINT(runtime/int): OpenSSL's type
  if (X509_set_version(cert, X509_VERSION_3) != 1 || !SetRandomSerial(cert) ||
      X509_set_issuer_name(cert, X509_get_subject_name(signer.cert.get())) != 1 ||
      !SetValidity(cert, not_before, not_after) || X509_set_pubkey(cert, leaf_key) != 1 ||
      X509_add1_ext_i2d(cert, NID_basic_constraints, basic_constraints_.get(), 1, kAppend) != 1 ||
      X509_add1_ext_i2d(cert, NID_key_usage, key_usage.get(), 1, kAppend) != 1 ||
      X509_add1_ext_i2d(cert, NID_ext_key_usage, server_auth_.get(), 0, kAppend) != 1 ||
      X509_add1_ext_i2d(cert, NID_subject_alt_name, san.get(), 1, kAppend) != 1 ||
      (signer.authority_key_id &&
       X509_add1_ext_i2d(cert, NID_authority_key_identifier, signer.authority_key_id.get(), 0,
                         kAppend) != 1)) {
    return Error{WithOpenSslErrors("cannot build leaf certificate")};
  }
  if (!Sign(cert, signer)) return Error{WithOpenSslErrors("cannot sign leaf certificate")};

  auto leaf = std::make_shared<Leaf>();
  leaf->cert = std::move(x);
  leaf->key = UpRef(leaf_key);
  leaf->chain = signer.chain;
  leaf->not_before = not_before;
  leaf->not_after = not_after;
  return LeafPtr(std::move(leaf));
}

}  // namespace mintgate::tls
