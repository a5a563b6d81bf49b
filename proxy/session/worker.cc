#include "proxy/session/worker.h"

#include <sys/stat.h>

#include <cstring>
#include <iostream>

#include "proxy/session/session.h"

namespace mintgate::proxy {

namespace {

// What the extra trust was loaded from: each file's path, size and modification time.
std::string TrustStamp(const std::vector<std::string>& files) {
  std::string stamp;
  for (const std::string& file : files) {
    struct stat st {};
    stamp += file;
    if (::stat(file.c_str(), &st) == 0) {
      stamp += ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
               std::to_string(st.st_mtim.tv_nsec);
    }
    stamp += '\n';
  }
  return stamp;
}

}  // namespace

Worker::Worker(int index, RuntimePtr runtime) : index_(index), runtime_(std::move(runtime)) {}

Worker::~Worker() { Join(); }

std::string Worker::Start() {
  std::promise<std::string> started;
  std::future<std::string> result = started.get_future();
  thread_ = std::thread([this, &started] { Run(started); });
  std::string error = result.get();
  if (!error.empty()) Join();
  return error;
}

void Worker::Stop(std::chrono::milliseconds drain) {
  drain_ms_ = drain.count();
  uv_async_send(&stop_async_);
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Run(std::promise<std::string>& started) {
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_async_init(&loop_, &stop_async_,
                [](uv_async_t* a) { static_cast<Worker*>(a->loop->data)->BeginStop(); });
  uv_async_init(&loop_, &reap_async_,
                [](uv_async_t* a) { static_cast<Worker*>(a->loop->data)->ReapClosed(); });
  uv_async_init(&loop_, &post_async_, [](uv_async_t* a) {
    auto* w = static_cast<Worker*>(a->loop->data);
    std::vector<std::function<void()>> run;
    {
      std::lock_guard<std::mutex> lock(w->post_mutex_);
      run.swap(w->posted_);
    }
    for (auto& fn : run) fn();
  });
  uv_timer_init(&loop_, &drain_timer_);
  uv_timer_init(&loop_, &log_flush_);
  uv_unref(reinterpret_cast<uv_handle_t*>(&log_flush_));
  uv_timer_init(&loop_, &defer_timer_);
  std::string error;
  try {
    tls::TlsContextOptions tls_options;
    tls_options.extra_trust = runtime_->config.inspection.extra_trust;
    trust_stamp_ = TrustStamp(tls_options.extra_trust);
    tls_ = std::make_unique<tls::TlsContexts>(tls_options);
    Resolver::Options options;
    options.servers = runtime_->config.dns.servers;
    resolver_ = std::make_unique<Resolver>(&loop_, options);
    pool_ = std::make_unique<UpstreamPool>(&loop_, UpstreamPool::Options{});
    pool_->set_counters({&metrics_.origin_bytes, &metrics_.upstream_connects,
                         &metrics_.upstream_reused, &metrics_.pool_idle});
    error = Listen();
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    BeginStop();
  } else {
    started.set_value("");
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  pool_.reset();
  uv_loop_close(&loop_);
  if (!error.empty()) {
    started.set_value(error);
  } else if (on_stopped_) {
    on_stopped_();
  }
}

std::string Worker::Listen() {
  for (const HostPort& hp : runtime_->config.server.listen) {
    auto listener = std::make_unique<net::Listener>(
        &loop_, [this](uv_stream_t* server) { OnConnection(server); });
    std::string error = listener->Listen(hp.host == "localhost" ? "127.0.0.1" : hp.host, hp.port);
    listeners_.push_back(std::move(listener));
    if (!error.empty()) return error;
  }
  return "";
}

void Worker::OnConnection(uv_stream_t* server) {
  auto client = std::make_unique<net::TcpStream>(&loop_, nullptr);
  // A failed accept leaves nothing behind: the stream's handle frees itself once closed.
  if (client->Accept(server) != 0) return;
  metrics_.accepted.Add();
  auto session = std::make_unique<Session>(*this, std::move(client));
  Session* raw = session.get();
  by_id_.emplace(raw->id(), raw);
  sessions_.emplace(raw, std::move(session));
  raw->Start();
}

void Worker::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(post_mutex_);
  if (posts_closed_) return;  // the loop has ended: nobody is left to run it
  posted_.push_back(std::move(fn));
  uv_async_send(&post_async_);
}

void Worker::Defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (deferred_.size() > 1) return;  // the timer is armed
  uv_timer_start(
      &defer_timer_,
      [](uv_timer_t* t) {
        auto* w = static_cast<Worker*>(t->loop->data);
        std::vector<std::function<void()>> run;
        run.swap(w->deferred_);
        for (auto& deferred : run) deferred();
      },
      0, 0);
}

void Worker::SetRuntime(RuntimePtr runtime) {
  Post([this, runtime = std::move(runtime)]() mutable { ApplyRuntime(std::move(runtime)); });
}

void Worker::ApplyRuntime(RuntimePtr runtime) {
  const std::vector<std::string>& trust = runtime->config.inspection.extra_trust;
  // New contexts only when the extra trust changed (another list, or a file renewed in place):
  // loading the system store again costs tens of milliseconds of this loop.
  if (std::string stamp = TrustStamp(trust); stamp != trust_stamp_) {
    try {
      tls::TlsContextOptions tls_options;
      tls_options.extra_trust = trust;
      // Connections in progress hold their own references to the previous SSL_CTXs.
      tls_ = std::make_unique<tls::TlsContexts>(tls_options);
      trust_stamp_ = std::move(stamp);
      if (pool_) pool_->ForgetTls();  // verified under the old trust: verify again
    } catch (const std::exception& e) {
      std::cerr << "mintgate: worker " << index_
                << ": keeping the previous upstream trust store: " << e.what() << std::endl;
    }
  }
  runtime_ = std::move(runtime);
}

Session* Worker::FindSession(std::uint64_t id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

void Worker::SessionClosed(Session* session) {
  by_id_.erase(session->id());
  metrics_.closed.Add();
  closed_.push_back(session);
  uv_async_send(&reap_async_);
}

void Worker::ReapClosed() {
  std::vector<Session*> closed;
  closed.swap(closed_);
  for (Session* s : closed) sessions_.erase(s);
  if (stopping_ && sessions_.empty()) FinishStop();
}

void Worker::LogQueued() {
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&log_flush_)) != 0) return;
  uv_timer_start(
      &log_flush_, [](uv_timer_t*) { AccessLog::FlushAll(); }, kLogFlushMs, 0);
}

void Worker::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  listeners_.clear();  // each closes its socket
  for (auto& [raw, session] : sessions_) raw->Drain();
  if (sessions_.empty()) {
    FinishStop();
    return;
  }
  uv_timer_start(
      &drain_timer_,
      [](uv_timer_t* t) {
        auto* w = static_cast<Worker*>(t->loop->data);
        for (auto& [raw, session] : w->sessions_)
          raw->Fail({net::ErrorSource::kInternal, net::ErrorKind::kUnavailable,
                     "the gateway is shutting down", 0});
      },
      static_cast<std::uint64_t>(drain_ms_.load()), 0);
}

void Worker::FinishStop() {
  if (finished_) return;
  finished_ = true;
  resolver_.reset();
  if (pool_) pool_->Shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&reap_async_), nullptr);
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    posts_closed_ = true;
    posted_.clear();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&post_async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  deferred_.clear();
  uv_close(reinterpret_cast<uv_handle_t*>(&defer_timer_), nullptr);
  AccessLog::FlushAll();  // what the last sessions logged, before the timer goes
  uv_close(reinterpret_cast<uv_handle_t*>(&log_flush_), nullptr);
}

}  // namespace mintgate::proxy
