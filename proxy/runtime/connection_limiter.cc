#include "proxy/runtime/connection_limiter.h"

#include <string_view>

namespace mintgate::proxy {

std::size_t ConnectionLimiter::Hash::operator()(const rules::IpAddress& a) const {
  const auto& b = a.bytes();
  return std::hash<std::string_view>()(
      std::string_view(reinterpret_cast<const char*>(b.data()), a.bit_width() / 8));
}

ConnectionLimiter::Verdict ConnectionLimiter::Admit(const rules::IpAddress& client,
                                                    std::size_t max_total,
                                                    std::size_t max_per_client) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::size_t open = open_.load(std::memory_order_relaxed);
  if (max_total != 0 && open >= max_total) {
    refused_total_.fetch_add(1, std::memory_order_relaxed);
    return Verdict::kTooMany;
  }
  std::size_t& mine = per_client_[client];
  if (max_per_client != 0 && mine >= max_per_client) {
    if (mine == 0) per_client_.erase(client);
    refused_per_client_.fetch_add(1, std::memory_order_relaxed);
    return Verdict::kTooManyFromClient;
  }
  ++mine;
  open_.store(open + 1, std::memory_order_relaxed);
  return Verdict::kAdmitted;
}

void ConnectionLimiter::Release(const rules::IpAddress& client) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = per_client_.find(client);
  if (it == per_client_.end()) return;  // never admitted: a bug elsewhere, not worth a crash
  if (--it->second == 0) per_client_.erase(it);
  open_.fetch_sub(1, std::memory_order_relaxed);
}

std::size_t ConnectionLimiter::clients() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return per_client_.size();
}

}  // namespace mintgate::proxy
