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

LeafPtr CompactLeaf(const LeafPtr& leaf) {
  if (leaf == nullptr || leaf->cert == nullptr || leaf->parts.bytes == nullptr ||
      leaf->parts.signer == nullptr) {
    return leaf;
  }
  auto compact = std::make_shared<Leaf>();
  compact->key = UpRef(leaf->key.get());
  compact->chain = leaf->chain;
  compact->not_before = leaf->not_before;
  compact->not_after = leaf->not_after;
  compact->parts = leaf->parts;
  return compact;
}

std::optional<LeafKeyType> ParseLeafKeyType(std::string_view text) {
  if (text == "ecdsa-p256") return LeafKeyType::kEcdsaP256;
  if (text == "rsa-2048") return LeafKeyType::kRsa2048;
  return std::nullopt;
}

}  // namespace mintgate::tls
