#include "proxy/runtime/connection_limiter.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace mintgate::proxy {
namespace {

rules::IpAddress Ip(const char* text) { return *rules::IpAddress::Parse(text); }

TEST(ConnectionLimiter, LimitsPerClientAndInAll) {
  ConnectionLimiter limiter;
  using V = ConnectionLimiter::Verdict;
  EXPECT_EQ(limiter.Admit(Ip("10.0.0.1"), 3, 2), V::kAdmitted);
  EXPECT_EQ(limiter.Admit(Ip("10.0.0.1"), 3, 2), V::kAdmitted);
  EXPECT_EQ(limiter.Admit(Ip("10.0.0.1"), 3, 2), V::kTooManyFromClient);
  EXPECT_EQ(limiter.Admit(Ip("10.0.0.2"), 3, 2), V::kAdmitted);
  EXPECT_EQ(limiter.Admit(Ip("10.0.0.3"), 3, 2), V::kTooMany);
  EXPECT_EQ(limiter.open(), 3u);
  EXPECT_EQ(limiter.refused_total(), 1u);
  EXPECT_EQ(limiter.refused_per_client(), 1u);
  limiter.Release(Ip("10.0.0.1"));
  EXPECT_EQ(limiter.Admit(Ip("10.0.0.3"), 3, 2), V::kAdmitted);
  EXPECT_EQ(limiter.clients(), 3u);
  limiter.Release(Ip("10.0.0.1"));
  limiter.Release(Ip("10.0.0.2"));
  limiter.Release(Ip("10.0.0.3"));
  EXPECT_EQ(limiter.open(), 0u);
  EXPECT_EQ(limiter.clients(), 0u);  // nothing is remembered for clients that left
  // 0 is no limit.
  for (int i = 0; i < 100; ++i) EXPECT_EQ(limiter.Admit(Ip("::1"), 0, 0), V::kAdmitted);
}

// Workers admit and release from their own threads (run under TSan by ./test.sh).
TEST(ConnectionLimiter, CountsStayExactAcrossThreads) {
  ConnectionLimiter limiter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&limiter, t] {
      const rules::IpAddress me = rules::IpAddress::V4(0x0a000000u + static_cast<unsigned>(t));
      for (int i = 0; i < 2000; ++i) {
        if (limiter.Admit(me, 0, 0) == ConnectionLimiter::Verdict::kAdmitted) limiter.Release(me);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(limiter.open(), 0u);
  EXPECT_EQ(limiter.clients(), 0u);
}

}  // namespace
}  // namespace mintgate::proxy
