#include "proxy/runtime/mint_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "tls/ca_generator.h"

namespace mintgate::proxy {
namespace {

// A loop stand-in: posted closures queue up and run on the test thread.
class Inbox {
 public:
  MintService::Post post() {
    return [this](std::function<void()> fn) {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(fn));
      cv_.notify_all();
    };
  }
  // Runs posted closures until `done` holds or 10 s pass.
  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      std::vector<std::function<void()>> run;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!cv_.wait_until(lock, deadline, [this] { return !queue_.empty(); })) return false;
        run.swap(queue_);
      }
      for (auto& fn : run) fn();
    }
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> queue_;
};

std::unique_ptr<MintService> MakeService(MintService::Options options = {}) {
  tls::GeneratedCa ca = tls::GenerateRootCa({});
  tls::CaMaterial material;
  material.cert = std::move(ca.cert);
  material.key = std::move(ca.key);
  tls::CaProfileSpec spec;
  spec.name = "default";
  std::vector<std::unique_ptr<tls::CertAuthority>> cas;
  cas.push_back(tls::CertAuthority::Create(spec, std::move(material), {}, std::time(nullptr)));
  return std::make_unique<MintService>(std::move(cas), options);
}

TEST(MintService, MintsOnThePoolAndAnswersThroughPost) {
  auto service = MakeService();
  Inbox inbox;
  std::vector<std::string> outcomes;
  std::vector<std::thread::id> threads;
  for (int i = 0; i < 2; ++i) {
    service->GetLeaf("default", "www.example.com", tls::TrustMode::kTrusted, inbox.post(),
                     [&](const MintService::Outcome& o) {
                       ASSERT_TRUE(o.leaf.ok()) << o.leaf.error();
                       outcomes.emplace_back(o.cache);
                       threads.push_back(std::this_thread::get_id());
                     });
  }
  ASSERT_TRUE(inbox.RunUntil([&] { return outcomes.size() == 2; }));
  // The first asked, the second joined it (or, if the mint already finished, hit the cache).
  EXPECT_EQ(outcomes[0] == "miss" || outcomes[1] == "miss", true);
  for (const auto& id : threads) EXPECT_EQ(id, std::this_thread::get_id());
  // Now cached: answered before GetLeaf returns.
  bool answered = false;
  service->GetLeaf("default", "www.example.com", tls::TrustMode::kTrusted, inbox.post(),
                   [&](const MintService::Outcome& o) {
                     EXPECT_STREQ(o.cache, "hit");
                     answered = true;
                   });
  EXPECT_TRUE(answered);
  const tls::CertCacheStats stats = service->cache_stats();
  EXPECT_EQ(stats.mints, 1u);
}

TEST(MintService, PrefetchStartsOneMintThatGetLeafThenFinds) {
  auto service = MakeService();
  EXPECT_TRUE(service->Prefetch("default", "pre.example"));
  EXPECT_FALSE(service->Prefetch("default", "pre.example"));  // in flight or cached: once
  Inbox inbox;
  std::string cache;
  service->GetLeaf("default", "pre.example", tls::TrustMode::kTrusted, inbox.post(),
                   [&](const MintService::Outcome& o) {
                     ASSERT_TRUE(o.leaf.ok()) << o.leaf.error();
                     cache = o.cache;
                   });
  ASSERT_TRUE(inbox.RunUntil([&] { return !cache.empty(); }));
  EXPECT_TRUE(cache == "hit" || cache == "coalesced") << cache;
  EXPECT_EQ(service->cache_stats().mints, 1u);
  EXPECT_FALSE(service->Prefetch("nope", "x.example"));  // an unknown profile starts nothing
}

TEST(MintService, UnknownProfileAndBadHostAreErrors) {
  auto service = MakeService();
  Inbox inbox;
  bool unknown = false;
  service->GetLeaf("nope", "a.example", tls::TrustMode::kTrusted, inbox.post(),
                   [&](const MintService::Outcome& o) {
                     EXPECT_FALSE(o.leaf.ok());
                     EXPECT_NE(o.leaf.error().find("not loaded"), std::string::npos);
                     unknown = true;
                   });
  EXPECT_TRUE(unknown);
  bool bad = false;
  service->GetLeaf("default", "a.com,DNS:evil.com", tls::TrustMode::kTrusted, inbox.post(),
                   [&](const MintService::Outcome& o) {
                     EXPECT_FALSE(o.leaf.ok());
                     bad = true;
                   });
  ASSERT_TRUE(inbox.RunUntil([&] { return bad; }));
}

TEST(MintService, UntrustedLeavesComeFromACaNoClientHas) {
  auto service = MakeService();
  Inbox inbox;
  tls::LeafPtr trusted, untrusted;
  service->GetLeaf("default", "x.example", tls::TrustMode::kTrusted, inbox.post(),
                   [&](const MintService::Outcome& o) { trusted = *o.leaf; });
  service->GetLeaf("default", "x.example", tls::TrustMode::kUntrusted, inbox.post(),
                   [&](const MintService::Outcome& o) { untrusted = *o.leaf; });
  ASSERT_TRUE(inbox.RunUntil([&] { return trusted && untrusted; }));
  EXPECT_NE(X509_NAME_cmp(X509_get_issuer_name(trusted->cert.get()),
                          X509_get_issuer_name(untrusted->cert.get())),
            0);
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_issuer_name(untrusted->cert.get()), NID_commonName, cn,
                            sizeof cn);
  EXPECT_NE(std::string(cn).find("untrusted"), std::string::npos) << cn;
  // Stored under its own key: the next lookup is a hit, answered at once.
  const char* cache = nullptr;
  service->GetLeaf("default", "x.example", tls::TrustMode::kUntrusted, inbox.post(),
                   [&](const MintService::Outcome& o) { cache = o.cache; });
  ASSERT_NE(cache, nullptr) << "the untrusted leaf was not cached (a mint still 'in flight')";
  EXPECT_STREQ(cache, "hit");
}

TEST(MintService, ShutdownFinishesQueuedMints) {
  auto service = MakeService();
  Inbox inbox;
  int answered = 0;
  for (int i = 0; i < 20; ++i) {
    service->GetLeaf("default", "h" + std::to_string(i) + ".example", tls::TrustMode::kTrusted,
                     inbox.post(), [&](const MintService::Outcome&) { ++answered; });
  }
  service->Shutdown();  // joins the pool: every mint has posted its result
  ASSERT_TRUE(inbox.RunUntil([&] { return answered == 20; }));
  EXPECT_EQ(service->cache_stats().mints, 20u);
}

// A flood of never-seen names queues at most max_pending mints; beyond, the request fails at
// once ("refused", counted) instead of growing the queue. Cached leaves are still served.
TEST(MintService, TheMintQueueIsBounded) {
  MintService::Options options;
  options.threads = 0;  // nothing dequeues: the queue only grows
  options.max_pending = 2;
  auto service = MakeService(options);
  Inbox inbox;
  std::vector<std::string> outcomes;
  for (int i = 0; i < 4; ++i) {
    service->GetLeaf(
        "default", "flood" + std::to_string(i) + ".example", tls::TrustMode::kTrusted, inbox.post(),
        [&](const MintService::Outcome& o) {
          outcomes.push_back(std::string(o.cache) + ":" + (o.leaf.ok() ? "ok" : o.leaf.error()));
        });
  }
  ASSERT_EQ(outcomes.size(), 2u);  // the first two wait in the queue
  EXPECT_EQ(outcomes[0], "refused:the mint queue is full (mint.max_pending)");
  EXPECT_EQ(service->mint_refusals(), 2u);
  EXPECT_EQ(service->pending(), 2u);
  EXPECT_FALSE(service->Prefetch("default", "flood9.example"));  // no room, no mint
  EXPECT_EQ(service->pending(), 2u);
  // A refused name is not remembered as failed: with room again it mints.
  service->set_max_pending(10);
  EXPECT_TRUE(service->Prefetch("default", "flood3.example"));
  EXPECT_EQ(service->pending(), 3u);
}

TEST(MintService, CaStateWarnsThirtyDaysAheadAndRefusesExpired) {
  std::unique_ptr<MintService> service = MakeService();
  const std::time_t not_after = service->Find("default")->not_after();
  EXPECT_EQ(service->CheckCa("nope", not_after), MintService::CaState::kUnknown);
  EXPECT_EQ(service->CheckCa("default", not_after - 31 * 86400), MintService::CaState::kOk);
  EXPECT_EQ(service->CheckCa("default", not_after - 29 * 86400), MintService::CaState::kExpiring);
  EXPECT_EQ(service->expired_refusals(), 0u);
  EXPECT_EQ(service->CheckCa("default", not_after), MintService::CaState::kExpired);
  EXPECT_EQ(service->CheckCa("default", not_after + 86400), MintService::CaState::kExpired);
  EXPECT_EQ(service->expired_refusals(), 2u);
}

}  // namespace
}  // namespace mintgate::proxy
