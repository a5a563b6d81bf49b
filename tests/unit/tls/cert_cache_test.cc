#include "tls/cert_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

// Counting replacements of the global allocation functions, to prove the hit path does not
// allocate. Only allocations made on a thread that switched counting on are counted, so
// GoogleTest and other tests in this binary are unaffected.
namespace {
thread_local bool t_count_allocations = false;
thread_local std::size_t t_allocations = 0;

void* CountedAlloc(std::size_t size) {
  if (t_count_allocations) ++t_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void* CountedAlignedAlloc(std::size_t size, std::align_val_t align) {
  if (t_count_allocations) ++t_allocations;
  const auto a = static_cast<std::size_t>(align);
  const std::size_t rounded = (size + a - 1) / a * a;
  if (void* p = std::aligned_alloc(a, rounded == 0 ? a : rounded)) return p;
  throw std::bad_alloc();
}
}  // namespace

// These replace the global allocation functions, so free() is the right match for what
// CountedAlloc returns; GCC 12 at -O1 (the tsan preset) inlines the replacement into
// gtest and calls the pair mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) { return CountedAlloc(size); }
void* operator new[](std::size_t size) { return CountedAlloc(size); }
void* operator new(std::size_t size, std::align_val_t align) {
  return CountedAlignedAlloc(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return CountedAlignedAlloc(size, align);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace mintgate::tls {
namespace {

using Outcome = CertCache::Outcome;
using std::chrono::hours;
using std::chrono::seconds;

constexpr std::time_t kNow = 1'700'000'000;
constexpr std::time_t kDay = 86400;

LeafPtr MakeLeaf(std::time_t not_before = kNow - kDay, std::time_t not_after = kNow + 90 * kDay) {
  auto leaf = std::make_shared<Leaf>();
  leaf->not_before = not_before;
  leaf->not_after = not_after;
  return leaf;
}

CacheKeyView Key(std::string_view host, std::uint64_t profile_id = 1) {
  CacheKeyView key;
  key.profile_id = profile_id;
  key.host = host;
  return key;
}

CertCache::Options Opts(std::size_t max_entries, std::size_t shards, seconds margin = hours(24)) {
  CertCache::Options options;
  options.max_entries = max_entries;
  options.shards = shards;
  options.expiry_margin = margin;
  return options;
}

// Stores `leaf` the way the gateway does: a kMiss, then its Complete.
void Put(CertCache& cache, const CacheKeyView& key, const LeafPtr& leaf, std::time_t now = kNow) {
  ASSERT_EQ(cache.Acquire(key, now, nullptr).outcome, Outcome::kMiss);
  cache.Complete(key, leaf, now);
}

TEST(CertCacheTest, HitAfterComplete) {
  CertCache cache(Opts(100, 4));
  const CacheKeyView key = Key("www.example.com");
  const LeafPtr leaf = MakeLeaf();

  const CertCache::Acquired first = cache.Acquire(key, kNow, nullptr);
  EXPECT_EQ(first.outcome, Outcome::kMiss);
  EXPECT_EQ(first.leaf, nullptr);
  cache.Complete(key, leaf, kNow);

  EXPECT_EQ(cache.Find(key, kNow), leaf);
  const CertCache::Acquired second = cache.Acquire(key, kNow, nullptr);
  EXPECT_EQ(second.outcome, Outcome::kHit);
  EXPECT_EQ(second.leaf, leaf);

  const CertCacheStats stats = cache.stats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.mints, 1u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(CertCacheTest, CountsMissesOfFindAndAcquire) {
  CertCache cache(Opts(100, 4));
  const CacheKeyView key = Key("www.example.com");

  EXPECT_EQ(cache.Find(key, kNow), nullptr);
  EXPECT_EQ(cache.Acquire(key, kNow, nullptr).outcome, Outcome::kMiss);
  // Find never joins the running mint: it is just another miss.
  EXPECT_EQ(cache.Find(key, kNow), nullptr);

  CertCacheStats stats = cache.stats();
  EXPECT_EQ(stats.misses, 3u);
  EXPECT_EQ(stats.hits, 0u);
  EXPECT_EQ(stats.coalesced, 0u);

  cache.Complete(key, MakeLeaf(), kNow);
  stats = cache.stats();
  EXPECT_EQ(stats.mints, 1u);
  EXPECT_EQ(stats.misses, 3u);
}

TEST(CertCacheTest, KeysDifferingInOneFieldDoNotCollide) {
  CertCache cache(Opts(100, 4));
  const CacheKeyView base = Key("www.example.com");
  CacheKeyView other_profile = base;
  other_profile.profile_id = 2;
  CacheKeyView other_names = base;
  other_names.names = DigestNames({"api.example.com"});
  CacheKeyView other_type = base;
  other_type.key_type = LeafKeyType::kRsa2048;
  CacheKeyView other_trust = base;
  other_trust.trust = TrustMode::kUntrusted;
  const std::vector<CacheKeyView> keys = {base, other_profile, other_names, other_type,
                                          other_trust};

  Put(cache, base, MakeLeaf());
  for (std::size_t i = 1; i < keys.size(); ++i) {
    EXPECT_EQ(cache.Find(keys[i], kNow), nullptr) << "key " << i;
  }

  std::vector<LeafPtr> leaves;
  leaves.push_back(cache.Find(base, kNow));
  for (std::size_t i = 1; i < keys.size(); ++i) {
    leaves.push_back(MakeLeaf());
    Put(cache, keys[i], leaves.back());
  }
  EXPECT_EQ(cache.size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(cache.Find(keys[i], kNow), leaves[i]) << "key " << i;
  }
}

TEST(CertCacheTest, ClearDropsEntriesButNotRunningMints) {
  CertCache cache(Opts(100, 4));
  const CacheKeyView stored = Key("stored.example");
  const CacheKeyView running = Key("running.example");
  Put(cache, stored, MakeLeaf());
  ASSERT_EQ(cache.Acquire(running, kNow, nullptr).outcome, Outcome::kMiss);

  cache.Clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.Find(stored, kNow), nullptr);

  int calls = 0;
  EXPECT_EQ(cache.Acquire(running, kNow, [&](const Result<LeafPtr>&) { ++calls; }).outcome,
            Outcome::kCoalesced);
  const LeafPtr leaf = MakeLeaf();
  cache.Complete(running, leaf, kNow);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(cache.Find(running, kNow), leaf);
}

TEST(CertCacheLruTest, EvictsLeastRecentlyUsed) {
  CertCache cache(Opts(3, 1));
  // Each touch comes kFrontRefresh after the previous one, so it reaches the shard and moves
  // the entry in the LRU (a repeated hit within kFrontRefresh is served by the thread's front
  // table and does not; see FrontHitsWithinRefreshDoNotReorderTheLru).
  std::time_t t = kNow;
  auto later = [&t] { return t += CertCache::kFrontRefresh; };
  const CacheKeyView a = Key("a.example");
  const CacheKeyView b = Key("b.example");
  const CacheKeyView c = Key("c.example");
  const CacheKeyView d = Key("d.example");
  const CacheKeyView e = Key("e.example");
  const LeafPtr leaf_a = MakeLeaf();
  Put(cache, a, leaf_a);
  Put(cache, b, MakeLeaf());
  Put(cache, c, MakeLeaf());

  // Touching `a` makes `b` the least recently used.
  EXPECT_EQ(cache.Find(a, later()), leaf_a);
  Put(cache, d, MakeLeaf());
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Find(b, later()), nullptr);
  EXPECT_NE(cache.Find(c, later()), nullptr);
  EXPECT_NE(cache.Find(a, later()), nullptr);
  EXPECT_NE(cache.Find(d, later()), nullptr);

  // The Finds above (c, then a, then d) left c the least recently used.
  Put(cache, e, MakeLeaf());
  EXPECT_EQ(cache.Find(c, later()), nullptr);
  EXPECT_NE(cache.Find(a, later()), nullptr);
  EXPECT_NE(cache.Find(d, later()), nullptr);
  EXPECT_NE(cache.Find(e, later()), nullptr);
  EXPECT_EQ(cache.stats().evictions, 2u);
}

TEST(CertCacheLruTest, AcquireHitAlsoProtectsEntry) {
  CertCache cache(Opts(2, 1));
  const CacheKeyView a = Key("a.example");
  const CacheKeyView b = Key("b.example");
  const CacheKeyView c = Key("c.example");
  Put(cache, a, MakeLeaf());
  Put(cache, b, MakeLeaf());
  EXPECT_EQ(cache.Acquire(a, kNow, nullptr).outcome, Outcome::kHit);
  Put(cache, c, MakeLeaf());
  EXPECT_NE(cache.Find(a, kNow), nullptr);
  EXPECT_EQ(cache.Find(b, kNow), nullptr);
}

TEST(CertCacheLruTest, CapacityBoundHoldsWithManyShards) {
  struct Case {
    std::size_t max_entries;
    std::size_t shards;
    std::size_t expected_size;
  };
  // More shards than entries, a count that does not divide evenly, and 0 (treated as 1).
  for (const Case& c :
       {Case{100, 16, 100}, Case{10, 64, 10}, Case{1000, 7, 1000}, Case{0, 4, 1}, Case{3, 1, 3}}) {
    CertCache cache(Opts(c.max_entries, c.shards));
    std::vector<std::string> hosts;
    for (int i = 0; i < 5000; ++i) hosts.push_back("host-" + std::to_string(i) + ".example");
    for (const std::string& host : hosts) {
      Put(cache, Key(host), MakeLeaf());
      ASSERT_LE(cache.size(), std::max<std::size_t>(c.max_entries, 1));
    }
    // With 5000 keys every shard is full, so the shard capacities add up to the bound.
    EXPECT_EQ(cache.size(), c.expected_size) << c.max_entries << "/" << c.shards;
    const CertCacheStats stats = cache.stats();
    EXPECT_EQ(stats.entries, c.expected_size);
    EXPECT_EQ(stats.evictions, hosts.size() - c.expected_size);
  }
}

TEST(CertCacheLruTest, KeepsExactlyTheMostRecentEntries) {
  constexpr int kCapacity = 50;
  CertCache cache(Opts(kCapacity, 1));
  std::vector<std::string> hosts;
  std::vector<LeafPtr> leaves;
  for (int i = 0; i < 2000; ++i) {
    hosts.push_back("h" + std::to_string(i) + ".example");
    leaves.push_back(MakeLeaf());
    Put(cache, Key(hosts.back()), leaves.back());
  }
  for (int i = 0; i < 2000 - kCapacity; ++i) {
    ASSERT_EQ(cache.Find(Key(hosts[i]), kNow), nullptr) << hosts[i];
  }
  for (int i = 2000 - kCapacity; i < 2000; ++i) {
    ASSERT_EQ(cache.Find(Key(hosts[i]), kNow), leaves[i]) << hosts[i];
  }
}

TEST(CertCacheExpiryTest, ServedUntilExpiresAt) {
  CertCache cache(Opts(100, 4, hours(24)));
  const CacheKeyView key = Key("www.example.com");
  const LeafPtr leaf = MakeLeaf(kNow - kDay, kNow + 90 * kDay);
  const std::time_t expires_at = leaf->not_after - kDay;
  Put(cache, key, leaf);

  EXPECT_EQ(cache.Find(key, expires_at - 1), leaf);
  EXPECT_EQ(cache.Find(key, expires_at), nullptr);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.stats().evictions, 1u);
  // Another thread (with an empty front table) sees it gone from the shard too.
  LeafPtr seen = leaf;
  std::thread([&] { seen = cache.Find(key, expires_at - 1); }).join();
  EXPECT_EQ(seen, nullptr) << "dropped, not just hidden";
}

TEST(CertCacheFrontTest, RepeatedHitsAreCountedAndClearInvalidatesFronts) {
  CertCache cache(Opts(100, 4));
  const CacheKeyView key = Key("front.example");
  const LeafPtr leaf = MakeLeaf();
  Put(cache, key, leaf);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(cache.Find(key, kNow), leaf);
  EXPECT_EQ(cache.Acquire(key, kNow, nullptr).leaf, leaf);
  EXPECT_EQ(cache.stats().hits, 6u);
  cache.Clear();
  EXPECT_EQ(cache.Find(key, kNow), nullptr) << "a front entry survived Clear()";
  EXPECT_EQ(cache.Acquire(key, kNow, nullptr).outcome, CertCache::Outcome::kMiss);
}

TEST(CertCacheFrontTest, FrontHitsWithinRefreshDoNotReorderTheLru) {
  const CacheKeyView a = Key("a.example");
  const CacheKeyView b = Key("b.example");
  const CacheKeyView c = Key("c.example");
  // Which of a and b survives adding c, when a's last touch comes `delay` after its first.
  auto survivor = [&](std::time_t delay) {
    CertCache cache(Opts(2, 1));
    Put(cache, a, MakeLeaf());
    Put(cache, b, MakeLeaf());
    EXPECT_NE(cache.Find(a, kNow), nullptr);  // reaches the shard, fills this thread's front
    EXPECT_NE(cache.Find(b, kNow), nullptr);  // b is now the most recent in the LRU
    EXPECT_NE(cache.Find(a, kNow + delay), nullptr);
    Put(cache, c, MakeLeaf());
    // Asked from another thread, whose front is empty, so only the shard answers.
    std::string kept;
    std::thread([&] {
      if (cache.Find(a, kNow + delay) != nullptr) kept += "a";
      if (cache.Find(b, kNow + delay) != nullptr) kept += "b";
    }).join();
    return kept;
  };
  EXPECT_EQ(survivor(1), "b");                         // a front hit: the LRU never saw it
  EXPECT_EQ(survivor(CertCache::kFrontRefresh), "a");  // refreshed through the shard
}

TEST(CertCacheFrontTest, FrontsOfDifferentCachesDoNotMix) {
  CertCache one(Opts(10, 1));
  CertCache two(Opts(10, 1));
  const CacheKeyView key = Key("shared.example");
  const LeafPtr leaf = MakeLeaf();
  Put(one, key, leaf);
  EXPECT_EQ(one.Find(key, kNow), leaf);
  EXPECT_EQ(two.Find(key, kNow), nullptr);
}

TEST(CertCacheExpiryTest, AcquireTreatsExpiredEntryAsMiss) {
  CertCache cache(Opts(100, 4, hours(24)));
  const CacheKeyView key = Key("www.example.com");
  const LeafPtr leaf = MakeLeaf(kNow - kDay, kNow + 10 * kDay);
  Put(cache, key, leaf);

  const std::time_t later = leaf->not_after - kDay + 1;
  EXPECT_EQ(cache.Acquire(key, later, nullptr).outcome, Outcome::kMiss);
  EXPECT_EQ(cache.stats().evictions, 1u);
  const LeafPtr fresh = MakeLeaf(later, later + 10 * kDay);
  cache.Complete(key, fresh, later);
  EXPECT_EQ(cache.Find(key, later), fresh);
}

TEST(CertCacheExpiryTest, MarginClampedToHalfLifeForShortLeaves) {
  CertCache cache(Opts(100, 4, hours(24)));
  const CacheKeyView key = Key("short.example");
  const LeafPtr leaf = MakeLeaf(kNow, kNow + 3600);  // a one-hour leaf: half life 1800 s
  Put(cache, key, leaf);

  EXPECT_EQ(cache.Find(key, kNow + 1799), leaf);
  EXPECT_EQ(cache.Find(key, kNow + 1800), nullptr);
}

TEST(CertCacheExpiryTest, LeafExpiredOnArrivalIsHandedOutButNotStored) {
  CertCache cache(Opts(100, 4, hours(24)));
  const CacheKeyView key = Key("late.example");
  const LeafPtr leaf = MakeLeaf(kNow - 10 * kDay, kNow + kDay / 2);
  ASSERT_EQ(cache.Acquire(key, kNow, nullptr).outcome, Outcome::kMiss);
  LeafPtr received;
  ASSERT_EQ(cache.Acquire(key, kNow, [&](const Result<LeafPtr>& r) { received = *r; }).outcome,
            Outcome::kCoalesced);
  cache.Complete(key, leaf, kNow);
  EXPECT_EQ(received, leaf);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(CertCacheExpiryTest, DroppingExpiredEntriesKeepsTheRestReachable) {
  CertCache cache(Opts(1000, 1, seconds(0)));
  std::vector<std::string> hosts;
  std::vector<LeafPtr> leaves;
  for (int i = 0; i < 600; ++i) {
    hosts.push_back("e" + std::to_string(i) + ".example");
    leaves.push_back(MakeLeaf(kNow - kDay, i % 2 == 0 ? kNow + 10 : kNow + kDay));
    Put(cache, Key(hosts.back()), leaves.back());
  }
  const std::time_t later = kNow + 20;
  for (int i = 0; i < 600; i += 2) ASSERT_EQ(cache.Find(Key(hosts[i]), later), nullptr);
  EXPECT_EQ(cache.size(), 300u);
  for (int i = 1; i < 600; i += 2) ASSERT_EQ(cache.Find(Key(hosts[i]), later), leaves[i]);

  // The freed entries are reused.
  for (int i = 0; i < 600; i += 2) {
    leaves[i] = MakeLeaf(kNow - kDay, kNow + kDay);
    Put(cache, Key(hosts[i]), leaves[i], later);
  }
  EXPECT_EQ(cache.size(), 600u);
  for (int i = 0; i < 600; ++i) ASSERT_EQ(cache.Find(Key(hosts[i]), later), leaves[i]);
}

TEST(CertCacheSingleFlightTest, FailureResumesWaitersAndCachesNothing) {
  CertCache cache(Opts(100, 4));
  const CacheKeyView key = Key("broken.example");
  ASSERT_EQ(cache.Acquire(key, kNow, nullptr).outcome, Outcome::kMiss);

  std::vector<std::string> errors;
  for (int i = 0; i < 3; ++i) {
    const CertCache::Acquired a = cache.Acquire(key, kNow, [&](const Result<LeafPtr>& r) {
      EXPECT_FALSE(r.ok());
      if (!r.ok()) errors.push_back(r.error());
    });
    EXPECT_EQ(a.outcome, Outcome::kCoalesced);
    EXPECT_EQ(a.leaf, nullptr);
  }
  cache.Complete(key, Error{"signing failed"}, kNow);

  EXPECT_EQ(errors, std::vector<std::string>(3, "signing failed"));
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.Find(key, kNow), nullptr);
  CertCacheStats stats = cache.stats();
  EXPECT_EQ(stats.failures, 1u);
  EXPECT_EQ(stats.mints, 0u);
  EXPECT_EQ(stats.coalesced, 3u);

  // The failed mint no longer counts as running: the next lookup mints again.
  EXPECT_EQ(cache.Acquire(key, kNow, nullptr).outcome, Outcome::kMiss);
  cache.Complete(key, MakeLeaf(), kNow);
  EXPECT_NE(cache.Find(key, kNow), nullptr);
}

TEST(CertCacheSingleFlightTest, NullLeafCountsAsFailure) {
  CertCache cache(Opts(100, 4));
  const CacheKeyView key = Key("null.example");
  ASSERT_EQ(cache.Acquire(key, kNow, nullptr).outcome, Outcome::kMiss);
  cache.Complete(key, LeafPtr{}, kNow);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.stats().failures, 1u);
  EXPECT_EQ(cache.stats().mints, 0u);
}

TEST(CertCacheSingleFlightTest, ThreadsRacingOnOneKeyMintOnce) {
  constexpr int kThreads = 8;
  for (int round = 0; round < 20; ++round) {
    CertCache cache(Opts(100, 4));
    const CacheKeyView key = Key("race.example");
    const LeafPtr leaf = MakeLeaf();
    std::latch start(kThreads);
    std::latch acquired(kThreads);
    std::vector<Outcome> outcomes(kThreads, Outcome::kHit);
    std::vector<LeafPtr> received(kThreads);
    std::atomic<int> waiter_calls{0};

    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        const CertCache::Acquired a = cache.Acquire(key, kNow, [&, i](const Result<LeafPtr>& r) {
          EXPECT_TRUE(r.ok());
          if (r.ok()) received[i] = *r;
          waiter_calls.fetch_add(1, std::memory_order_relaxed);
        });
        outcomes[i] = a.outcome;
        // The minter completes only after every thread has looked up, so none of them can
        // see a plain hit.
        acquired.arrive_and_wait();
        if (a.outcome == Outcome::kMiss) {
          received[i] = leaf;
          cache.Complete(key, leaf, kNow);
        }
      });
    }
    for (std::thread& t : threads) t.join();

    int misses = 0;
    int coalesced = 0;
    for (Outcome o : outcomes) {
      misses += o == Outcome::kMiss ? 1 : 0;
      coalesced += o == Outcome::kCoalesced ? 1 : 0;
    }
    EXPECT_EQ(misses, 1);
    EXPECT_EQ(coalesced, kThreads - 1);
    EXPECT_EQ(waiter_calls.load(), kThreads - 1);
    for (const LeafPtr& r : received) EXPECT_EQ(r, leaf);
    const CertCacheStats stats = cache.stats();
    EXPECT_EQ(stats.mints, 1u);
    EXPECT_EQ(stats.misses, 1u);
    EXPECT_EQ(stats.coalesced, static_cast<std::uint64_t>(kThreads - 1));
    EXPECT_EQ(cache.Find(key, kNow), leaf);
  }
}

TEST(CertCacheSingleFlightTest, WaiterMayReenterTheCache) {
  CertCache cache(Opts(10, 1));  // one shard: every key shares the mutex
  const CacheKeyView key = Key("a.example");
  const CacheKeyView other = Key("b.example");
  const LeafPtr leaf = MakeLeaf();
  const LeafPtr other_leaf = MakeLeaf();
  ASSERT_EQ(cache.Acquire(key, kNow, nullptr).outcome, Outcome::kMiss);

  Outcome same_again = Outcome::kMiss;
  LeafPtr found;
  Outcome other_outcome = Outcome::kHit;
  bool called = false;
  ASSERT_EQ(cache
                .Acquire(key, kNow,
                         [&](const Result<LeafPtr>&) {
                           called = true;
                           same_again = cache.Acquire(key, kNow, nullptr).outcome;
                           found = cache.Find(key, kNow);
                           other_outcome = cache.Acquire(other, kNow, nullptr).outcome;
                           if (other_outcome == Outcome::kMiss) {
                             cache.Complete(other, other_leaf, kNow);
                           }
                         })
                .outcome,
            Outcome::kCoalesced);
  cache.Complete(key, leaf, kNow);

  EXPECT_TRUE(called);
  EXPECT_EQ(same_again, Outcome::kHit);
  EXPECT_EQ(found, leaf);
  EXPECT_EQ(other_outcome, Outcome::kMiss);
  EXPECT_EQ(cache.Find(other, kNow), other_leaf);
}

TEST(CertCacheStressTest, RandomOperationsKeepCountersConsistent) {
  constexpr int kThreads = 8;
  constexpr int kKeys = 64;
  constexpr int kIterations = 4000;
  constexpr std::size_t kCapacity = 32;  // below kKeys, so evictions run all the time
  CertCache cache(Opts(kCapacity, 4));

  std::vector<std::string> hosts;
  std::vector<LeafPtr> leaves;
  for (int i = 0; i < kKeys; ++i) {
    hosts.push_back("stress-" + std::to_string(i) + ".example.com");
    leaves.push_back(MakeLeaf());
  }

  std::atomic<std::uint64_t> hits{0}, misses{0}, coalesced{0}, mints{0}, failures{0};
  std::atomic<std::uint64_t> waiter_calls{0}, wrong_leaf{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<std::uint32_t>(t) * 7919u + 1u);
      start.arrive_and_wait();
      for (int i = 0; i < kIterations; ++i) {
        const int k = static_cast<int>(rng() % kKeys);
        const CacheKeyView key = Key(hosts[k]);
        if (rng() % 3 == 0) {
          const LeafPtr leaf = cache.Find(key, kNow);
          ++(leaf ? hits : misses);
          if (leaf && leaf != leaves[k]) ++wrong_leaf;
          continue;
        }
        const CertCache::Acquired a = cache.Acquire(key, kNow, [&, k](const Result<LeafPtr>& r) {
          ++waiter_calls;
          if (r.ok() && *r != leaves[k]) ++wrong_leaf;
        });
        switch (a.outcome) {
          case Outcome::kHit:
            ++hits;
            if (a.leaf != leaves[k]) ++wrong_leaf;
            break;
          case Outcome::kCoalesced:
            ++coalesced;
            break;
          case Outcome::kMiss:
            ++misses;
            if (rng() % 8 == 0) {
              ++failures;
              cache.Complete(key, Error{"injected"}, kNow);
            } else {
              ++mints;
              cache.Complete(key, leaves[k], kNow);
            }
            break;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();

  const CertCacheStats stats = cache.stats();
  EXPECT_EQ(wrong_leaf.load(), 0u);
  EXPECT_EQ(stats.hits, hits.load());
  EXPECT_EQ(stats.misses, misses.load());
  EXPECT_EQ(stats.coalesced, coalesced.load());
  EXPECT_EQ(stats.mints, mints.load());
  EXPECT_EQ(stats.failures, failures.load());
  EXPECT_EQ(waiter_calls.load(), coalesced.load()) << "every coalesced waiter was resumed";
  EXPECT_EQ(stats.hits + stats.misses + stats.coalesced,
            static_cast<std::uint64_t>(kThreads) * kIterations);
  EXPECT_LE(stats.entries, kCapacity);
  EXPECT_EQ(stats.entries, cache.size());
  // No expiry and no Clear: every stored leaf is either still there or was evicted.
  EXPECT_EQ(stats.entries, stats.mints - stats.evictions);
}

TEST(CertCacheAllocTest, HitPathDoesNotAllocate) {
  CertCache cache(Opts(100, 4));
  // Longer than the small-string buffer, so a copy of it would have to allocate.
  const std::string host = "a-rather-long-host-name.cdn.example.com";
  Put(cache, Key(host), MakeLeaf());

  const std::string buffer = "[" + host + "]";
  CacheKeyView key = Key(std::string_view(buffer).substr(1, host.size()));
  key.names = DigestNames({});

  // Proves the counting operator new is really the one in use.
  static std::unique_ptr<int> sink;
  t_allocations = 0;
  t_count_allocations = true;
  sink = std::make_unique<int>(1);
  t_count_allocations = false;
  ASSERT_EQ(t_allocations, 1u);

  int found = 0;
  t_allocations = 0;
  t_count_allocations = true;
  for (int i = 0; i < 1000; ++i) {
    found += cache.Find(key, kNow) != nullptr ? 1 : 0;
    found += cache.Acquire(key, kNow, nullptr).leaf != nullptr ? 1 : 0;
  }
  t_count_allocations = false;
  EXPECT_EQ(t_allocations, 0u);
  EXPECT_EQ(found, 2000);
}

TEST(CertCacheDigestTest, OrderAndCaseInsensitive) {
  EXPECT_EQ(DigestNames({"b.example", "A.example", "c.example"}),
            DigestNames({"a.example", "C.EXAMPLE", "b.example"}));
}

TEST(CertCacheDigestTest, EmptyListIsAllZero) {
  EXPECT_EQ(DigestNames({}), NamesDigest{});
  EXPECT_NE(DigestNames({""}), NamesDigest{}) << "one empty name is still a name";
}

TEST(CertCacheDigestTest, DifferentSetsDiffer) {
  const std::vector<std::vector<std::string>> sets = {
      {"a.example"},
      {"b.example"},
      {"a.example", "b.example"},
      {"a.exampleb.example"},
      {"a.example", "b.example", "c.example"},
  };
  for (std::size_t i = 0; i < sets.size(); ++i) {
    EXPECT_NE(DigestNames(sets[i]), NamesDigest{});
    for (std::size_t j = i + 1; j < sets.size(); ++j) {
      EXPECT_NE(DigestNames(sets[i]), DigestNames(sets[j])) << i << " vs " << j;
    }
  }
}

}  // namespace
}  // namespace mintgate::tls
