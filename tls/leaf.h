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

struct Signer;

// What tells one leaf of a signer from another, enough to rebuild its X509 without signing
// again: serial number, SAN extension value, signature (DER pieces, in one buffer).
struct LeafParts {
  std::shared_ptr<const Signer> signer;          // issuer name, algorithms, AKI
  std::shared_ptr<const unsigned char[]> bytes;  // serial | SAN | signature
  std::uint16_t serial_len = 0;
  std::uint16_t san_len = 0;
  std::uint16_t signature_len = 0;
  LeafKeyType key_type = LeafKeyType::kEcdsaP256;
};

// A leaf fresh from LeafMinter holds its X509 (`cert`) and, when it was signed over a
// hand-encoded TBSCertificate, its `parts` as well. The cache keeps only the compact form
// (CompactLeaf: no `cert`), about 2 KiB smaller: an OpenSSL X509 is ~40 allocations. A
// handshake gets the X509 of either form from LeafCert (tls/leaf_cert.h).
struct Leaf {
  X509Ptr cert;    // null in a compact leaf
  EvpPkeyPtr key;  // a reference to the shared leaf key of the leaf's key type
  std::shared_ptr<const CertChain> chain;
  std::time_t not_before = 0;
  std::time_t not_after = 0;
  LeafParts parts;  // parts.bytes null: cannot be rebuilt, so never compacted
};

using LeafPtr = std::shared_ptr<const Leaf>;

// The same leaf without its X509 when it can be rebuilt from its parts, else `leaf` itself.
LeafPtr CompactLeaf(const LeafPtr& leaf);

}  // namespace mintgate::tls
