#include "fakes.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

namespace mintgate::proxy::testing {

FakeTimer::FakeTimer(FakeClock& clock) : clock_(clock) { clock_.timers_.insert(this); }

FakeTimer::~FakeTimer() { clock_.timers_.erase(this); }

void FakeTimer::Start(std::uint64_t ms, std::function<void()> fire) {
  active_ = true;
  due_ = clock_.now_ + ms;
  fire_ = std::move(fire);
}

void FakeTimer::Stop() {
  active_ = false;
  fire_ = nullptr;
}

void FakeClock::Advance(std::uint64_t ms, const std::function<void()>& between) {
  const std::uint64_t until = now_ + ms;
  while (true) {
    FakeTimer* next = nullptr;
    for (FakeTimer* t : timers_) {
      if (t->active_ && t->due_ <= until && (next == nullptr || t->due_ < next->due_)) next = t;
    }
    if (next == nullptr) break;
    now_ = std::max(now_, next->due_);
    next->active_ = false;
    std::function<void()> fire = std::move(next->fire_);
    next->fire_ = nullptr;
    fire();  // may destroy `next`, or re-arm it
    if (between) between();
  }
  now_ = until;
}

MemoryStream::~MemoryStream() {
  *alive_ = false;
  auto& all = net_.connections_;
  std::replace(all.begin(), all.end(), this, static_cast<MemoryStream*>(nullptr));
}

int MemoryStream::Connect(const sockaddr* address, std::function<void(int)> done) {
  char ip[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
    port = ntohs(v4->sin_port);
  }
  const std::string where = std::string(ip) + ":" + std::to_string(port);
  peer_address_ = ip;
  auto it = net_.origins_.find(where);
  const MemoryNet::OriginMode mode =
      it == net_.origins_.end() ? MemoryNet::OriginMode::kRefuse : it->second;
  if (mode == MemoryNet::OriginMode::kBlackhole) return 0;  // never answers
  if (mode == MemoryNet::OriginMode::kAccept) net_.connections_.push_back(this);
  std::weak_ptr<bool> alive = alive_;
  net_.Later([this, alive, done = std::move(done), mode] {
    if (alive.expired() || !*alive.lock() || closed_) return;
    done(mode == MemoryNet::OriginMode::kAccept ? 0 : UV_ECONNREFUSED);
  });
  return 0;
}

void MemoryStream::StartReading() {
  reading_ = true;
  if (!inbox_.empty() || (inbox_end_ && !end_delivered_)) {
    std::weak_ptr<bool> alive = alive_;
    net_.Later([this, alive] {
      if (!alive.expired() && *alive.lock()) Deliver();
    });
  }
}

void MemoryStream::Deliver() {
  while (reading_ && !closed_ && !inbox_.empty()) {
    const std::size_t n = std::min(inbox_.size(), sizeof buffer_);
    std::memcpy(buffer_, inbox_.data(), n);
    inbox_.erase(0, n);
    bytes_read_ += n;
    if (tally_ != nullptr) tally_->read.Add(n);
    std::weak_ptr<bool> alive = alive_;
    delegate_->OnRead(static_cast<ssize_t>(n), buffer_);
    if (alive.expired() || !*alive.lock()) return;
  }
  if (reading_ && !closed_ && inbox_.empty() && inbox_end_ && !end_delivered_) {
    end_delivered_ = true;
    delegate_->OnRead(inbox_reset_ ? UV_ECONNRESET : UV_EOF, nullptr);
  }
}

bool MemoryStream::Write(std::string data) {
  if (closed_ || shutdown_) return false;
  bytes_written_ += data.size();
  if (tally_ != nullptr) tally_->written.Add(data.size());
  if (!peer_->accepts || !queued_.empty()) {
    queued_ += data;
    return true;
  }
  peer_->received += data;
  return true;
}

void MemoryStream::Drain() {
  peer_->accepts = true;
  if (queued_.empty()) return;
  peer_->received += queued_;
  queued_.clear();
  std::weak_ptr<bool> alive = alive_;
  net_.Later([this, alive] {
    if (!alive.expired() && *alive.lock() && !closed_) delegate_->OnWriteDone(0);
  });
}

bool MemoryStream::Shutdown() {
  if (closed_) return false;
  shutdown_ = true;
  if (queued_.empty()) peer_->ended = true;
  return true;
}

void MemoryStream::Close() {
  closed_ = true;
  reading_ = false;
  peer_->ended = true;
}

void MemoryStream::Send(std::string bytes) {
  inbox_ += bytes;
  std::weak_ptr<bool> alive = alive_;
  net_.Later([this, alive] {
    if (!alive.expired() && *alive.lock()) Deliver();
  });
}

void MemoryStream::SendReset() {
  inbox_reset_ = true;
  SendEnd();
}

void MemoryStream::SendEnd() {
  inbox_end_ = true;
  std::weak_ptr<bool> alive = alive_;
  net_.Later([this, alive] {
    if (!alive.expired() && *alive.lock()) Deliver();
  });
}

bool MemoryNet::RunOne() {
  if (events_.empty()) return false;
  std::function<void()> fn = std::move(events_.front());
  events_.pop_front();
  fn();
  return true;
}

void FakeResolver::Add(const std::string& host, const std::string& ipv4) {
  IpEndpointAddress a;
  a.family = AF_INET;
  inet_pton(AF_INET, ipv4.c_str(), a.bytes.data());
  table_[host].push_back(a);
}

std::uint64_t FakeResolver::Resolve(const std::string& host, Callback callback) {
  const std::uint64_t id = ++last_id_;
  net_.Later([this, id, host, callback = std::move(callback)] {
    if (cancelled_.count(id) != 0) return;
    ResolveResult result;
    auto it = table_.find(host);
    if (it == table_.end()) {
      result.error = "DNS: no such host " + host;
    } else {
      result.ok = true;
      result.addresses = it->second;
    }
    callback(result);
  });
  return id;
}

FakeContext::FakeContext(RuntimePtr runtime, uv_loop_t* loop) : runtime_(std::move(runtime)) {
  tls_ = std::make_unique<tls::TlsContexts>(tls::TlsContextOptions{});
  pool_ = std::make_unique<UpstreamPool>(
      loop, UpstreamPool::Options{}, [this](net::Stream::Delegate* delegate) {
        return std::make_unique<MemoryStream>(net_, delegate, "");
      });
  pool_->set_counters({&metrics_.origin_bytes, &metrics_.upstream_connects,
                       &metrics_.upstream_reused, &metrics_.pool_idle});
}

FakeContext::FakeContext(RuntimePtr runtime, uv_loop_t* loop,
                         const tls::TlsContextOptions& tls_options)
    : runtime_(std::move(runtime)) {
  tls_ = std::make_unique<tls::TlsContexts>(tls_options);
  pool_ = std::make_unique<UpstreamPool>(
      loop, UpstreamPool::Options{}, [this](net::Stream::Delegate* delegate) {
        return std::make_unique<MemoryStream>(net_, delegate, "");
      });
  pool_->set_counters({&metrics_.origin_bytes, &metrics_.upstream_connects,
                       &metrics_.upstream_reused, &metrics_.pool_idle});
}

FakeContext::~FakeContext() {
  for (auto& [id, session] : sessions_) {
    if (FindSession(id) != nullptr) {
      session->Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable, "test over", 0});
    }
  }
  sessions_.clear();
  pool_->Shutdown();
  pool_.reset();
}

Session* FakeContext::FindSession(std::uint64_t id) {
  if (std::find(closed_.begin(), closed_.end(), id) != closed_.end()) return nullptr;
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void FakeContext::SessionClosed(Session* session) { closed_.push_back(session->id()); }

MemoryStream* FakeContext::Connect(const std::string& client_ip) {
  auto stream = std::make_unique<MemoryStream>(net_, nullptr, client_ip);
  MemoryStream* raw = stream.get();
  auto session = std::make_unique<Session>(*this, std::move(stream));
  Session* s = session.get();
  sessions_.emplace(s->id(), std::move(session));
  s->Start();
  Pump();
  return raw;
}

void FakeContext::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(posted_mutex_);
  posted_.push_back(std::move(fn));
}

bool FakeContext::WaitForPosted(int seconds) {
  for (int i = 0; i < seconds * 100; ++i) {
    {
      std::lock_guard<std::mutex> lock(posted_mutex_);
      if (!posted_.empty()) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void FakeContext::Pump() {
  for (int i = 0; i < 100000; ++i) {
    std::vector<std::function<void()>> posted;
    if (!hold_posted) {
      std::lock_guard<std::mutex> lock(posted_mutex_);
      posted.swap(posted_);
    }
    for (auto& fn : posted) net_.Later(std::move(fn));
    if (!net_.RunOne()) break;
  }
  for (std::uint64_t id : closed_) sessions_.erase(id);
  closed_.clear();
}

void FakeContext::Advance(std::uint64_t ms) {
  clock_.Advance(ms, [this] { Pump(); });
  Pump();
}

}  // namespace mintgate::proxy::testing
