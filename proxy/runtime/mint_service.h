// Leaves for decrypted connections: the shared certificate cache, single-flight minting on a
// small pool of our own threads (an RSA signature must never stall an event loop), and the
// hand-off of each result back to the loop that asked.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tls/cert_authority.h"
#include "tls/cert_cache.h"
#include "tls/leaf_keys.h"
#include "tls/leaf_minter.h"

namespace mintgate::proxy {

class MintService {
 public:
  struct Options {
    tls::LeafKeyType leaf_key = tls::LeafKeyType::kEcdsaP256;
    int leaf_days = 30;
    std::size_t cache_entries = 100000;
    int threads = 2;                 // signing threads (0: none, mints only queue: tests)
    std::size_t max_pending = 1000;  // mints queued; beyond, a request for a new leaf fails
  };
  struct Outcome {
    tls::Result<tls::LeafPtr> leaf = tls::Error{"not minted"};
    const char* cache = "miss";  // "hit" | "miss" | "coalesced" | "refused" (queue full)
  };
  // Runs a closure on the loop that asked (thread-safe).
  using Post = std::function<void(std::function<void()>)>;
  using Done = std::function<void(const Outcome&)>;

  MintService(std::vector<std::unique_ptr<tls::CertAuthority>> authorities, Options options);
  ~MintService();  // Shutdown()
  // Finishes queued mints and joins the pool; GetLeaf must not be called afterwards. Call it
  // before the loops that results are posted to go away.
  void Shutdown();
  MintService(const MintService&) = delete;
  MintService& operator=(const MintService&) = delete;

  const tls::CertAuthority* Find(const std::string& profile) const;

  // A CA is warned about from 30 days before its not-after, and never signs once expired.
  static constexpr std::time_t kExpiryWarning = 30 * 24 * 3600;
  enum class CaState { kUnknown, kOk, kExpiring, kExpired };
  // The state of `profile` at `now`; logs once per profile when it is first seen expiring and
  // when first seen expired. Expired answers are counted for /metrics.
  CaState CheckCa(const std::string& profile, std::time_t now);
  // Decrypt decisions refused (blocked or tunnelled) because their CA had expired.
  std::uint64_t expired_refusals() const { return expired_refusals_.load(); }

  // A leaf for `host` signed by `profile` (kTrusted) or by the untrusted CA (kUntrusted: for
  // origins that failed verification with upstream_cert_errors = "untrusted", so that the
  // browser shows its own warning). A cache hit calls `done` before returning; a mint calls
  // it later through `post`. Unknown profiles and invalid hosts give an error outcome.
  void GetLeaf(const std::string& profile, const std::string& host, tls::TrustMode trust,
               const Post& post, Done done);

  // Starts minting the trusted leaf for `host` unless it is cached or already being minted,
  // with nobody waiting for it: a later GetLeaf finds it cached or joins the mint. True if
  // this call started a mint.
  bool Prefetch(const std::string& profile, const std::string& host);

  tls::CertCacheStats cache_stats() const { return cache_.stats(); }
  // Requests for a new leaf refused because max_pending mints were queued (outcome "refused").
  std::uint64_t mint_refusals() const { return mint_refusals_.load(std::memory_order_relaxed); }
  std::size_t pending() const;
  // A reload may change the bound without replacing the service (and its cache).
  void set_max_pending(std::size_t max_pending) {
    max_pending_.store(max_pending, std::memory_order_relaxed);
  }

  // Logs, once per process, that rules naming `configured` now sign with `signing` because a
  // scheduled retirement has passed.
  void NoteCutover(const std::string& configured, const std::string& signing);
  // Every loaded profile with its certificate's not-after (for /metrics).
  std::vector<std::pair<std::string, std::time_t>> ProfileExpiry() const {
    std::vector<std::pair<std::string, std::time_t>> out;
    for (const auto& [name, ca] : authorities_) out.emplace_back(name, ca->not_after());
    return out;
  }

 private:
  // GetLeaf; true when it queued a mint (a miss).
  bool Start(const std::string& profile, const std::string& host, tls::TrustMode trust,
             const Post& post, Done done);
  void Work();

  Options options_;
  std::map<std::string, std::unique_ptr<tls::CertAuthority>> authorities_;
  // Generated in memory at start and never written anywhere or offered to clients.
  std::unique_ptr<tls::CertAuthority> untrusted_;
  tls::LeafKeys keys_;
  tls::LeafMinter minter_;
  tls::CertCache cache_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;  // guarded by mutex_
  std::atomic<std::size_t> max_pending_;
  std::atomic<std::uint64_t> mint_refusals_{0};
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  struct Warned {
    std::atomic<bool> expiring{false};
    std::atomic<bool> expired{false};
  };
  std::map<std::string, std::unique_ptr<Warned>> warned_;  // one per profile, fixed at start
  std::atomic<std::uint64_t> expired_refusals_{0};
  std::mutex cutover_mutex_;
  std::vector<std::pair<std::string, std::string>> cutovers_;
};

}  // namespace mintgate::proxy
