// Mints leaf certificates that browsers accept (ENGINEERING.md "Certificates that browsers
// accept"): SAN from structures, EKU serverAuth, CA:FALSE, SHA-256, random 128-bit serial,
// validity from one hour back for leaf_days but never past the signer's not-after, AKI equal
// to the signer's SKI, no SKI of its own. The subject is empty and the SAN critical, as in
// Let's Encrypt's current profiles: clients match names against the SAN only, and skipping
// the subject name saves its canonical encoding on every mint.
// This is the hot path: nothing here parses, duplicates or re-encodes a certificate or key.
// Mint() is thread-safe.
#pragma once

#include <ctime>
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

 private:
  LeafKeys& keys_;
  int leaf_days_;
  const EVP_MD* sha256_;
  // Read-only after construction; encoded into each leaf by X509_add1_ext_i2d.
  BasicConstraintsPtr basic_constraints_;
  BitStringPtr key_usage_ec_;
  BitStringPtr key_usage_rsa_;
  ExtendedKeyUsagePtr server_auth_;
};

}  // namespace mintgate::tls
