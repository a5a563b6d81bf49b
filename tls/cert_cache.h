// Bounded, sharded, thread-safe LRU cache of minted leaves with single-flight minting.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tls/leaf.h"
#include "tls/tls_error.h"

namespace mintgate::tls {

// 128 bits of SHA-256 over the sorted extra SAN names; all zero when there are none.
using NamesDigest = std::array<std::uint8_t, 16>;
NamesDigest DigestNames(const std::vector<std::string>& names);

// What identifies one leaf. `host` is the validated, lower-case name or IP literal.
struct CacheKeyView {
  std::uint64_t profile_id = 0;  // CertAuthority::id(): changes when a profile is reloaded
  std::string_view host;
  NamesDigest names{};
  LeafKeyType key_type = LeafKeyType::kEcdsaP256;
  TrustMode trust = TrustMode::kTrusted;
};

struct CertCacheStats {
  std::uint64_t hits = 0;       // Find and Acquire hits
  std::uint64_t misses = 0;     // Find misses and Acquire misses (an expired entry is a miss)
  std::uint64_t mints = 0;      // successful completions (stored unless already expired)
  std::uint64_t coalesced = 0;  // lookups that joined a mint already running
  std::uint64_t evictions = 0;  // LRU evictions and expired entries dropped
  std::uint64_t failures = 0;   // completions with an error
  std::size_t entries = 0;
};

class CertCache {
 public:
  struct Options {
    // A hard bound on size(): shards get max/shards entries each, the first max%shards one
    // more, so the shard count is also capped at the largest power of two <= max_entries.
    // 0 is treated as 1.
    std::size_t max_entries = 100000;
    std::size_t shards = 16;  // rounded up to a power of two
    // An entry stops being served this long before its leaf's not-after (or halfway through
    // the leaf's life, whichever comes first), so a served leaf never expires mid-session.
    std::chrono::seconds expiry_margin = std::chrono::hours(24);
  };

  enum class Outcome { kHit, kMiss, kCoalesced };
  using Waiter = std::function<void(const Result<LeafPtr>&)>;
  struct Acquired {
    Outcome outcome;
    LeafPtr leaf;  // set on kHit only
  };

  static constexpr std::time_t kFrontRefresh = 10;  // seconds

  explicit CertCache(Options options);
  // Complete every kMiss first: waiters of a mint still running are dropped uncalled.
  ~CertCache();
  CertCache(const CertCache&) = delete;
  CertCache& operator=(const CertCache&) = delete;

  // Hit path: no heap allocation. Returns nullptr on a miss or an expired entry (which is
  // dropped). Never joins a running mint. Counts a hit or a miss, like Acquire, so the hit
  // ratio covers every lookup.
  //
  // Each thread keeps a small front table (1,024 entries, two-way) of its recent hits, so a
  // repeated hit touches no cache line that another thread writes: no shard lock, no LRU update. A
  // front entry is trusted for kFrontRefresh; after that the next hit goes to the shard
  // again, which moves the entry to the front of the LRU and refreshes the front. Clear()
  // invalidates every front. A leaf evicted from the shard may still be served from a front
  // until it is overwritten there or expires: leaves are immutable and still valid, and the
  // memory this pins is bounded by 1,024 leaves per thread.
  LeafPtr Find(const CacheKeyView& key, std::time_t now);

  // Single-flight lookup. kHit: `leaf` is set and `waiter` is not kept. kCoalesced: a mint
  // for this key is already running; `waiter` will be called by its Complete. kMiss: the
  // caller now owns the mint and must call Complete exactly once (waiter is not kept: the
  // caller already has the result when it calls Complete).
  Acquired Acquire(const CacheKeyView& key, std::time_t now, Waiter waiter);

  // Finishes the mint started by a kMiss: stores a successful leaf in its compact form
  // (CompactLeaf: what Find and Acquire return later has no X509 of its own; serve it through
  // LeafCert) unless it has already expired at `now`, then calls every coalesced waiter (outside
  // any lock, on this thread, so a waiter may call back into the cache) with the result. An ok
  // result holding nullptr counts as a failure and is not stored.
  void Complete(const CacheKeyView& key, const Result<LeafPtr>& result, std::time_t now);

  // Drops every entry (running mints are unaffected; not counted as evictions).
  void Clear();

  CertCacheStats stats() const;
  std::size_t size() const;

 private:
  struct Shard;
  Shard& ShardFor(std::size_t hash);
  std::time_t ExpiresAt(const Leaf& leaf) const;
  std::uint64_t HashKey(const CacheKeyView& key) const;
  LeafPtr FrontFind(const CacheKeyView& key, std::uint64_t hash, std::time_t now);
  void FrontStore(const CacheKeyView& key, std::uint64_t hash, const LeafPtr& leaf,
                  std::time_t expires_at, std::time_t now, std::uint64_t generation);

  // Front hits, striped per thread so counting them does not share a written cache line.
  struct alignas(64) Stripe {
    std::atomic<std::uint64_t> hits{0};
  };
  static constexpr std::size_t kStripes = 16;

  Options options_;
  std::size_t per_shard_capacity_;  // the largest shard's; the rest hold one less
  // Random per cache: hosts come from client SNI, so bucket placement must not be
  // predictable.
  std::uint64_t seed_;
  std::vector<std::unique_ptr<Shard>> shards_;
  const std::uint64_t id_;  // tells this cache's front entries from another cache's
  std::atomic<std::uint64_t> generation_{1};  // bumped by Clear() to drop every front entry
  std::array<Stripe, kStripes> front_hits_;
};

}  // namespace mintgate::tls
