#include "tls/leaf_keys.h"

#include "tls/legacy_ec_key.h"

namespace mintgate::tls {

LeafKeys::LeafKeys(std::initializer_list<LeafKeyType> eager) {
  for (LeafKeyType t : eager) Get(t);
}

EVP_PKEY* LeafKeys::Get(LeafKeyType type) {
  Slot& slot = slots_[static_cast<std::size_t>(type)];
  std::call_once(slot.once, [&slot, type] {
    slot.key =
        type == LeafKeyType::kEcdsaP256 ? GenerateLegacyEcP256Key() : GenerateLegacyRsaKey(2048);
  });
  return slot.key.get();
}

}  // namespace mintgate::tls
