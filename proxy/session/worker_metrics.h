// What one worker counts for /metrics: written only by its loop's thread (net::LocalCounter,
// no locked instruction on the data path), summed over the workers when scraped
// (WriteWorkerMetrics). Rare events with a free-form label (a client's alert, a DNS failure)
// go to a LabelledCounters under a mutex of their own.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/net/local_counter.h"

namespace mintgate::proxy {

// Observations in microseconds, exposed in seconds with Prometheus' cumulative buckets.
class LocalHistogram {
 public:
  // Upper bounds, in microseconds: 0.5 ms to 30 s.
  static constexpr std::array<std::uint64_t, 15> kBoundsUs = {
      500,     1'000,   2'500,     5'000,     10'000,    25'000,     50'000,    100'000,
      250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000, 30'000'000};
  void ObserveUs(std::uint64_t us);
  void ObserveMs(std::uint64_t ms) { ObserveUs(ms * 1000); }
  // buckets()[i]: observations in (kBoundsUs[i-1], kBoundsUs[i]]; the last one above them all.
  const std::array<net::LocalCounter, kBoundsUs.size() + 1>& buckets() const { return buckets_; }
  std::uint64_t sum_us() const { return sum_us_.value(); }

 private:
  std::array<net::LocalCounter, kBoundsUs.size() + 1> buckets_;
  net::LocalCounter sum_us_;
};

// Counters by a label value that comes from outside (an alert's name, a failure's reason):
// at most kMaxLabels distinct values, the rest counted as "other", so a peer cannot grow it.
class LabelledCounters {
 public:
  static constexpr std::size_t kMaxLabels = 64;
  void Add(std::string_view label);
  std::map<std::string, std::uint64_t> Snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t, std::less<>> counts_;
};

// The access-log action of a record, as an index (WorkerMetrics::requests).
enum class ActionIndex : std::uint8_t { kDecrypt, kTunnel, kBlock, kHttp, kPortal, kAuth, kOther };
inline constexpr std::size_t kActionCount = 7;
ActionIndex ActionIndexOf(std::string_view action);
std::string_view ActionName(ActionIndex action);

// Why a connection was closed before any request was read.
enum class Refusal : std::uint8_t {
  kAllowClients,             // not in server.allow_clients (403)
  kMaxConnections,           // server.max_connections (503)
  kMaxConnectionsPerClient,  // server.max_connections_per_client (503)
  kProxyHeader,              // a PROXY protocol header missing, malformed, or from a stranger
};
inline constexpr std::size_t kRefusalCount = 4;

// Why an origin's certificate or TLS handshake was not accepted.
enum class OriginFailure : std::uint8_t {
  kExpired,
  kNotYetValid,
  kHostnameMismatch,
  kSelfSigned,
  kUnknownIssuer,
  kRevoked,
  kOtherVerify,  // another X.509 verification error
  kHandshake,    // the TLS handshake failed (a protocol or cipher mismatch, an alert)
  kClosed,       // the origin closed during the handshake
  kTimeout,      // the handshake timed out
};
inline constexpr std::size_t kOriginFailureCount = 10;
// The reason for an X509_V_ERR_* code (X509_V_OK is not a failure: kOtherVerify).
OriginFailure OriginFailureOf(long verify_result);

struct WorkerMetrics {
  // Connections.
  net::LocalCounter accepted;
  net::LocalCounter closed;  // sessions destroyed: accepted - closed are open
  std::array<net::LocalCounter, kRefusalCount> refused;
  // Access-log records (one per request, one per CONNECT or tunnel) by action and status
  // class: [action][0] no status sent, [action][1..5] 1xx..5xx.
  std::array<std::array<net::LocalCounter, 6>, kActionCount> requests;
  // Decrypted connections: the client's TLS handshake, and its verdict on the leaf.
  net::LocalCounter client_handshakes_ok;
  net::LocalCounter client_handshakes_failed;
  std::array<net::LocalCounter, 3> verdicts;  // trusts, rejects, unused
  LabelledCounters client_alerts;             // alerts the clients sent, by name
  std::array<net::LocalCounter, kOriginFailureCount> origin_failures;
  LabelledCounters dns_failures;  // by Resolver's reason (nxdomain, timeout, ...)
  // Bytes on the wire (TLS records included) with clients and with origins.
  net::ByteTally client_bytes;
  net::ByteTally origin_bytes;
  // Upstream connections: opened afresh, or taken from the idle pool.
  net::LocalCounter upstream_connects;
  net::LocalCounter upstream_reused;
  net::LocalCounter pool_idle;  // a gauge, published by the worker
  // Latencies.
  LocalHistogram request_duration;    // request head to the end of the exchange (not tunnels)
  LocalHistogram time_to_first_byte;  // request head to the response head's first byte
  LocalHistogram leaf_mint;           // a cache miss: the leaf asked for to the leaf given
  LocalHistogram origin_handshake;    // TLS with the origin, verified
};

// The steady clock in microseconds, for the latency histograms.
inline std::uint64_t MonotonicUs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// Prometheus text for the sum of `workers` (each read once, without stopping them), plus
// the open connections per worker.
void WriteWorkerMetrics(std::ostream& out, const std::vector<const WorkerMetrics*>& workers);

}  // namespace mintgate::proxy
