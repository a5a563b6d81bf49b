// Certificate cache hit path: the lookup every TLS accept does before any crypto.
//
// BM_CacheHit looks up hosts of a hot working set (the 4,096 most recently stored) in a cache
// holding 100,000: what a gateway sees while its users browse, and what measures the code
// (hash, lock, probe, LRU update, reference count) rather than the machine's memory latency.
// BM_CacheHitUniform draws every lookup uniformly from all 100,000, the worst case: each hit
// is then about three dependent cache misses (slot, node, the leaf's reference count), which
// is ~140 ns apiece on the 2-core VM where this was written.
//
// BM_LeafCert and BM_ServerCertSetup measure what serving a cached leaf costs a handshake:
// the cache keeps leaves compact (no X509), so a host's first handshake on a worker thread
// rebuilds the X509 (LeafMinter::Rebuild) and later ones reuse it from the thread's table.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench/bench_ca.h"
#include "tls/cert_authority.h"
#include "tls/cert_cache.h"
#include "tls/cert_fields.h"
#include "tls/leaf_cert.h"
#include "tls/leaf_minter.h"
#include "tls/tls_contexts.h"
#include "tls/tls_engine.h"

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

// An ECDSA P-256 CA signing directly (the lab's mint path, minus the intermediate), 1,024
// minted leaves and their compact forms: more than LeafCert's per-thread table holds, so
// cycling through them rebuilds every time.
struct Leaves {
  std::unique_ptr<CertAuthority> ca = MakeAuthority("ec", false);
  LeafKeys keys{LeafKeyType::kEcdsaP256};
  LeafMinter minter{keys, 30};
  std::vector<LeafPtr> minted;
  std::vector<LeafPtr> compact;
  std::unique_ptr<TlsContexts> contexts = [] {
    TlsContextOptions o;
    o.use_system_trust = false;
    return std::make_unique<TlsContexts>(o);
  }();

  Leaves() {
    const std::time_t now = std::time(nullptr);
    for (int i = 0; i < 1024; ++i) {
      const std::string host = "host-" + std::to_string(i) + ".example.com";
      MintRequest req;
      req.host = host;
      Result<LeafPtr> leaf = minter.Mint(*ca->signer(now), req, now);
      if (!leaf.ok()) continue;
      minted.push_back(*leaf);
      compact.push_back(CompactLeaf(*leaf));
    }
  }
};

Leaves& GetLeaves() {
  static Leaves* const leaves = new Leaves();
  return *leaves;
}

enum class Served { kMinted, kCompactHot, kCompactCold };

const Leaf& Pick(Served what, std::size_t i) {
  Leaves& l = GetLeaves();
  switch (what) {
    case Served::kMinted:
      return *l.minted[0];
    case Served::kCompactHot:
      return *l.compact[0];
    case Served::kCompactCold:
      break;
  }
  return *l.compact[i % l.compact.size()];
}

// The X509 a handshake gets for a leaf: an up-ref for a minted leaf or a table hit, a rebuild
// (and freeing the X509 it replaces in the table) for a cold compact leaf.
void LeafCertCost(benchmark::State& state, Served what) {
  if (GetLeaves().compact.size() != 1024) {
    state.SkipWithError("mint failed");
    return;
  }
  std::size_t i = 0;
  for (auto _ : state) {
    X509Ptr cert = LeafCert(Pick(what, i++));
    benchmark::DoNotOptimize(cert.get());
  }
}
BENCHMARK_CAPTURE(LeafCertCost, minted, Served::kMinted)->Name("BM_LeafCert/minted");
BENCHMARK_CAPTURE(LeafCertCost, compact_hot, Served::kCompactHot)->Name("BM_LeafCert/compact_hot");
BENCHMARK_CAPTURE(LeafCertCost, compact_cold, Served::kCompactCold)
    ->Name("BM_LeafCert/compact_cold");

// A handshake's whole certificate setup: TlsEngine::Server (SSL_new with memory BIOs, leaf,
// key, chain) and freeing it.
void ServerCertSetup(benchmark::State& state, Served what) {
  Leaves& l = GetLeaves();
  if (l.compact.size() != 1024) {
    state.SkipWithError("mint failed");
    return;
  }
  std::size_t i = 0;
  for (auto _ : state) {
    TlsEngine e = TlsEngine::Server(l.contexts->server(), Pick(what, i++));
    if (!e.error().empty()) {
      state.SkipWithError("TlsEngine::Server failed");
      break;
    }
    benchmark::DoNotOptimize(e.ssl());
  }
}
BENCHMARK_CAPTURE(ServerCertSetup, minted, Served::kMinted)->Name("BM_ServerCertSetup/minted");
BENCHMARK_CAPTURE(ServerCertSetup, compact_hot, Served::kCompactHot)
    ->Name("BM_ServerCertSetup/compact_hot");
BENCHMARK_CAPTURE(ServerCertSetup, compact_cold, Served::kCompactCold)
    ->Name("BM_ServerCertSetup/compact_cold");

BENCHMARK(BM_CacheHit);
BENCHMARK(BM_CacheHit)->Threads(2);
BENCHMARK(BM_CacheHitUniform);
BENCHMARK(BM_CacheHitUniform)->Threads(2);

}  // namespace
}  // namespace mintgate::tls
