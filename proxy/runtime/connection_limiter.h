// How many client connections are open, over all workers and per client address, so that one
// client (or everyone together) cannot take every socket and buffer the gateway has. One
// limiter lives as long as the gateway: a reload changes the limits, never the counts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "rules/ip_address.h"

namespace mintgate::proxy {

class ConnectionLimiter {
 public:
  enum class Verdict { kAdmitted, kTooMany, kTooManyFromClient };

  // Counts a new connection from `client` unless that would exceed `max_total` or
  // `max_per_client` (0: no limit). A refused connection is counted for /metrics and must not
  // be released.
  Verdict Admit(const rules::IpAddress& client, std::size_t max_total, std::size_t max_per_client);
  // An admitted connection from `client` has closed.
  void Release(const rules::IpAddress& client);

  std::size_t open() const { return open_.load(std::memory_order_relaxed); }
  std::uint64_t refused_total() const { return refused_total_.load(std::memory_order_relaxed); }
  std::uint64_t refused_per_client() const {
    return refused_per_client_.load(std::memory_order_relaxed);
  }
  std::size_t clients() const;

 private:
  struct Hash {
    std::size_t operator()(const rules::IpAddress& a) const;
  };
  mutable std::mutex mutex_;
  std::unordered_map<rules::IpAddress, std::size_t, Hash> per_client_;
  std::atomic<std::size_t> open_{0};
  std::atomic<std::uint64_t> refused_total_{0};
  std::atomic<std::uint64_t> refused_per_client_{0};
};

}  // namespace mintgate::proxy
