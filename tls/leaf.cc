#include "tls/leaf.h"

namespace mintgate::tls {

std::string_view ToString(LeafKeyType type) {
  switch (type) {
    case LeafKeyType::kEcdsaP256:
      return "ecdsa-p256";
    case LeafKeyType::kRsa2048:
      return "rsa-2048";
  }
  return "unknown";
}

std::optional<LeafKeyType> ParseLeafKeyType(std::string_view text) {
  if (text == "ecdsa-p256") return LeafKeyType::kEcdsaP256;
  if (text == "rsa-2048") return LeafKeyType::kRsa2048;
  return std::nullopt;
}

}  // namespace mintgate::tls
