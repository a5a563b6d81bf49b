#include "proxy/dns/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "rules/canonical_host.h"

namespace mintgate::proxy {

rules::IpAddress IpEndpointAddress::ip() const {
  if (family == AF_INET) {
    return rules::IpAddress::V4((std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                                (std::uint32_t{bytes[2]} << 8) | bytes[3]);
  }
  return rules::IpAddress::V6(bytes);
}

std::string IpEndpointAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family != AF_INET && family != AF_INET6) return {};
  if (inet_ntop(family, bytes.data(), buf, sizeof buf) == nullptr) return {};
  return buf;
}

namespace {

using Clock = std::chrono::steady_clock;

template <typename Handle>
void CloseAndFree(Handle* handle) {
  uv_close(reinterpret_cast<uv_handle_t*>(handle),
           [](uv_handle_t* h) { delete reinterpret_cast<Handle*>(h); });
}

std::string ReasonFor(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
      return "nxdomain";
    case ARES_ETIMEOUT:
      return "timeout";
    case ARES_ESERVFAIL:
      return "servfail";
    case ARES_EREFUSED:
      return "refused";
    case ARES_ECONNREFUSED:
      return "unreachable";
    default:
      return "other";
  }
}

std::string ErrorFor(int status, const std::string& host) {
  switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
      return "DNS: no such host " + host;
    case ARES_ETIMEOUT:
      return "DNS: timed out resolving " + host;
    case ARES_ESERVFAIL:
      return "DNS: server failure resolving " + host;
    case ARES_EREFUSED:
      return "DNS: query refused by server resolving " + host;
    case ARES_ECONNREFUSED:
      return "DNS: could not contact a DNS server resolving " + host;
    default:
      return "DNS: error resolving " + host + ": " + ares_strerror(status);
  }
}

}  // namespace

struct Resolver::Impl {
  // A c-ares lookup shared by every Resolve() of the same host while it is in flight. It is
  // owned by c-ares' callback, which always runs exactly once (with ARES_EDESTRUCTION at
  // ares_destroy), so it may outlive its waiters when the overall timeout fires first.
  struct Query {
    Impl* impl = nullptr;
    std::string host;  // the cache key
    std::vector<std::uint64_t> waiters;
    uv_timer_t* deadline = nullptr;  // null once the waiters have been answered
  };

  struct Poll {
    uv_poll_t handle;
    Impl* impl;
    ares_socket_t fd;
  };

  struct CacheEntry {
    Clock::time_point expires;
    ResolveResult result;
  };

  uv_loop_t* loop;
  Options options;
  ares_channel channel = nullptr;
  uv_timer_t* ares_timer = nullptr;
  uv_idle_t* deliver_idle = nullptr;
  std::unordered_map<ares_socket_t, Poll*> polls;
  std::unordered_map<std::uint64_t, Callback> requests;
  std::deque<std::pair<std::uint64_t, ResolveResult>> deliveries;
  std::unordered_map<std::string, Query*> inflight;
  std::unordered_map<std::string, CacheEntry> cache;
  std::size_t outstanding = 0;  // c-ares lookups not yet called back
  std::uint64_t next_id = 1;
  bool destroying = false;
  // Lets the delivery loop notice that a user callback destroyed the Resolver.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  Stats stats;

  Impl(uv_loop_t* l, Options o) : loop(l), options(std::move(o)) {}

  void Init() {
    static std::once_flag once;
    int lib_status = ARES_SUCCESS;
    std::call_once(once, [&] { lib_status = ares_library_init(ARES_LIB_INIT_ALL); });
    if (lib_status != ARES_SUCCESS) {
      throw std::runtime_error(std::string("DNS: cannot initialise c-ares: ") +
                               ares_strerror(lib_status));
    }

    ares_options opts{};
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_DOMAINS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    opts.sock_state_cb = &Impl::OnSockState;
    opts.sock_state_cb_data = this;
    // A proxy resolves the absolute names of URLs; appending search domains would turn a
    // typo into a lookup of some internal name and multiply the queries for NXDOMAIN.
    opts.domains = nullptr;
    opts.ndomains = 0;
    // Per-try timeout small enough that a lost UDP packet is retried (c-ares doubles it per
    // round) well within the overall timeout, which the deadline timer enforces anyway.
    const auto total_ms = std::max<long long>(options.timeout.count(), 1);
    opts.timeout = static_cast<int>(std::clamp<long long>(total_ms / 3, 50, 2000));
    opts.tries = 3;
    int status = ares_init_options(&channel, &opts, mask);
    if (status != ARES_SUCCESS) {
      channel = nullptr;
      throw std::runtime_error(std::string("DNS: cannot initialise c-ares: ") +
                               ares_strerror(status));
    }
    if (!options.servers.empty()) {
      try {
        SetServers();
      } catch (...) {
        ares_destroy(channel);
        channel = nullptr;
        throw;
      }
    }

    ares_timer = new uv_timer_t;
    uv_timer_init(loop, ares_timer);
    ares_timer->data = this;
    deliver_idle = new uv_idle_t;
    uv_idle_init(loop, deliver_idle);
    deliver_idle->data = this;
  }

  void SetServers() {
    std::vector<ares_addr_port_node> nodes(options.servers.size());
    for (std::size_t i = 0; i < options.servers.size(); ++i) {
      const HostPort& server = options.servers[i];
      ares_addr_port_node& node = nodes[i];
      node.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
      if (inet_pton(AF_INET, server.host.c_str(), &node.addr.addr4) == 1) {
        node.family = AF_INET;
      } else if (inet_pton(AF_INET6, server.host.c_str(), &node.addr.addr6) == 1) {
        node.family = AF_INET6;
      } else {
        throw std::runtime_error("DNS: server must be an IP address: " + server.host);
      }
      const int port = server.port != 0 ? server.port : 53;
      node.udp_port = port;
      node.tcp_port = port;
    }
    int status = ares_set_servers_ports(channel, nodes.data());
    if (status != ARES_SUCCESS) {
      throw std::runtime_error(std::string("DNS: cannot set servers: ") + ares_strerror(status));
    }
  }

  ~Impl() {
    *alive = false;
    destroying = true;
    // Runs the pending lookups' callbacks with ARES_EDESTRUCTION (they free their Query and
    // deadline timer) and reports every socket closed, which closes the polls.
    if (channel != nullptr) ares_destroy(channel);
    for (auto& [fd, poll] : polls) ClosePoll(poll);
    polls.clear();
    if (ares_timer != nullptr) CloseAndFree(ares_timer);
    if (deliver_idle != nullptr) CloseAndFree(deliver_idle);
  }

  // --- c-ares <-> libuv -----------------------------------------------------------------

  static void OnSockState(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Impl*>(data);
    auto it = self->polls.find(fd);
    if (!readable && !writable) {
      if (it != self->polls.end()) {
        ClosePoll(it->second);
        self->polls.erase(it);
      }
      return;
    }
    Poll* poll = nullptr;
    if (it == self->polls.end()) {
      poll = new Poll{};
      poll->impl = self;
      poll->fd = fd;
      if (uv_poll_init_socket(self->loop, &poll->handle, fd) != 0) {
        delete poll;
        return;  // c-ares' own timeouts will then fail the query
      }
      poll->handle.data = poll;
      self->polls.emplace(fd, poll);
    } else {
      poll = it->second;
    }
    const int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    uv_poll_start(&poll->handle, events, &Impl::OnPoll);
  }

  static void ClosePoll(Poll* poll) {
    uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle),
             [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* poll = static_cast<Poll*>(handle->data);
    Impl* self = poll->impl;
    const ares_socket_t fd = poll->fd;
    // On a poll error, let c-ares try both directions so it notices the broken socket.
    const bool readable = status < 0 || (events & UV_READABLE) != 0;
    const bool writable = status < 0 || (events & UV_WRITABLE) != 0;
    ares_process_fd(self->channel, readable ? fd : ARES_SOCKET_BAD,
                    writable ? fd : ARES_SOCKET_BAD);
    self->UpdateAresTimer();
  }

  static void OnAresTimer(uv_timer_t* timer) {
    auto* self = static_cast<Impl*>(timer->data);
    ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    self->UpdateAresTimer();
  }

  void UpdateAresTimer() {
    if (outstanding == 0) {
      uv_timer_stop(ares_timer);
      return;
    }
    timeval max_tv{1, 0};
    timeval tv{};
    timeval* next = ares_timeout(channel, &max_tv, &tv);
    std::uint64_t ms = static_cast<std::uint64_t>(next->tv_sec) * 1000 +
                       static_cast<std::uint64_t>(next->tv_usec + 999) / 1000;
    uv_timer_start(ares_timer, &Impl::OnAresTimer, std::max<std::uint64_t>(ms, 1), 0);
  }

  // --- lookups --------------------------------------------------------------------------

  std::uint64_t Resolve(const std::string& host_in, Callback callback) {
    const std::uint64_t id = next_id++;
    requests.emplace(id, std::move(callback));

    ResolveResult result;
    // Only a DNS name or an IP literal goes on, in its one canonical spelling: a numeric
    // spelling ("0177.1", "127.0.0.01") is its address here too, never a name for DNS, whose
    // answer could differ from what the rules judged.
    std::string why;
    std::optional<rules::CanonicalHost> canonical = rules::CanonicalizeHost(host_in, &why);
    if (!canonical) {
      result.error = "DNS: " + why;
      result.reason = "invalid_name";
      ++stats.failures;
      Deliver(id, std::move(result));
      return id;
    }
    if (canonical->address) {
      const rules::IpAddress& ip = *canonical->address;
      IpEndpointAddress literal;
      literal.family = ip.family() == rules::IpAddress::Family::kV4 ? AF_INET : AF_INET6;
      literal.bytes = ip.bytes();
      result.ok = true;
      result.addresses.push_back(literal);
      Deliver(id, std::move(result));
      return id;
    }
    const std::string& host = canonical->name;

    std::string key = host;
    if (auto it = cache.find(key); it != cache.end()) {
      if (Clock::now() < it->second.expires) {
        ++stats.cache_hits;
        result = it->second.result;
        result.from_cache = true;
        Deliver(id, std::move(result));
        return id;
      }
      cache.erase(it);
    }

    if (auto it = inflight.find(key); it != inflight.end()) {
      it->second->waiters.push_back(id);
      return id;
    }
    StartQuery(std::move(key), id);
    return id;
  }

  void StartQuery(std::string key, std::uint64_t id) {
    auto* query = new Query;
    query->impl = this;
    query->host = std::move(key);
    query->waiters.push_back(id);
    query->deadline = new uv_timer_t;
    uv_timer_init(loop, query->deadline);
    query->deadline->data = query;
    uv_timer_start(query->deadline, &Impl::OnDeadline,
                   static_cast<std::uint64_t>(std::max<long long>(options.timeout.count(), 1)), 0);
    inflight.emplace(query->host, query);
    ++outstanding;
    ++stats.queries;

    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    // We order the answers ourselves; c-ares' RFC 6724 sort costs a socket per address.
    hints.ai_flags = ARES_AI_NOSORT;
    // The callback may run synchronously (e.g. /etc/hosts); it only queues deliveries, and
    // `query` must not be touched after this call.
    const std::string name = query->host;
    ares_getaddrinfo(channel, name.c_str(), nullptr, &hints, &Impl::OnAddrInfo, query);
    UpdateAresTimer();
  }

  static void OnDeadline(uv_timer_t* timer) {
    auto* query = static_cast<Query*>(timer->data);
    Impl* self = query->impl;
    ++self->stats.timeouts;
    ResolveResult result;
    result.error = "DNS: timed out resolving " + query->host;
    result.reason = "timeout";
    self->Finish(query, result);
  }

  // Answers the waiters once; the c-ares lookup may still be running after a timeout.
  void Finish(Query* query, const ResolveResult& result) {
    if (query->deadline == nullptr) return;
    CloseAndFree(query->deadline);
    query->deadline = nullptr;
    if (auto it = inflight.find(query->host); it != inflight.end() && it->second == query) {
      inflight.erase(it);
    }
    if (!result.ok) ++stats.failures;
    for (std::uint64_t id : query->waiters) Deliver(id, result);
    query->waiters.clear();
  }

  static void OnAddrInfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* info) {
    auto* query = static_cast<Query*>(arg);
    Impl* self = query->impl;
    if (self->destroying) {
      if (query->deadline != nullptr) CloseAndFree(query->deadline);
      if (info != nullptr) ares_freeaddrinfo(info);
      delete query;
      return;
    }
    --self->outstanding;
    if (query->deadline != nullptr) self->Complete(query, status, info);
    if (info != nullptr) ares_freeaddrinfo(info);
    delete query;
  }

  void Complete(Query* query, int status, const ares_addrinfo* info) {
    ResolveResult result;
    std::chrono::seconds ttl{0};
    if (status == ARES_SUCCESS && info != nullptr && info->nodes != nullptr) {
      std::vector<IpEndpointAddress> v4, v6;
      int min_ttl = -1;
      for (const ares_addrinfo_node* node = info->nodes; node != nullptr; node = node->ai_next) {
        IpEndpointAddress addr;
        if (node->ai_family == AF_INET && node->ai_addr != nullptr) {
          const auto* sin = reinterpret_cast<const sockaddr_in*>(node->ai_addr);
          addr.family = AF_INET;
          std::memcpy(addr.bytes.data(), &sin->sin_addr, 4);
        } else if (node->ai_family == AF_INET6 && node->ai_addr != nullptr) {
          const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(node->ai_addr);
          addr.family = AF_INET6;
          std::memcpy(addr.bytes.data(), &sin6->sin6_addr, 16);
        } else {
          continue;
        }
        auto& list = addr.family == AF_INET ? v4 : v6;
        const bool dup = std::any_of(list.begin(), list.end(), [&](const IpEndpointAddress& a) {
          return a.bytes == addr.bytes;
        });
        if (!dup) list.push_back(addr);
        if (min_ttl < 0 || node->ai_ttl < min_ttl) min_ttl = node->ai_ttl;
      }
      result.addresses = std::move(v4);
      result.addresses.insert(result.addresses.end(), v6.begin(), v6.end());
      if (!result.addresses.empty()) {
        result.ok = true;
        ttl = std::clamp(std::chrono::seconds(std::max(min_ttl, 0)), std::chrono::seconds(1),
                         std::max(options.max_ttl, std::chrono::seconds(1)));
      }
    }
    if (!result.ok) {
      if (status == ARES_SUCCESS) status = ARES_ENODATA;
      result.error = ErrorFor(status, query->host);
      result.reason = ReasonFor(status);
      if (status == ARES_ETIMEOUT) ++stats.timeouts;
      if (status == ARES_ENOTFOUND || status == ARES_ENODATA) ttl = options.negative_ttl;
    }
    if (ttl.count() > 0 && options.cache_entries > 0) Store(query->host, result, ttl);
    Finish(query, result);
  }

  void Store(const std::string& key, const ResolveResult& result, std::chrono::seconds ttl) {
    const auto now = Clock::now();
    if (cache.size() >= options.cache_entries) {
      std::erase_if(cache, [&](const auto& kv) { return kv.second.expires <= now; });
    }
    // Still full of live entries: dropping an arbitrary one keeps memory bounded without the
    // bookkeeping of an LRU, and a miss only costs a query.
    while (cache.size() >= options.cache_entries && !cache.empty()) cache.erase(cache.begin());
    cache[key] = CacheEntry{now + ttl, result};
  }

  // --- delivery -------------------------------------------------------------------------

  void Deliver(std::uint64_t id, ResolveResult result) {
    deliveries.emplace_back(id, std::move(result));
    uv_idle_start(deliver_idle, &Impl::OnDeliver);
  }

  static void OnDeliver(uv_idle_t* idle) {
    auto* self = static_cast<Impl*>(idle->data);
    std::shared_ptr<bool> alive = self->alive;
    // Only what is queued now: callbacks that start lookups get answered on a later turn.
    std::size_t n = self->deliveries.size();
    while (n-- > 0 && *alive && !self->deliveries.empty()) {
      auto [id, result] = std::move(self->deliveries.front());
      self->deliveries.pop_front();
      auto it = self->requests.find(id);
      if (it == self->requests.end()) continue;  // cancelled
      Callback callback = std::move(it->second);
      self->requests.erase(it);
      callback(result);
    }
    if (*alive && self->deliveries.empty()) uv_idle_stop(idle);
  }
};

Resolver::Resolver(uv_loop_t* loop, Options options)
    : impl_(std::make_unique<Impl>(loop, std::move(options))) {
  impl_->Init();
}

Resolver::~Resolver() = default;

std::uint64_t Resolver::Resolve(const std::string& host, Callback callback) {
  return impl_->Resolve(host, std::move(callback));
}

void Resolver::Cancel(std::uint64_t id) { impl_->requests.erase(id); }

Resolver::Stats Resolver::stats() const { return impl_->stats; }

}  // namespace mintgate::proxy
