// Asynchronous DNS for one worker loop: c-ares driven by libuv (uv_poll per c-ares socket, a
// uv_timer for its timeouts), A and AAAA together, a cache honouring the answers' TTLs, and
// an overall timeout. IP literals are answered without a query.
#pragma once

#include <uv.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "rules/ip_address.h"

namespace mintgate::proxy {

struct IpEndpointAddress {
  int family = 0;                        // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4
  std::string ToString() const;
  rules::IpAddress ip() const;  // the same address, as rules and the destination policy see it
};

struct ResolveResult {
  bool ok = false;
  std::vector<IpEndpointAddress> addresses;  // IPv4 first, then IPv6 (happy-eyeballs order later)
  std::string error;  // when !ok, for a 502 page: e.g. "DNS: no such host example.invalid"
  // When !ok, a short reason for metrics: nxdomain, timeout, servfail, refused, unreachable,
  // invalid_name, other.
  std::string reason;
  bool from_cache = false;
};

// Names to addresses, as a session asks for them: the Resolver in the gateway, a fake in unit
// tests. The callback runs later on the loop thread, never inside Resolve.
class HostResolver {
 public:
  using Callback = std::function<void(const ResolveResult&)>;
  virtual ~HostResolver() = default;
  // Starts a lookup; returns an id for Cancel.
  virtual std::uint64_t Resolve(const std::string& host, Callback callback) = 0;
  // The callback of `id` will not be called (no-op for unknown or finished ids).
  virtual void Cancel(std::uint64_t id) = 0;
};

class Resolver final : public HostResolver {
 public:
  struct Options {
    std::vector<HostPort> servers;            // empty: the system's resolv.conf
    std::chrono::milliseconds timeout{5000};  // for the whole lookup
    std::size_t cache_entries = 10000;
    std::chrono::seconds max_ttl{300};     // cap on cached positive answers
    std::chrono::seconds negative_ttl{5};  // NXDOMAIN / no data
  };
  // Throws std::runtime_error if c-ares cannot be initialised (bad server address).
  Resolver(uv_loop_t* loop, Options options);
  // Cancels pending lookups without calling their callbacks and closes its libuv handles;
  // the loop must run afterwards for the close callbacks (they free the handles).
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Starts a lookup; the callback runs later on the loop thread (never inside Resolve, even
  // for cache hits and IP literals, so callers need no re-entrancy care). Returns an id for
  // Cancel.
  std::uint64_t Resolve(const std::string& host, Callback callback) override;
  // The callback of `id` will not be called (no-op for unknown or finished ids).
  void Cancel(std::uint64_t id) override;

  struct Stats {
    std::uint64_t queries = 0, cache_hits = 0, failures = 0, timeouts = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mintgate::proxy
