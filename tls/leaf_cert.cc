#include "tls/leaf_cert.h"

#include <array>
#include <cstdint>
#include <memory>
#include <utility>

#include "tls/leaf_minter.h"

namespace mintgate::tls {
namespace {

// Keyed by the address of the leaf's parts buffer, which the entry keeps a reference to: the
// address cannot be reused by another leaf while the entry holds it. A fresh leaf and its
// compact copy share the buffer, and so share the entry.
struct Slot {
  std::shared_ptr<const unsigned char[]> parts;
  X509Ptr cert;
};

std::size_t SlotIndex(const unsigned char* parts) {
  const auto p = reinterpret_cast<std::uintptr_t>(parts);
  return static_cast<std::size_t>((p * 0x9e3779b97f4a7c15ULL) >> 56) % kLeafCertSlots;
}

}  // namespace

X509Ptr LeafCert(const Leaf& leaf) {
  if (leaf.cert != nullptr) return UpRef(leaf.cert.get());
  if (leaf.parts.bytes == nullptr) return nullptr;
  thread_local std::array<Slot, kLeafCertSlots> slots;
  Slot& slot = slots[SlotIndex(leaf.parts.bytes.get())];
  if (slot.parts != leaf.parts.bytes) {
    X509Ptr cert = LeafMinter::Rebuild(leaf);
    if (cert == nullptr) return nullptr;
    slot.cert = std::move(cert);
    slot.parts = leaf.parts.bytes;
  }
  return UpRef(slot.cert.get());
}

}  // namespace mintgate::tls
