#include "proxy/runtime/mint_service.h"

#include <algorithm>
#include <ctime>
#include <iostream>

#include "tls/ca_generator.h"
#include "tls/cert_info.h"

namespace mintgate::proxy {
namespace {

tls::CertCache::Options CacheOptions(std::size_t entries) {
  tls::CertCache::Options o;
  o.max_entries = entries;
  return o;
}

}  // namespace

MintService::MintService(std::vector<std::unique_ptr<tls::CertAuthority>> authorities,
                         Options options)
    : options_(options),
      keys_({options.leaf_key}),
      minter_(keys_, options.leaf_days),
      cache_(CacheOptions(options.cache_entries)),
      max_pending_(options.max_pending) {
  for (auto& ca : authorities) {
    if (ca) {
      std::string name = ca->name();
      warned_.emplace(name, std::make_unique<Warned>());
      authorities_.emplace(std::move(name), std::move(ca));
    }
  }
  const std::time_t now = std::time(nullptr);
  for (const auto& [name, ca] : authorities_) CheckCa(name, now);  // warn at start already
  tls::CaInitOptions untrusted;
  untrusted.common_name = "mintgate untrusted origin (do not install)";
  untrusted.days = 365;
  tls::GeneratedCa generated = tls::GenerateRootCa(untrusted);
  tls::CaMaterial material;
  material.cert = std::move(generated.cert);
  material.key = std::move(generated.key);
  tls::CaProfileSpec spec;
  spec.name = "untrusted";
  untrusted_ = tls::CertAuthority::Create(spec, std::move(material), {}, std::time(nullptr));
  for (int i = 0; i < options.threads; ++i) threads_.emplace_back([this] { Work(); });
}

MintService::~MintService() { Shutdown(); }

void MintService::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

MintService::CaState MintService::CheckCa(const std::string& profile, std::time_t now) {
  auto it = authorities_.find(profile);
  if (it == authorities_.end()) return CaState::kUnknown;
  const std::time_t not_after = it->second->not_after();
  Warned& warned = *warned_.at(profile);
  if (now >= not_after) {
    expired_refusals_.fetch_add(1, std::memory_order_relaxed);
    if (!warned.expired.exchange(true)) {
      std::cerr << "mintgate: CA profile \"" << profile << "\" expired at "
                << tls::FormatTime(not_after)
                << ": it signs nothing; renew it (mintgate ca init, or the customer's PKI) and "
                   "reload\n"
                << std::flush;
    }
    return CaState::kExpired;
  }
  if (not_after - now <= kExpiryWarning) {
    if (!warned.expiring.exchange(true)) {
      std::cerr << "mintgate: warning: CA profile \"" << profile << "\" expires at "
                << tls::FormatTime(not_after) << " (in " << (not_after - now) / 86400
                << " days); prepare its successor (see mintgate ca audit)\n"
                << std::flush;
    }
    return CaState::kExpiring;
  }
  return CaState::kOk;
}

const tls::CertAuthority* MintService::Find(const std::string& profile) const {
  auto it = authorities_.find(profile);
  return it == authorities_.end() ? nullptr : it->second.get();
}

void MintService::GetLeaf(const std::string& profile, const std::string& host, tls::TrustMode trust,
                          const Post& post, Done done) {
  Start(profile, host, trust, post, std::move(done));
}

bool MintService::Prefetch(const std::string& profile, const std::string& host) {
  return Start(
      profile, host, tls::TrustMode::kTrusted, [](const std::function<void()>&) {},
      [](const Outcome&) {});
}

bool MintService::Start(const std::string& profile, const std::string& host, tls::TrustMode trust,
                        const Post& post, Done done) {
  tls::CertAuthority* ca = nullptr;
  if (trust == tls::TrustMode::kUntrusted) {
    ca = untrusted_.get();
  } else if (auto it = authorities_.find(profile); it != authorities_.end()) {
    ca = it->second.get();
  } else {
    done(Outcome{tls::Error{"CA profile \"" + profile + "\" is not loaded"}, "miss"});
    return false;
  }
  const std::time_t now = std::time(nullptr);
  auto key_host = std::make_shared<std::string>(host);
  tls::CacheKeyView key{ca->id(), *key_host, {}, options_.leaf_key, trust};
  // A waiter (another loop's request for the same leaf) hops back to its own loop.
  auto waiter = [post, done](const tls::Result<tls::LeafPtr>& result) {
    post([done, result] { done(Outcome{result, "coalesced"}); });
  };
  tls::CertCache::Acquired acquired = cache_.Acquire(key, now, waiter);
  if (acquired.outcome == tls::CertCache::Outcome::kHit) {
    done(Outcome{acquired.leaf, "hit"});
    return false;
  }
  if (acquired.outcome == tls::CertCache::Outcome::kCoalesced) return false;
  std::unique_lock<std::mutex> lock(mutex_);
  if (jobs_.size() >= max_pending_.load(std::memory_order_relaxed)) {
    // Bounded: a flood of never-seen names must not queue work (and memory) without end.
    // Whoever joined this mint meanwhile is told too.
    lock.unlock();
    mint_refusals_.fetch_add(1, std::memory_order_relaxed);
    const tls::Error full{"the mint queue is full (mint.max_pending)"};
    cache_.Complete(key, full, now);
    done(Outcome{full, "refused"});
    return false;
  }
  jobs_.push_back([this, ca, key_host, trust, post, done = std::move(done)] {
    const std::time_t at = std::time(nullptr);
    tls::MintRequest request;
    request.host = *key_host;
    request.key_type = options_.leaf_key;
    tls::Result<tls::LeafPtr> leaf = minter_.Mint(*ca->signer(at), request, at);
    tls::CacheKeyView done_key{ca->id(), *key_host, {}, options_.leaf_key, trust};
    cache_.Complete(done_key, leaf, at);
    post([done, leaf] { done(Outcome{leaf, "miss"}); });
  });
  lock.unlock();
  wake_.notify_one();
  return true;
}

std::size_t MintService::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

void MintService::NoteCutover(const std::string& configured, const std::string& signing) {
  std::lock_guard<std::mutex> lock(cutover_mutex_);
  std::pair<std::string, std::string> cutover{configured, signing};
  if (std::find(cutovers_.begin(), cutovers_.end(), cutover) != cutovers_.end()) return;
  cutovers_.push_back(cutover);
  std::cerr << "mintgate: CA cutover: rules naming profile \"" << configured
            << "\" now sign with \"" << signing << "\" (its retire_at has passed)" << std::endl;
}

void MintService::Work() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to finish
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace mintgate::proxy
