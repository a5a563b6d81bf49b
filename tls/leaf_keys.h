// The shared leaf keys: one per key type for the whole process. Generating an RSA key per
// host costs about half a second; a shared key is what every fast minting proxy does. It is
// never the CA's key.
#pragma once

#include <array>
#include <initializer_list>
#include <mutex>

#include "tls/leaf.h"
#include "tls/openssl_ptr.h"

namespace mintgate::tls {

class LeafKeys {
 public:
  // Generates the keys of `eager` now; other types are generated on first use.
  explicit LeafKeys(std::initializer_list<LeafKeyType> eager = {LeafKeyType::kEcdsaP256});
  LeafKeys(const LeafKeys&) = delete;
  LeafKeys& operator=(const LeafKeys&) = delete;

  // Thread-safe. Returns a borrowed pointer that lives as long as this object; nullptr only if
  // key generation failed (OpenSSL out of memory or entropy).
  EVP_PKEY* Get(LeafKeyType type);

 private:
  struct Slot {
    std::once_flag once;
    EvpPkeyPtr key;
  };
  std::array<Slot, kLeafKeyTypeCount> slots_;
};

}  // namespace mintgate::tls
