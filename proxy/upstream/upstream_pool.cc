#include "proxy/upstream/upstream_pool.h"

#include <algorithm>
#include <utility>

namespace mintgate::proxy {

UpstreamPool::UpstreamPool(uv_loop_t* loop, Options options, StreamFactory make_stream)
    : loop_(loop), options_(options), make_stream_(std::move(make_stream)) {
  if (!make_stream_) {
    make_stream_ = [loop](net::Stream::Delegate* delegate) {
      return std::make_unique<net::TcpStream>(loop, delegate);
    };
  }
  uv_timer_init(loop_, &sweeper_);
  sweeper_.data = this;
  const std::uint64_t every = std::max<std::uint64_t>(options_.idle_timeout_ms / 4, 100);
  uv_timer_start(
      &sweeper_, [](uv_timer_t* t) { static_cast<UpstreamPool*>(t->data)->Sweep(); }, every, every);
  uv_unref(reinterpret_cast<uv_handle_t*>(&sweeper_));  // never keeps the loop alive
}

UpstreamPool::~UpstreamPool() { Shutdown(); }

std::string UpstreamPool::HttpKey(const std::string& host, std::uint16_t port) {
  return "http " + host + ":" + std::to_string(port);
}

std::string UpstreamPool::TlsPrefix(const std::string& host, std::uint16_t port) {
  return "tls " + host + ":" + std::to_string(port) + " ";
}

std::string UpstreamPool::TlsKey(const std::string& host, std::uint16_t port,
                                 const std::string& sni) {
  return TlsPrefix(host, port) + sni;
}

UpstreamConn* UpstreamPool::Create(net::Stream::Delegate* delegate) {
  auto* conn = new UpstreamConn(this);
  conn->stream = make_stream_(delegate);
  conn->stream->set_tally(counters_.bytes);
  if (counters_.created != nullptr) counters_.created->Add();
  return conn;
}

UpstreamConn* UpstreamPool::Take(const std::string& key, net::Stream::Delegate* delegate) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  UpstreamConn* conn = it->second.back();
  Remove(conn);
  conn->stream->StopReading();
  conn->stream->set_delegate(delegate);
  ++reused_;
  if (counters_.reused != nullptr) counters_.reused->Add();
  return conn;
}

bool UpstreamPool::HasIdle(const std::string& prefix) const {
  auto it = idle_.lower_bound(prefix);
  return it != idle_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

void UpstreamPool::Put(UpstreamConn* conn) {
  conn->stream->StopReading();
  conn->stream->set_delegate(&conn->idle_events);
  auto it = idle_.find(conn->key);
  if (shut_down_ || (it != idle_.end() && it->second.size() >= options_.max_idle_per_key)) {
    Close(conn);
    return;
  }
  if (lru_.size() >= options_.max_idle) {
    UpstreamConn* oldest = lru_.front();
    Remove(oldest);
    Close(oldest);
  }
  idle_[conn->key].push_back(conn);
  conn->lru = lru_.insert(lru_.end(), conn);
  conn->idle_since_ms = uv_now(loop_);
  if (counters_.idle != nullptr) counters_.idle->Set(lru_.size());
  // Watch it: the origin closing it (or a TLS 1.3 session ticket arriving late) is all that
  // may come while nobody asked anything.
  conn->stream->StartReading();
}

uv_buf_t UpstreamConn::IdleEvents::ReadBuffer() {
  return uv_buf_init(conn->pool->scratch_, sizeof conn->pool->scratch_);
}

void UpstreamConn::IdleEvents::OnRead(ssize_t nread, const char* data) {
  conn->pool->OnIdleRead(conn, nread, data);
}

void UpstreamPool::OnIdleRead(UpstreamConn* conn, ssize_t nread, const char* data) {
  if (nread > 0 && conn->tls) {
    conn->tls->FeedCiphertext(data, static_cast<std::size_t>(nread));
    const std::string plain = conn->tls->ReadPlaintext();
    if (plain.empty() && !conn->tls->closed() && conn->tls->TakeCiphertext().empty()) {
      return;  // a session ticket or a key update: still a healthy idle connection
    }
  }
  // Data nobody asked for, a close, or an error: this connection cannot be reused.
  Remove(conn);
  Close(conn);
}

void UpstreamPool::Remove(UpstreamConn* conn) {
  auto it = idle_.find(conn->key);
  if (it != idle_.end()) {
    it->second.remove(conn);
    if (it->second.empty()) idle_.erase(it);
  }
  lru_.erase(conn->lru);
  conn->lru = {};
  if (counters_.idle != nullptr) counters_.idle->Set(lru_.size());
}

void UpstreamPool::Close(UpstreamConn* conn) {
  conn->stream->Close();  // its handle is freed when libuv is done with it
  delete conn;
}

void UpstreamPool::Sweep() {
  const std::uint64_t now = uv_now(loop_);
  while (!lru_.empty() && now - lru_.front()->idle_since_ms >= options_.idle_timeout_ms) {
    UpstreamConn* oldest = lru_.front();
    Remove(oldest);
    Close(oldest);
  }
}

SSL_SESSION* UpstreamPool::TlsSession(const std::string& name_port) const {
  auto it = sessions_.find(name_port);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void UpstreamPool::SaveSession(const std::string& name_port, SSL* ssl) {
  tls::SslSessionPtr session(SSL_get1_session(ssl));
  if (!session || SSL_SESSION_is_resumable(session.get()) != 1) return;
  if (sessions_.size() >= options_.max_sessions && sessions_.count(name_port) == 0) {
    sessions_.erase(sessions_.begin());  // any one: the cache only saves handshakes
  }
  sessions_[name_port] = std::move(session);
}

void UpstreamPool::NoteVerified(const std::string& name_port) {
  if (verified_.size() >= options_.max_verified && verified_.count(name_port) == 0) {
    verified_.erase(verified_.begin());  // forgetting one only costs it a full handshake
  }
  verified_[name_port] = uv_now(loop_);
}

bool UpstreamPool::VerifiedRecently(const std::string& name_port) const {
  auto it = verified_.find(name_port);
  return it != verified_.end() && uv_now(loop_) - it->second < options_.verified_ttl_ms;
}

void UpstreamPool::ForgetTls() {
  for (auto it = lru_.begin(); it != lru_.end();) {
    UpstreamConn* conn = *it++;
    if (!conn->tls) continue;
    Remove(conn);
    Close(conn);
  }
  sessions_.clear();
  verified_.clear();
}

void UpstreamPool::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  while (!lru_.empty()) {
    UpstreamConn* conn = lru_.front();
    Remove(conn);
    Close(conn);
  }
  sessions_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&sweeper_), nullptr);
}

}  // namespace mintgate::proxy
