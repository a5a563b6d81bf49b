// Test doubles at the session's seams: a clock that moves only when told, in-memory streams
// and a network of them, a resolver with a table, and a SessionContext that runs what the
// session posts or defers when the test pumps. A session driven by these runs its real code
// (parsers, rules, pool, access log) with no socket and no sleeping.
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "proxy/dns/resolver.h"
#include "proxy/net/clock.h"
#include "proxy/net/tcp_stream.h"
#include "proxy/session/session.h"
#include "proxy/session/session_context.h"

namespace mintgate::proxy::testing {

class FakeClock;

class FakeTimer final : public net::Timer {
 public:
  explicit FakeTimer(FakeClock& clock);
  ~FakeTimer() override;
  void Start(std::uint64_t ms, std::function<void()> fire) override;
  void Stop() override;
  bool active() const override { return active_; }

 private:
  friend class FakeClock;
  FakeClock& clock_;
  bool active_ = false;
  std::uint64_t due_ = 0;
  std::function<void()> fire_;
};

class FakeClock final : public net::Clock {
 public:
  std::uint64_t NowMs() const override { return now_; }
  std::unique_ptr<net::Timer> NewTimer() override { return std::make_unique<FakeTimer>(*this); }
  // Moves time forward by `ms`, firing every timer that falls due on the way, in order, each
  // at its own time. `between` runs after each one (the test's pump).
  void Advance(std::uint64_t ms, const std::function<void()>& between = {});

 private:
  friend class FakeTimer;
  std::uint64_t now_ = 1'000'000;
  std::set<FakeTimer*> timers_;
};

class MemoryNet;

// The test's end of an in-memory connection: what the gateway sent, and what to send it.
struct Peer {
  std::string received;
  bool ended = false;   // the gateway shut down or closed its end
  bool accepts = true;  // false: the peer reads nothing, the gateway's writes queue up
};

// The gateway's end: a net::Stream whose bytes go to a Peer, and to which the test (through
// MemoryNet) delivers bytes.
class MemoryStream final : public net::Stream {
 public:
  MemoryStream(MemoryNet& net, Delegate* delegate, std::string peer_address)
      : net_(net), delegate_(delegate), peer_address_(std::move(peer_address)) {}
  ~MemoryStream() override;

  int Connect(const sockaddr* address, std::function<void(int)> done) override;
  void SetNoDelay() override {}
  void SetKeepAlive(std::uint64_t) override {}
  void set_delegate(Delegate* delegate) override { delegate_ = delegate; }
  void StartReading() override;
  void StopReading() override { reading_ = false; }
  bool reading() const override { return reading_; }
  bool Write(std::string data) override;
  bool Shutdown() override;
  void Close() override;
  bool closed() const override { return closed_; }
  std::size_t queued_bytes() const override { return queued_.size(); }
  std::size_t pending_writes() const override { return queued_.empty() ? 0 : 1; }
  std::uint64_t bytes_read() const override { return bytes_read_; }
  std::uint64_t bytes_written() const override { return bytes_written_; }
  std::string PeerAddress() const override { return peer_address_; }
  std::string LocalAddress(std::uint16_t* port) const override {
    if (port != nullptr) *port = 3128;
    return "127.0.0.1";
  }

  // The test side.
  Peer& peer() { return *peer_; }
  std::shared_ptr<Peer> shared_peer() const { return peer_; }
  void Send(std::string bytes);  // delivered while the gateway reads
  void SendEnd();                // FIN after what was sent
  void SendReset();              // a reset (ECONNRESET) after what was sent
  void Drain();                  // the peer reads what queued while it did not accept

 private:
  friend class MemoryNet;
  void Deliver();  // hands inbox_ to the delegate while reading

  MemoryNet& net_;
  Delegate* delegate_;
  std::string peer_address_;
  std::shared_ptr<Peer> peer_ = std::make_shared<Peer>();
  std::string inbox_;
  bool inbox_end_ = false;
  bool inbox_reset_ = false;
  bool end_delivered_ = false;
  bool reading_ = false;
  bool closed_ = false;
  bool shutdown_ = false;
  std::string queued_;  // written while the peer did not accept
  std::uint64_t bytes_read_ = 0;
  std::uint64_t bytes_written_ = 0;
  char buffer_[64 * 1024];
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The in-memory network: origins listening at "ip:port", connections made to them, and the
// queue of events the test pumps.
class MemoryNet {
 public:
  enum class OriginMode { kAccept, kRefuse, kBlackhole };
  void Listen(const std::string& ip_port, OriginMode mode = OriginMode::kAccept) {
    origins_[ip_port] = mode;
  }
  // The origin side of every connection the gateway made, oldest first.
  std::vector<MemoryStream*>& connections() { return connections_; }
  void Later(std::function<void()> fn) { events_.push_back(std::move(fn)); }
  // Runs queued events (and what they queue) until none is left.
  bool RunOne();

 private:
  friend class MemoryStream;
  std::map<std::string, OriginMode> origins_;
  std::vector<MemoryStream*> connections_;
  std::deque<std::function<void()>> events_;
};

class FakeResolver final : public HostResolver {
 public:
  explicit FakeResolver(MemoryNet& net) : net_(net) {}
  void Add(const std::string& host, const std::string& ipv4);
  std::uint64_t Resolve(const std::string& host, Callback callback) override;
  void Cancel(std::uint64_t id) override { cancelled_.insert(id); }

 private:
  MemoryNet& net_;
  std::map<std::string, std::vector<IpEndpointAddress>> table_;
  std::set<std::uint64_t> cancelled_;
  std::uint64_t last_id_ = 0;
};

// A worker without a loop thread: sessions run on the test's thread when it pumps.
class FakeContext final : public SessionContext {
 public:
  FakeContext(RuntimePtr runtime, uv_loop_t* loop);
  // The same with the origin-facing TLS contexts built from `tls_options`, as a Worker builds
  // them from inspection.extra_trust (the other constructor trusts the system store only).
  FakeContext(RuntimePtr runtime, uv_loop_t* loop, const tls::TlsContextOptions& tls_options);
  ~FakeContext();

  const RuntimePtr& runtime_ptr() const override { return runtime_; }
  std::uint64_t NextSessionId() override { return ++last_id_; }
  net::Clock& clock() override { return clock_; }
  HostResolver& resolver() override { return resolver_; }
  UpstreamPool& pool() override { return *pool_; }
  tls::TlsContexts& tls() override { return *tls_; }
  // From any thread (a leaf minted on a mint thread): queued until the test's next Pump.
  void Post(std::function<void()> fn) override;
  void Defer(std::function<void()> fn) override { net_.Later(std::move(fn)); }
  Session* FindSession(std::uint64_t id) override;
  void SessionClosed(Session* session) override;
  void LogQueued() override {}
  uv_buf_t ReadBuffer() override { return uv_buf_init(read_buffer_, sizeof read_buffer_); }
  bool stopping() const override { return false; }
  WorkerMetrics& metrics() override { return metrics_; }
  WorkerMetrics metrics_;

  // A client connection from `client_ip`; its test side is the returned stream's peer.
  MemoryStream* Connect(const std::string& client_ip = "127.0.0.1");
  // Runs every queued event; then destroys sessions that closed.
  void Pump();
  // Advances the fake clock, pumping after each timer.
  void Advance(std::uint64_t ms);
  std::size_t open_sessions() const { return sessions_.size(); }
  // While set, what other threads post (a minted leaf) is kept back: a loop that never gets
  // to it, for the timeouts that wait for one.
  bool hold_posted = false;
  // Waits (up to `seconds`, on the real clock) until another thread has posted something.
  bool WaitForPosted(int seconds);

  FakeClock clock_;
  MemoryNet net_;
  FakeResolver resolver_{net_};

 private:
  RuntimePtr runtime_;
  std::unique_ptr<tls::TlsContexts> tls_;
  std::unique_ptr<UpstreamPool> pool_;
  std::map<std::uint64_t, std::unique_ptr<Session>> sessions_;
  std::vector<std::uint64_t> closed_;
  std::uint64_t last_id_ = 0;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  char read_buffer_[64 * 1024];
};

}  // namespace mintgate::proxy::testing
