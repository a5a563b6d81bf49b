// Idle upstream connections of one worker, kept for the next request to the same origin, and
// the TLS sessions of origins for resumption. A connection is held by exactly one of: a
// session (its stream's delegate) or the pool (watched for the origin closing it). Only
// connections whose last exchange completed cleanly are pooled, and TLS connections only when
// the origin's certificate was verified.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "proxy/dns/resolver.h"
#include "proxy/net/tcp_stream.h"
#include "tls/openssl_ptr.h"
#include "tls/tls_engine.h"

namespace mintgate::proxy {

class UpstreamPool;

struct UpstreamConn {
  explicit UpstreamConn(UpstreamPool* owner_pool) : idle_events{this}, pool(owner_pool) {}
  // While idle in the pool, the pool reads it: only a close or a late session ticket is
  // expected.
  struct IdleEvents final : net::Stream::Delegate {
    explicit IdleEvents(UpstreamConn* c) : conn(c) {}
    uv_buf_t ReadBuffer() override;
    void OnRead(ssize_t nread, const char* data) override;
    void OnWriteDone(int) override {}
    UpstreamConn* conn;
  };
  // The session's delegate while it holds it, idle_events in the pool.
  std::unique_ptr<net::Stream> stream;
  IdleEvents idle_events;
  UpstreamPool* pool;  // the worker's pool it was made by
  std::optional<tls::TlsEngine> tls;
  std::string key;            // what it may be reused for (UpstreamPool::HttpKey / TlsKey)
  std::string peer;           // the origin's address, for logs
  IpEndpointAddress address;  // the same, to judge it again before reuse
  std::uint64_t idle_since_ms = 0;
  std::uint32_t exchanges = 0;  // completed on this connection
  std::list<UpstreamConn*>::iterator lru;
};

class UpstreamPool {
 public:
  struct Options {
    // Bounded so that memory does not grow with the number of origins seen: an idle TLS
    // connection costs ~10-20 KiB, a remembered session (with the origin's chain) a few KiB.
    std::size_t max_idle = 64;          // per worker
    std::size_t max_idle_per_key = 16;  // per origin
    std::uint64_t idle_timeout_ms = 30'000;
    std::size_t max_sessions = 256;  // TLS sessions remembered for resumption, per worker
    // How long a full, verified handshake vouches for a name before a session another name
    // left may be resumed for it; and how many such names are remembered.
    std::uint64_t verified_ttl_ms = 3600'000;
    std::size_t max_verified = 10000;
  };
  // Makes the stream of a new origin connection: a TcpStream on the loop in the gateway, an
  // in-memory one in unit tests.
  using StreamFactory = std::function<std::unique_ptr<net::Stream>(net::Stream::Delegate*)>;
  UpstreamPool(uv_loop_t* loop, Options options, StreamFactory make_stream = {});
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  static std::string HttpKey(const std::string& host, std::uint16_t port);
  // The CONNECT host and port, and the name the origin was verified for (the SNI).
  static std::string TlsKey(const std::string& host, std::uint16_t port, const std::string& sni);
  static std::string TlsPrefix(const std::string& host, std::uint16_t port);

  // A new connection whose events go to `delegate` (the caller connects it).
  UpstreamConn* Create(net::Stream::Delegate* delegate);
  // The most recently pooled idle connection for `key`, its events now going to `delegate`;
  // null if none.
  UpstreamConn* Take(const std::string& key, net::Stream::Delegate* delegate);
  // True if an idle connection's key starts with `prefix`.
  bool HasIdle(const std::string& prefix) const;
  // Takes ownership of an idle, healthy connection (reading stopped, no writes pending).
  void Put(UpstreamConn* conn);
  // Closes and frees `conn`, held by a session or (after Remove) idle.
  static void Close(UpstreamConn* conn);

  SSL_SESSION* TlsSession(const std::string& name_port) const;
  void SaveSession(const std::string& name_port, SSL* ssl);
  // "Verified" is per name: a resumed handshake shows no certificate, so a session that one
  // name left (under a wildcard both share) may be offered for another name only once that
  // name's own certificate was seen and verified in a full handshake, within verified_ttl_ms.
  void NoteVerified(const std::string& name_port);
  bool VerifiedRecently(const std::string& name_port) const;

  // Closes idle TLS connections and forgets TLS sessions: the upstream trust store changed,
  // so what was verified under the old one must be verified again.
  void ForgetTls();
  // Closes every idle connection and stops the sweeper: the worker is stopping.
  void Shutdown();

  std::size_t idle() const { return lru_.size(); }
  std::uint64_t reused() const { return reused_; }

  // Where the pool reports to the worker's metrics (each may be null): the bytes of every
  // connection it creates, connections created and reused, and the idle count as a gauge.
  struct Counters {
    net::ByteTally* bytes = nullptr;
    net::LocalCounter* created = nullptr;
    net::LocalCounter* reused = nullptr;
    net::LocalCounter* idle = nullptr;
  };
  void set_counters(Counters counters) { counters_ = counters; }

 private:
  friend struct UpstreamConn;  // its IdleEvents read into scratch_ and report OnIdleRead
  void Remove(UpstreamConn* conn);
  void Sweep();
  void OnIdleRead(UpstreamConn* conn, ssize_t nread, const char* data);

  uv_loop_t* loop_;
  Options options_;
  StreamFactory make_stream_;
  uv_timer_t sweeper_{};
  bool shut_down_ = false;
  std::map<std::string, std::list<UpstreamConn*>> idle_;  // by key, most recent last
  std::list<UpstreamConn*> lru_;                          // all idle, oldest first
  std::unordered_map<std::string, tls::SslSessionPtr> sessions_;
  std::unordered_map<std::string, std::uint64_t> verified_;  // name:port -> when, loop ms
  std::uint64_t reused_ = 0;
  Counters counters_;
  char scratch_[16 * 1024];  // idle reads: only a close or a late session ticket is expected
};

}  // namespace mintgate::proxy
