// Mints leaf certificates that browsers accept (ENGINEERING.md "Certificates that browsers
// accept"): SAN from structures, EKU serverAuth, CA:FALSE, SHA-256, random 128-bit serial,
// validity from one hour back for leaf_days but never past the signer's not-after, AKI equal
// to the signer's SKI, no SKI of its own. The subject is empty and the SAN critical, as in
// Let's Encrypt's current profiles: clients match names against the SAN only, and skipping
// the subject name saves its canonical encoding on every mint.
// This is the hot path: nothing here parses, duplicates or re-encodes a certificate or key.
// The leaf X509 is built through the API (TLS needs the object, and d2i_X509 would decode the
// key again), but the TBSCertificate that gets signed is assembled from cached DER pieces
// instead of being re-encoded by X509_sign_ctx's template encoder.
// Mint() is thread-safe.
#pragma once

#include <array>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tls/cert_fields.h"
#include "tls/leaf.h"
#include "tls/leaf_keys.h"
#include "tls/signer.h"
#include "tls/tls_error.h"

namespace mintgate::tls {

struct MintRequest {
  std::string_view host;  // a DNS name or IP literal; validated here
  // Further names for the SAN (e.g. mirrored from the real server's certificate); each is
  // validated too. Duplicates of `host` are dropped.
  const std::vector<std::string>* extra_names = nullptr;
  LeafKeyType key_type = LeafKeyType::kEcdsaP256;
};

class LeafMinter {
 public:
  // Chrome refuses leaves whose total span (including back-dating) exceeds 200 days.
  static constexpr int kMaxLeafDays = 199;

  // Throws std::invalid_argument when leaf_days is outside 1..kMaxLeafDays.
  LeafMinter(LeafKeys& keys, int leaf_days);

  Result<LeafPtr> Mint(const Signer& signer, const MintRequest& request, std::time_t now) const;

  int leaf_days() const { return leaf_days_; }

  // The X509 of a leaf from its parts (Leaf::parts), without signing: the same API calls as
  // Mint, then the stored signature. ~1/4 of a mint's CPU (no signature, no TBS encoding).
  // nullptr when the leaf has no parts or OpenSSL fails. Thread-safe.
  static X509Ptr Rebuild(const Leaf& leaf);

  // The TBSCertificate DER that the calling thread's last successful Mint() signed (empty if
  // it was signed through X509_sign_ctx). Tests compare it with i2d_re_X509_tbs.
  static std::vector<unsigned char> LastTbsForTesting();

 private:
  // SubjectPublicKeyInfo DER of each leaf key, encoded once from the first leaf that carries
  // the key (LeafKeys hands out the same EVP_PKEY for its whole life).
  struct SpkiCache {
    std::once_flag once;
    const EVP_PKEY* key = nullptr;
    std::vector<unsigned char> der;
  };
  const std::vector<unsigned char>* Spki(LeafKeyType type, X509* cert, EVP_PKEY* key) const;

  LeafKeys& keys_;
  int leaf_days_;
  std::shared_ptr<std::array<SpkiCache, kLeafKeyTypeCount>> spki_ =
      std::make_shared<std::array<SpkiCache, kLeafKeyTypeCount>>();
};

}  // namespace mintgate::tls
