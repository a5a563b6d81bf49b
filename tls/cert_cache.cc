#include "tls/cert_cache.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <mutex>
#include <random>
#include <unordered_map>
#include <utility>

namespace mintgate::tls {
namespace {

// A wyhash-style hash: a 64x64->128 multiply folds 16 bytes per step, several times faster
// than FNV's byte-at-a-time loop on ~20-byte host names, and it is on every lookup.
__extension__ typedef unsigned __int128 U128;

constexpr std::uint64_t kP0 = 0xa0761d6478bd642fULL;
constexpr std::uint64_t kP1 = 0xe7037ed1a0b428dbULL;
constexpr std::uint64_t kP2 = 0x8ebc6af09c88c6e3ULL;
constexpr std::uint64_t kP3 = 0x589965cc75374cc3ULL;

inline std::uint64_t Mum(std::uint64_t a, std::uint64_t b) {
  const U128 r = static_cast<U128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

inline std::uint64_t Read8(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline std::uint64_t Read4(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::uint64_t HashBytes(const void* data, std::size_t len, std::uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  seed ^= Mum(seed ^ kP0, kP1);
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  if (len <= 16) {
    if (len >= 4) {
      // Two overlapping reads from each end cover 4..16 bytes without a tail loop.
      const std::size_t mid = (len >> 3) << 2;
      a = (Read4(p) << 32) | Read4(p + mid);
      b = (Read4(p + len - 4) << 32) | Read4(p + len - 4 - mid);
    } else if (len > 0) {
      a = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[len >> 1]} << 8) | p[len - 1];
    }
  } else {
    std::size_t left = len;
    while (left > 16) {
      seed = Mum(Read8(p) ^ seed ^ kP1, Read8(p + 8) ^ seed ^ kP2);
      p += 16;
      left -= 16;
    }
    a = Read8(p + left - 16);
    b = Read8(p + left - 8);
  }
  // The seed goes into both factors: a factor an attacker could zero would erase it.
  return Mum(kP1 ^ len, Mum(a ^ seed ^ kP1, b ^ std::rotl(seed, 32) ^ kP2) ^ kP0);
}

// The owned copy of a CacheKeyView that keys the in-flight map (the miss path), with its hash
// kept so rehashing never rehashes the host.
struct StoredKey {
  std::uint64_t hash;
  std::uint64_t profile_id;
  std::string host;
  NamesDigest names;
  LeafKeyType key_type;
  TrustMode trust;
};

// What lookups pass down: the caller's view plus its already computed hash, so a lookup
// neither copies the host nor hashes it twice (once for the shard, once for the table).
struct HashedView {
  const CacheKeyView* key;
  std::uint64_t hash;
};

StoredKey ToStored(const HashedView& v) {
  return StoredKey{v.hash,       v.key->profile_id, std::string(v.key->host),
                   v.key->names, v.key->key_type,   v.key->trust};
}

struct KeyHash {
  using is_transparent = void;
  // noexcept and cheap, so libstdc++ does not cache a second copy of the hash per node.
  std::size_t operator()(const StoredKey& k) const noexcept { return k.hash; }
  std::size_t operator()(const HashedView& v) const noexcept { return v.hash; }
};

struct KeyEq {
  using is_transparent = void;
  bool operator()(const StoredKey& a, const StoredKey& b) const noexcept {
    return a.hash == b.hash && a.profile_id == b.profile_id && a.key_type == b.key_type &&
           a.trust == b.trust && a.names == b.names && a.host == b.host;
  }
  bool operator()(const StoredKey& a, const HashedView& b) const noexcept {
    const CacheKeyView& k = *b.key;
    return a.hash == b.hash && a.profile_id == k.profile_id && a.key_type == k.key_type &&
           a.trust == k.trust && a.names == k.names && a.host == k.host;
  }
  bool operator()(const HashedView& a, const StoredKey& b) const noexcept { return (*this)(b, a); }
};

using InFlightMap = std::unordered_map<StoredKey, std::vector<CertCache::Waiter>, KeyHash, KeyEq>;

constexpr std::uint32_t kNil = 0xffffffff;
constexpr std::size_t kNoSlot = static_cast<std::size_t>(-1);

// One cached leaf in exactly two cache lines, which the adjacent-line prefetcher fetches as
// one: hosts up to kInlineHost bytes (nearly every real SNI) live inside the node, so a hit
// does not chase a pointer to a separate string buffer.
constexpr std::size_t kInlineHost = 58;

struct alignas(64) Node {
  std::uint64_t hash = 0;
  std::uint64_t profile_id = 0;
  NamesDigest names{};
  std::time_t expires_at = 0;
  LeafPtr leaf;                       // null while the node is on the free list
  std::unique_ptr<char[]> long_host;  // only for hosts over kInlineHost bytes
  std::uint32_t host_size = 0;
  LeafKeyType key_type = LeafKeyType::kEcdsaP256;
  TrustMode trust = TrustMode::kTrusted;
  char short_host[kInlineHost];

  std::string_view host() const {
    return {host_size > kInlineHost ? long_host.get() : short_host, host_size};
  }

  bool Matches(const HashedView& v) const {
    const CacheKeyView& k = *v.key;
    return hash == v.hash && profile_id == k.profile_id && key_type == k.key_type &&
           trust == k.trust && names == k.names && host() == k.host;
  }
};
static_assert(sizeof(Node) == 128);

// LRU neighbours by node index, kept apart from the nodes: moving a hit to the front then
// writes to this dense array (8 bytes an entry, mostly in cache) instead of pulling two
// random nodes in from memory.
struct Links {
  std::uint32_t newer = kNil;
  std::uint32_t older = kNil;  // also the free list's next
};

// An open-addressing slot: the low half of the key's hash (which also gives its home slot)
// filters probes without touching nodes.
struct Slot {
  std::uint32_t hash_lo = 0;
  std::uint32_t node = kNil;
};

// The per-thread front table (see CertCache::Find): 512 sets of two entries. Two ways keep
// conflict misses rare at the sizes of a worker's working set; a third key in a set replaces
// the entry refreshed least recently.
constexpr std::size_t kFrontSets = 512;
constexpr std::size_t kFrontWays = 2;

struct FrontEntry {
  std::uint64_t cache_id = 0;  // 0: empty
  std::uint64_t generation = 0;
  std::uint64_t hash = 0;
  std::uint64_t profile_id = 0;
  NamesDigest names{};
  std::time_t expires_at = 0;
  std::time_t refresh_at = 0;
  LeafPtr leaf;
  std::uint8_t host_size = 0;
  LeafKeyType key_type = LeafKeyType::kEcdsaP256;
  TrustMode trust = TrustMode::kTrusted;
  char host[kInlineHost];
};

struct Front {
  std::array<FrontEntry, kFrontSets * kFrontWays> entries;
  std::size_t stripe;
};

std::atomic<std::uint64_t> g_next_cache_id{1};
std::atomic<std::size_t> g_next_stripe{0};

Front& ThreadFront() {
  thread_local Front front{{}, g_next_stripe.fetch_add(1, std::memory_order_relaxed)};
  return front;
}

FrontEntry* FrontSet(Front& front, std::uint64_t hash) {
  // Bits the shard (high half) and slot table (low bits) do not use for their own placement.
  return &front.entries[((hash >> 16) & (kFrontSets - 1)) * kFrontWays];
}

}  // namespace

// An open-addressing table rather than std::unordered_map: a hit is memory bound, and costs
// one probe of `slots` plus one node here, against bucket, node before, node, separately
// allocated host and two LRU neighbours there (measured ~1.4x slower at 100k entries).
// Aligned so two shards' mutexes and counters never share a cache line.
struct alignas(64) CertCache::Shard {
  std::mutex mu;
  // Everything below is guarded by mu.
  std::vector<Slot> slots;  // linear probing, size a power of two, at most half full
  std::vector<Node> nodes;
  std::vector<Links> links;  // parallel to nodes
  std::uint32_t newest = kNil;
  std::uint32_t oldest = kNil;
  std::uint32_t free_head = kNil;
  std::size_t count = 0;
  std::size_t capacity = 1;
  InFlightMap in_flight;
  // Plain counters: every one is bumped while mu is already held for the lookup itself.
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t mints = 0;
  std::uint64_t coalesced = 0;
  std::uint64_t evictions = 0;
  std::uint64_t failures = 0;

  std::size_t Mask() const { return slots.size() - 1; }

  std::size_t FindSlot(const HashedView& key) const {
    if (slots.empty()) return kNoSlot;
    const auto lo = static_cast<std::uint32_t>(key.hash);
    for (std::size_t i = lo & Mask();; i = (i + 1) & Mask()) {
      const Slot s = slots[i];
      if (s.node == kNil) return kNoSlot;
      if (s.hash_lo == lo && nodes[s.node].Matches(key)) return i;
    }
  }

  std::size_t SlotOf(std::uint32_t node) const {
    for (std::size_t i = static_cast<std::uint32_t>(nodes[node].hash) & Mask();;
         i = (i + 1) & Mask()) {
      if (slots[i].node == node) return i;
    }
  }

  static void PutSlot(std::vector<Slot>& table, Slot s) {
    const std::size_t mask = table.size() - 1;
    std::size_t i = s.hash_lo & mask;
    while (table[i].node != kNil) i = (i + 1) & mask;
    table[i] = s;
  }

  // Backward-shift deletion: keeps every probe run unbroken without tombstones.
  void RemoveSlot(std::size_t hole) {
    const std::size_t mask = Mask();
    for (std::size_t i = (hole + 1) & mask;; i = (i + 1) & mask) {
      const Slot s = slots[i];
      if (s.node == kNil) break;
      const std::size_t home = s.hash_lo & mask;
      // `s` may fill the hole only if the hole lies on its probe path from home to i.
      if (((i - home) & mask) >= ((i - hole) & mask)) {
        slots[hole] = s;
        hole = i;
      }
    }
    slots[hole] = Slot{};
  }

  // Makes room for `needed` live entries at most half full. Strong guarantee.
  void ReserveSlots(std::size_t needed) {
    if (needed <= slots.size() / 2) return;
    std::size_t size = std::max<std::size_t>(slots.size(), 16);
    while (size / 2 < needed) size *= 2;
    std::vector<Slot> table(size);
    for (const Slot s : slots) {
      if (s.node != kNil) PutSlot(table, s);
    }
    slots.swap(table);
  }

  void Unlink(std::uint32_t n) {
    Links& l = links[n];
    (l.newer != kNil ? links[l.newer].older : newest) = l.older;
    (l.older != kNil ? links[l.older].newer : oldest) = l.newer;
    l = Links{};
  }

  void PushFront(std::uint32_t n) {
    links[n] = Links{kNil, newest};
    (newest != kNil ? links[newest].newer : oldest) = n;
    newest = n;
  }

  void EraseAt(std::size_t slot) {
    const std::uint32_t n = slots[slot].node;
    RemoveSlot(slot);
    Unlink(n);
    nodes[n].leaf.reset();
    nodes[n].long_host.reset();
    links[n].older = free_head;
    free_head = n;
    --count;
    ++evictions;
  }

  // The live entry for `key`, moved to the front; an expired one is dropped.
  LeafPtr FindLocked(const HashedView& key, std::time_t now, std::time_t* expires_at) {
    const std::size_t slot = FindSlot(key);
    if (slot == kNoSlot) return nullptr;
    const std::uint32_t n = slots[slot].node;
    if (now >= nodes[n].expires_at) {
      EraseAt(slot);
      return nullptr;
    }
    if (n != newest) {
      Unlink(n);
      PushFront(n);
    }
    *expires_at = nodes[n].expires_at;
    return nodes[n].leaf;
  }

  void StoreLocked(const HashedView& key, LeafPtr leaf, std::time_t expires_at) {
    if (const std::size_t slot = FindSlot(key); slot != kNoSlot) {
      // Only reachable if a Complete was not paired with a kMiss; the newer leaf wins.
      const std::uint32_t n = slots[slot].node;
      nodes[n].leaf = std::move(leaf);
      nodes[n].expires_at = expires_at;
      Unlink(n);
      PushFront(n);
      return;
    }
    // Everything that can throw comes first, so a bad_alloc leaves the shard consistent.
    const std::string_view host = key.key->host;
    std::unique_ptr<char[]> long_host;
    if (host.size() > kInlineHost) {
      long_host = std::make_unique_for_overwrite<char[]>(host.size());
      std::memcpy(long_host.get(), host.data(), host.size());
    }
    ReserveSlots(std::min(count + 1, capacity));
    if (free_head == kNil &&
        (nodes.size() == nodes.capacity() || links.size() == links.capacity())) {
      const std::size_t grown = std::min(std::max<std::size_t>(16, nodes.size() * 2), capacity);
      nodes.reserve(grown);
      links.reserve(grown);
    }

    while (count >= capacity && oldest != kNil) EraseAt(SlotOf(oldest));
    std::uint32_t n = free_head;
    if (n != kNil) {
      free_head = links[n].older;
    } else {
      n = static_cast<std::uint32_t>(nodes.size());
      nodes.emplace_back();
      links.emplace_back();
    }
    Node& node = nodes[n];
    node.hash = key.hash;
    node.profile_id = key.key->profile_id;
    node.names = key.key->names;
    node.key_type = key.key->key_type;
    node.trust = key.key->trust;
    node.expires_at = expires_at;
    node.leaf = std::move(leaf);
    node.host_size = static_cast<std::uint32_t>(host.size());
    if (long_host == nullptr) {
      std::copy(host.begin(), host.end(), node.short_host);
    }
    node.long_host = std::move(long_host);
    PutSlot(slots, Slot{static_cast<std::uint32_t>(key.hash), n});
    PushFront(n);
    ++count;
  }
};

NamesDigest DigestNames(const std::vector<std::string>& names) {
  NamesDigest digest{};
  if (names.empty()) return digest;
  std::vector<std::string> sorted = names;
  for (std::string& name : sorted) {
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }
  std::sort(sorted.begin(), sorted.end());
  std::string joined;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0) joined.push_back('\0');
    joined += sorted[i];
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(joined.data(), joined.size(), md, &md_len, EVP_sha256(), nullptr) == 1 &&
      md_len >= digest.size()) {
    std::memcpy(digest.data(), md, digest.size());
    return digest;
  }
  // Only on a broken OpenSSL setup. The all-zero digest would make this set share leaves
  // with "no names", so fall back to a deterministic non-cryptographic digest instead.
  DrainOpenSslErrors();
  const std::uint64_t lo = HashBytes(joined.data(), joined.size(), kP2);
  const std::uint64_t hi = HashBytes(joined.data(), joined.size(), kP3) | 1;
  std::memcpy(digest.data(), &lo, sizeof lo);
  std::memcpy(digest.data() + sizeof lo, &hi, sizeof hi);
  return digest;
}

CertCache::CertCache(Options options)
    : options_(options), id_(g_next_cache_id.fetch_add(1, std::memory_order_relaxed)) {
  // Node indices are 32-bit; nobody needs two billion cached leaves.
  options_.max_entries = std::clamp<std::size_t>(options_.max_entries, 1, std::size_t{1} << 31);
  // Capped first so bit_ceil cannot overflow, then so every shard holds at least one entry.
  std::size_t shards = std::clamp<std::size_t>(options_.shards, 1, std::size_t{1} << 16);
  shards = std::min(std::bit_ceil(shards), std::bit_floor(options_.max_entries));
  options_.shards = shards;
  per_shard_capacity_ = (options_.max_entries + shards - 1) / shards;

  std::random_device rd;
  seed_ = (std::uint64_t{rd()} << 32) ^ rd();

  shards_.reserve(shards);
  const std::size_t base = options_.max_entries / shards;
  const std::size_t extra = options_.max_entries % shards;
  for (std::size_t i = 0; i < shards; ++i) {
    auto shard = std::make_unique<Shard>();
    shard->capacity = base + (i < extra ? 1 : 0);
    shards_.push_back(std::move(shard));
  }
}

CertCache::~CertCache() = default;

std::uint64_t CertCache::HashKey(const CacheKeyView& key) const {
  std::uint64_t h = HashBytes(key.host.data(), key.host.size(), seed_ ^ key.profile_id);
  h = Mum(h ^ Read8(key.names.data()) ^ kP2, Read8(key.names.data() + 8) ^ kP3);
  const std::uint64_t kind = (std::uint64_t{static_cast<std::uint8_t>(key.key_type)} << 8) |
                             static_cast<std::uint8_t>(key.trust);
  return Mum(h ^ kP0, kind ^ kP1);
}

CertCache::Shard& CertCache::ShardFor(std::size_t hash) {
  // The high half picks the shard; the slot tables use the low half.
  return *shards_[(static_cast<std::uint64_t>(hash) >> 32) & (shards_.size() - 1)];
}

std::time_t CertCache::ExpiresAt(const Leaf& leaf) const {
  const std::time_t life = std::max<std::time_t>(leaf.not_after - leaf.not_before, 0);
  const std::time_t margin =
      std::min<std::time_t>(static_cast<std::time_t>(options_.expiry_margin.count()), life / 2);
  return leaf.not_after - std::max<std::time_t>(margin, 0);
}

LeafPtr CertCache::FrontFind(const CacheKeyView& key, std::uint64_t hash, std::time_t now) {
  Front& front = ThreadFront();
  const FrontEntry* set = FrontSet(front, hash);
  const std::uint64_t generation = generation_.load(std::memory_order_acquire);
  for (std::size_t way = 0; way < kFrontWays; ++way) {
    const FrontEntry& e = set[way];
    if (e.cache_id != id_ || e.hash != hash || e.generation != generation || now >= e.refresh_at ||
        now >= e.expires_at || e.profile_id != key.profile_id || e.key_type != key.key_type ||
        e.trust != key.trust || e.names != key.names ||
        std::string_view(e.host, e.host_size) != key.host) {
      continue;
    }
    front_hits_[front.stripe % kStripes].hits.fetch_add(1, std::memory_order_relaxed);
    return e.leaf;
  }
  return nullptr;
}

void CertCache::FrontStore(const CacheKeyView& key, std::uint64_t hash, const LeafPtr& leaf,
                           std::time_t expires_at, std::time_t now, std::uint64_t generation) {
  if (key.host.size() > kInlineHost) return;  // rare; such hosts always use the shard
  FrontEntry* set = FrontSet(ThreadFront(), hash);
  FrontEntry* victim = &set[0];
  for (std::size_t way = 0; way < kFrontWays; ++way) {
    FrontEntry& e = set[way];
    if (e.cache_id == id_ && e.hash == hash) {  // the same key (or a stale copy of it)
      victim = &e;
      break;
    }
    if (e.refresh_at < victim->refresh_at) victim = &e;
  }
  FrontEntry& e = *victim;
  e.cache_id = id_;
  e.generation = generation;
  e.hash = hash;
  e.profile_id = key.profile_id;
  e.names = key.names;
  e.expires_at = expires_at;
  e.refresh_at = now + kFrontRefresh;
  e.leaf = leaf;
  e.host_size = static_cast<std::uint8_t>(key.host.size());
  e.key_type = key.key_type;
  e.trust = key.trust;
  std::copy(key.host.begin(), key.host.end(), e.host);
}

LeafPtr CertCache::Find(const CacheKeyView& key, std::time_t now) {
  const HashedView view{&key, HashKey(key)};
  // Read before the shard: an entry found before a concurrent Clear() then carries the old
  // generation into the front and is never served from there.
  const std::uint64_t generation = generation_.load(std::memory_order_acquire);
  if (LeafPtr leaf = FrontFind(key, view.hash, now)) return leaf;
  Shard& shard = ShardFor(view.hash);
  LeafPtr leaf;
  std::time_t expires_at = 0;
  {
    std::lock_guard lock(shard.mu);
    leaf = shard.FindLocked(view, now, &expires_at);
    ++(leaf ? shard.hits : shard.misses);
  }
  if (leaf) FrontStore(key, view.hash, leaf, expires_at, now, generation);
  return leaf;
}

CertCache::Acquired CertCache::Acquire(const CacheKeyView& key, std::time_t now, Waiter waiter) {
  const HashedView view{&key, HashKey(key)};
  const std::uint64_t generation = generation_.load(std::memory_order_acquire);
  if (LeafPtr leaf = FrontFind(key, view.hash, now)) return {Outcome::kHit, std::move(leaf)};
  Shard& shard = ShardFor(view.hash);
  std::unique_lock lock(shard.mu);
  std::time_t expires_at = 0;
  if (LeafPtr leaf = shard.FindLocked(view, now, &expires_at)) {
    ++shard.hits;
    lock.unlock();
    FrontStore(key, view.hash, leaf, expires_at, now, generation);
    return {Outcome::kHit, std::move(leaf)};
  }
  if (const auto it = shard.in_flight.find(view); it != shard.in_flight.end()) {
    it->second.push_back(std::move(waiter));
    ++shard.coalesced;
    return {Outcome::kCoalesced, nullptr};
  }
  shard.in_flight.try_emplace(ToStored(view));
  ++shard.misses;
  return {Outcome::kMiss, nullptr};
}

void CertCache::Complete(const CacheKeyView& key, const Result<LeafPtr>& result, std::time_t now) {
  const HashedView view{&key, HashKey(key)};
  Shard& shard = ShardFor(view.hash);
  // The cache keeps the compact form (no X509, ~2 KiB less); the waiters get the leaf as
  // minted. Made before the lock: it allocates.
  const LeafPtr stored = result.ok() ? CompactLeaf(*result) : nullptr;
  std::vector<Waiter> waiters;
  {
    std::lock_guard lock(shard.mu);
    if (stored != nullptr) {
      ++shard.mints;
      const std::time_t expires_at = ExpiresAt(*stored);
      if (now < expires_at) shard.StoreLocked(view, stored, expires_at);
    } else {
      ++shard.failures;
    }
    if (const auto it = shard.in_flight.find(view); it != shard.in_flight.end()) {
      waiters = std::move(it->second);
      shard.in_flight.erase(it);
    }
  }
  // Outside the lock: a waiter may well look the key up again, or start another mint.
  for (Waiter& waiter : waiters) {
    if (waiter) waiter(result);
  }
}

void CertCache::Clear() {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  for (const auto& shard : shards_) {
    std::vector<Node> dropped;
    {
      std::lock_guard lock(shard->mu);
      dropped.swap(shard->nodes);
      shard->slots.clear();
      shard->links.clear();
      shard->newest = shard->oldest = shard->free_head = kNil;
      shard->count = 0;
    }
    // `dropped` frees its leaves here, after the lock is released.
  }
}

CertCacheStats CertCache::stats() const {
  CertCacheStats total;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mu);
    total.hits += shard->hits;
    total.misses += shard->misses;
    total.mints += shard->mints;
    total.coalesced += shard->coalesced;
    total.evictions += shard->evictions;
    total.failures += shard->failures;
    total.entries += shard->count;
  }
  for (const Stripe& stripe : front_hits_)
    total.hits += stripe.hits.load(std::memory_order_relaxed);
  return total;
}

std::size_t CertCache::size() const {
  std::size_t total = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mu);
    total += shard->count;
  }
  return total;
}

}  // namespace mintgate::tls
