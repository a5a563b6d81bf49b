// Minting benchmarks (SPEC §8). Compare as ratios inside one run:
//   BM_Mint/ecdsa_p256 / BM_RawSign/ecdsa_p256        target <= 1.3
//   BM_Mint/rsa_2048_intermediate / BM_RawSign/ecdsa_p256  target <= 1.3
//   BM_Mint/rsa_2048 / BM_RawSign/rsa_2048            target <= 1.1
// BM_MintProviderKey/ecdsa_p256 mints with a provider-native leaf key: it shows what
// "modernising" tls/legacy_ec_key.cc would cost.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <openssl/evp.h>

#include <atomic>
#include <ctime>
#include <memory>
#include <string>

#include "bench/bench_ca.h"
#include "tls/cert_authority.h"
#include "tls/cert_cache.h"
#include "tls/cert_fields.h"
#include "tls/leaf_minter.h"

namespace mintgate::tls {
namespace {

struct Fixture {
  std::unique_ptr<CertAuthority> ec = MakeAuthority("ec", false);
  std::unique_ptr<CertAuthority> rsa = MakeAuthority("rsa", false);
  std::unique_ptr<CertAuthority> rsa_inter = MakeAuthority("rsa", true);
  LeafKeys keys{LeafKeyType::kEcdsaP256};
  LeafMinter minter{keys, 30};
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

// The floor: the signature a mint needs and nothing else. One SHA-256 signature over a
// certificate-sized message, with the same prepared context a mint copies (Signer's
// sign_template), so Mint / RawSign is exactly the cost of everything but the signature.
void RawSign(benchmark::State& state, CertAuthority* ca) {
  unsigned char tbs[300];  // a minted leaf's TBSCertificate is about this long
  for (std::size_t i = 0; i < sizeof tbs; ++i) tbs[i] = static_cast<unsigned char>(i * 7);
  unsigned char sig[512];
  auto signer = ca->signer(std::time(nullptr));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  for (auto _ : state) {
    std::size_t len = sizeof sig;
    if (EVP_MD_CTX_copy_ex(ctx.get(), signer->sign_template.get()) != 1) {
      state.SkipWithError("copy failed");
      break;
    }
    EVP_MD_CTX_set_flags(ctx.get(), EVP_MD_CTX_FLAG_FINALISE);
    if (EVP_DigestSign(ctx.get(), sig, &len, tbs, sizeof tbs) != 1) {
      state.SkipWithError("sign failed");
      break;
    }
    benchmark::DoNotOptimize(sig);
  }
}

void Mint(benchmark::State& state, CertAuthority* ca) {
  static std::atomic<std::uint64_t> counter{0};
  std::time_t now = std::time(nullptr);
  auto signer = ca->signer(now);
  std::string host;
  for (auto _ : state) {
    host = "h" + std::to_string(counter.fetch_add(1)) + ".bench.example";
    MintRequest req;
    req.host = host;
    Result<LeafPtr> leaf = F().minter.Mint(*signer, req, now);
    if (!leaf.ok()) {
      state.SkipWithError(leaf.error().c_str());
      break;
    }
    benchmark::DoNotOptimize(leaf);
  }
}

// What a straightforward OpenSSL 3 mint costs: the same certificate with a provider-native
// leaf key, which X509_set_pubkey encodes and decodes through OSSL_ENCODER every time.
void MintProviderKey(benchmark::State& state) {
  EvpPkeyPtr leaf_key(EVP_EC_gen("P-256"));
  CertAuthority* ca = F().ec.get();
  std::time_t now = std::time(nullptr);
  for (auto _ : state) {
    X509Ptr x(X509_new());
    X509_set_version(x.get(), X509_VERSION_3);
    SetRandomSerial(x.get());
    X509_set_issuer_name(x.get(), X509_get_subject_name(ca->cert()));
    SetTime(X509_getm_notBefore(x.get()), now - 3600);
    SetTime(X509_getm_notAfter(x.get()), now + 30 * 86400);
    X509_set_pubkey(x.get(), leaf_key.get());
    X509_sign(x.get(), ca->key(), EVP_sha256());
    benchmark::DoNotOptimize(x);
  }
}

BENCHMARK_CAPTURE(RawSign, ecdsa_p256, F().ec.get())->Name("BM_RawSign/ecdsa_p256");
BENCHMARK_CAPTURE(RawSign, rsa_2048, F().rsa.get())->Name("BM_RawSign/rsa_2048");
BENCHMARK_CAPTURE(Mint, ecdsa_p256, F().ec.get())->Name("BM_Mint/ecdsa_p256");
BENCHMARK_CAPTURE(Mint, rsa_2048, F().rsa.get())->Name("BM_Mint/rsa_2048");
BENCHMARK_CAPTURE(Mint, rsa_2048_intermediate, F().rsa_inter.get())
    ->Name("BM_Mint/rsa_2048_intermediate");
BENCHMARK(MintProviderKey)->Name("BM_MintProviderKey/ecdsa_p256");

// Heap bytes held per cached leaf (certificate, Leaf, cache node), measured with mallinfo2
// over 10,000 distinct hosts in a real CertCache.
void CacheEntryBytes(benchmark::State& state) {
  const int kEntries = 10000;
  double per_entry = 0;
  for (auto _ : state) {
    std::time_t now = std::time(nullptr);
    auto signer = F().ec->signer(now);
    CertCache::Options o;
    o.max_entries = kEntries;
    auto cache = std::make_unique<CertCache>(o);
    std::vector<std::string> hosts;
    for (int i = 0; i < kEntries; ++i) hosts.push_back("e" + std::to_string(i) + ".bytes.example");
    malloc_trim(0);
    std::size_t before = mallinfo2().uordblks;
    for (const std::string& h : hosts) {
      MintRequest req;
      req.host = h;
      Result<LeafPtr> leaf = F().minter.Mint(*signer, req, now);
      if (!leaf.ok()) continue;
      CacheKeyView key{F().ec->id(), h, {}, LeafKeyType::kEcdsaP256, TrustMode::kTrusted};
      cache->Acquire(key, now, nullptr);
      cache->Complete(key, leaf, now);
    }
    std::size_t after = mallinfo2().uordblks;
    per_entry = static_cast<double>(after - before) / kEntries;
  }
  state.counters["bytes_per_entry"] = per_entry;
}
BENCHMARK(CacheEntryBytes)
    ->Name("BM_CacheEntryBytes")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mintgate::tls
