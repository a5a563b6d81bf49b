// Counters that one thread writes and any thread reads (a worker's metrics, read when
// /metrics is scraped): a relaxed load and a relaxed store, so the hot path pays no locked
// instruction and no cache line is shared between workers.
#pragma once

#include <atomic>
#include <cstdint>

namespace mintgate::proxy::net {

class LocalCounter {
 public:
  // Only from the owning thread.
  void Add(std::uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void Set(std::uint64_t n) { value_.store(n, std::memory_order_relaxed); }
  // From any thread.
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// Bytes a set of streams moved each way (TcpStream adds to it on every read and write).
struct ByteTally {
  LocalCounter read;
  LocalCounter written;
};

}  // namespace mintgate::proxy::net
