// Certificate cache hit path: the lookup every TLS accept does before any crypto.
//
// BM_CacheHit looks up hosts of a hot working set (the 4,096 most recently stored) in a cache
// holding 100,000: what a gateway sees while its users browse, and what measures the code
// (hash, lock, probe, LRU update, reference count) rather than the machine's memory latency.
// BM_CacheHitUniform draws every lookup uniformly from all 100,000, the worst case: each hit
// is then about three dependent cache misses (slot, node, the leaf's reference count), which
// is ~140 ns apiece on the 2-core VM where this was written.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <string_view>

#include "tls/cert_cache.h"

namespace mintgate::tls {
namespace {

constexpr std::uint32_t kEntries = 100000;
constexpr std::time_t kNow = 1'700'000'000;

// Writes "host-<i>.example.com" into `out` (at least 32 bytes). The loop formats each host
// into a stack buffer rather than picking it from a table of 100k strings: a real lookup's
// SNI was just parsed and sits in L1, while a random table entry would add two cache misses
// of the benchmark's own to every lookup.
std::string_view HostName(std::uint32_t i, char* out) {
  constexpr std::string_view kPrefix = "host-";
  constexpr std::string_view kSuffix = ".example.com";
  char digits[10];
  std::size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + i % 10);
    i /= 10;
  } while (i != 0);
  char* p = out;
  std::memcpy(p, kPrefix.data(), kPrefix.size());
  p += kPrefix.size();
  while (n > 0) *p++ = digits[--n];
  std::memcpy(p, kSuffix.data(), kSuffix.size());
  p += kSuffix.size();
  return {out, static_cast<std::size_t>(p - out)};
}

CertCache::Options CacheOptions() {
  CertCache::Options options;
  // Shards fill unevenly (by about 1% here), so an exact bound would evict some hosts and
  // turn hits into misses; the slack keeps all of them.
  options.max_entries = kEntries + kEntries / 8;
  return options;
}

CertCache& FilledCache() {
  static CertCache* const cache = [] {
    static CertCache filled(CacheOptions());
    char buf[32];
    for (std::uint32_t i = 0; i < kEntries; ++i) {
      CacheKeyView key;
      key.host = HostName(i, buf);
      // A leaf per entry, as in production: one shared leaf would make every hit bump the
      // same reference count and measure that cache line bouncing instead.
      auto leaf = std::make_shared<Leaf>();
      leaf->not_before = kNow - 86400;
      leaf->not_after = kNow + 90 * 86400;
      filled.Acquire(key, kNow, nullptr);
      filled.Complete(key, LeafPtr(std::move(leaf)), kNow);
    }
    return &filled;
  }();  // built once, by whichever thread gets here first
  return *cache;
}

constexpr std::uint32_t kHot = 512;

void CacheHit(benchmark::State& state, std::uint32_t first, std::uint32_t span) {
  CertCache& cache = FilledCache();
  if (cache.size() != kEntries) {
    state.SkipWithError("the cache did not keep every host");
    return;
  }
  std::uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(state.thread_index() + 1);
  char buf[32];
  CacheKeyView key;
  benchmark::IterationCount found = 0;
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // Multiply-shift instead of %: a 64-bit division would cost as much as the hash.
    key.host = HostName(first + static_cast<std::uint32_t>(((x >> 32) * span) >> 32), buf);
    LeafPtr leaf = cache.Find(key, kNow);
    benchmark::DoNotOptimize(leaf);
    found += leaf != nullptr ? 1 : 0;
  }
  if (found != state.iterations()) state.SkipWithError("a lookup missed");
}
// Each thread has its own hot window, as two workers serving different clients would.
void BM_CacheHit(benchmark::State& state) {
  CacheHit(state, kEntries - kHot * static_cast<std::uint32_t>(state.thread_index() + 1), kHot);
}
void BM_CacheHitUniform(benchmark::State& state) { CacheHit(state, 0, kEntries); }

BENCHMARK(BM_CacheHit);
BENCHMARK(BM_CacheHit)->Threads(2);
BENCHMARK(BM_CacheHitUniform);
BENCHMARK(BM_CacheHitUniform)->Threads(2);

}  // namespace
}  // namespace mintgate::tls
