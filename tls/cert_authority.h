// A CA profile ([ca.NAME]): the signing certificate, its key and chain, and how it signs
// leaves now (directly, or through an in-memory ECDSA intermediate that is renewed before it
// expires).
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tls/cert_loader.h"
#include "tls/signer.h"

namespace mintgate::tls {

struct SignerOptions {
  bool signing_intermediate = false;
  // Leaves live this long; an intermediate lives twice as long and is renewed once less than
  // this remains, so every leaf gets its full lifetime.
  int leaf_days = 30;
};

class CertAuthority {
 public:
  // Builds the profile from validated material. Throws LoadError (naming the certificate
  // file) when it cannot sign as asked, e.g. signing_intermediate with a pathLen 0 root.
  static std::unique_ptr<CertAuthority> Create(const CaProfileSpec& spec, CaMaterial material,
                                               const SignerOptions& options, std::time_t now);

  // Loads the files of `spec` (LoadCaMaterial) and builds the profile.
  static std::unique_ptr<CertAuthority> Load(const CaProfileSpec& spec,
                                             const SignerOptions& options, std::time_t now);

  CertAuthority(const CertAuthority&) = delete;
  CertAuthority& operator=(const CertAuthority&) = delete;

  // Unique in the process for each Create(): a reloaded profile gets a new id, so the
  // certificate cache never serves a leaf from an older load of it.
  std::uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  const std::string& cert_file() const { return cert_file_; }
  X509* cert() const { return material_.cert.get(); }
  EVP_PKEY* key() const { return material_.key.get(); }
  const std::vector<X509Ptr>& chain() const { return material_.chain; }
  std::time_t not_after() const { return not_after_; }
  // True when the certificate's issuer is not itself (e.g. cross-signed by a customer root).
  bool cross_signed() const { return cross_signed_; }

  // The signer to use at `now`. Thread-safe; renews the intermediate when it is due (if
  // renewal fails, the current one keeps serving while it is valid).
  std::shared_ptr<const Signer> signer(std::time_t now);

 private:
  CertAuthority(const CaProfileSpec& spec, CaMaterial material, const SignerOptions& options);
  std::shared_ptr<const Signer> MakeDirectSigner() const;
  std::shared_ptr<const Signer> MakeIntermediateSigner(std::time_t now) const;

  std::uint64_t id_;
  std::string name_;
  std::string cert_file_;
  CaMaterial material_;
  SignerOptions options_;
  std::time_t not_after_ = 0;
  bool cross_signed_ = false;
  // A plain mutex rather than std::atomic<std::shared_ptr>: signer() runs once per mint (not
  // per hit), and libstdc++ 12's atomic shared_ptr is opaque to ThreadSanitizer.
  mutable std::mutex signer_mutex_;
  std::shared_ptr<const Signer> signer_;
  // The intermediate before the last renewal: served to callers whose `now` precedes the
  // current one's not-before (a clock stepped back), so no leaf gets a not-yet-valid chain.
  std::shared_ptr<const Signer> previous_;
  std::mutex renew_mutex_;
};

}  // namespace mintgate::tls
