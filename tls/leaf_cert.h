// The X509 a handshake serves for a leaf, whether the leaf holds it (fresh from the minter) or
// is the compact form the cache keeps (tls/leaf.h). A compact leaf's X509 is rebuilt from its
// parts and kept in a small per-thread table, so a host in active use is rebuilt once per
// worker thread, not once per handshake.
#pragma once

#include <cstddef>

#include "tls/leaf.h"
#include "tls/openssl_ptr.h"

namespace mintgate::tls {

// 256 rebuilt certificates per thread (about 2.4 KiB each): bounded, whatever the cache size.
inline constexpr std::size_t kLeafCertSlots = 256;

// A new reference to the leaf's X509; nullptr only when a compact leaf cannot be rebuilt
// (OpenSSL out of memory). No locks: the table is the calling thread's own.
X509Ptr LeafCert(const Leaf& leaf);

}  // namespace mintgate::tls
