// A minted leaf certificate and what is served with it.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "tls/openssl_ptr.h"

namespace mintgate::tls {

enum class LeafKeyType : std::uint8_t { kEcdsaP256 = 0, kRsa2048 = 1 };
inline constexpr int kLeafKeyTypeCount = 2;

// Trusted leaves are signed by a configured profile; untrusted ones by a CA that is never
// offered to clients (used when the real server failed verification).
enum class TrustMode : std::uint8_t { kTrusted = 0, kUntrusted = 1 };

std::string_view ToString(LeafKeyType type);
std::optional<LeafKeyType> ParseLeafKeyType(std::string_view text);  // "ecdsa-p256" | "rsa-2048"

// The certificates sent after the leaf, in order: the signing intermediate (if any), the
// profile's own certificate, then the profile's configured chain. Shared by every leaf that
// one signer mints, never copied per leaf.
struct CertChain {
  std::vector<X509Ptr> certs;
};

struct Leaf {
  X509Ptr cert;
  EvpPkeyPtr key;  // a reference to the shared leaf key of the leaf's key type
  std::shared_ptr<const CertChain> chain;
  std::time_t not_before = 0;
  std::time_t not_after = 0;
};

using LeafPtr = std::shared_ptr<const Leaf>;

}  // namespace mintgate::tls
