#include "proxy/runtime/readiness.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "rules/ca_resolver.h"

namespace mintgate::proxy {
namespace {

std::string Rfc3339(std::time_t t) {
  return rules::FormatInstant(rules::Instant{std::chrono::seconds{t}});
}

// FNV-1a over the bytes, then a 64-bit finaliser (splitmix64) so that neighbouring addresses
// spread evenly over the buckets.
std::uint64_t StableHash(const std::uint8_t* data, std::size_t size) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// IPv4 before IPv6, then by bytes: numeric order within a family.
bool AddressLess(const rules::IpAddress& a, const rules::IpAddress& b) {
  if (a.family() != b.family()) return a.family() == rules::IpAddress::Family::kV4;
  return a.bytes() < b.bytes();
}

}  // namespace

std::string_view CertificateAlertName(int alert) {
  switch (alert & 0xff) {
    case 42:
      return "bad_certificate";
    case 43:
      return "unsupported_certificate";
    case 44:
      return "certificate_revoked";
    case 45:
      return "certificate_expired";
    case 46:
      return "certificate_unknown";
    case 48:
      return "unknown_ca";
    default:
      return "";
  }
}

std::string_view PeerCertificateAlert(std::string_view engine_error) {
  constexpr std::string_view kMarker = "peer sent alert: ";
  const std::size_t at = engine_error.find(kMarker);
  if (at == std::string_view::npos) return "";
  std::string_view text = engine_error.substr(at + kMarker.size());
  text = text.substr(0, text.find(';'));
  // OpenSSL's SSL_alert_desc_string_long texts of the certificate alerts.
  static constexpr std::pair<std::string_view, int> kTexts[] = {
      {"bad certificate", 42},     {"unsupported certificate", 43}, {"certificate revoked", 44},
      {"certificate expired", 45}, {"certificate unknown", 46},     {"unknown CA", 48}};
  for (const auto& [name, code] : kTexts) {
    if (text == name) return CertificateAlertName(code);
  }
  return "";
}

// ---- ReadinessTracker ----

ReadinessTracker::ReadinessTracker(std::size_t max_clients)
    : max_clients_(std::max<std::size_t>(max_clients, 1)) {}

std::size_t ReadinessTracker::KeyHash::operator()(const Key& key) const {
  return static_cast<std::size_t>(StableHash(key.data(), key.size()));
}

ReadinessTracker::Key ReadinessTracker::KeyOf(const rules::IpAddress& address) {
  Key key{};
  key[0] = static_cast<std::uint8_t>(address.family());
  std::copy(address.bytes().begin(), address.bytes().end(), key.begin() + 1);
  return key;
}

void ReadinessTracker::set_max_clients(std::size_t max_clients) {
  std::lock_guard lock(mutex_);
  max_clients_ = std::max<std::size_t>(max_clients, 1);
  EvictLocked();
}

std::size_t ReadinessTracker::max_clients() const {
  std::lock_guard lock(mutex_);
  return max_clients_;
}

std::size_t ReadinessTracker::clients_tracked() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

std::uint64_t ReadinessTracker::evicted() const {
  std::lock_guard lock(mutex_);
  return evicted_;
}

void ReadinessTracker::EvictLocked() {
  while (lru_.size() > max_clients_) {
    index_.erase(KeyOf(lru_.back().address));
    lru_.pop_back();
    ++evicted_;
  }
}

void ReadinessTracker::Record(const rules::IpAddress& client, const std::string& profile,
                              HandshakeOutcome outcome, std::string_view alert, std::time_t now) {
  const Key key = KeyOf(client);
  std::lock_guard lock(mutex_);
  auto found = index_.find(key);
  if (found != index_.end()) {
    lru_.splice(lru_.begin(), lru_, found->second);
  } else {
    lru_.push_front(Client{client, {}});
    index_.emplace(key, lru_.begin());
  }
  auto [it, inserted] = lru_.front().profiles.try_emplace(profile);
  Entry& e = it->second;
  if (inserted) e.first_seen = now;
  e.last_seen = now;
  e.outcome = outcome;
  if (outcome == HandshakeOutcome::kTrusted) {
    ++e.trusted;
  } else {
    ++e.rejected;
  }
  if (!alert.empty()) e.last_alert = alert;
  if (found == index_.end()) EvictLocked();
}

std::optional<HandshakeOutcome> ReadinessTracker::Latest(const rules::IpAddress& client,
                                                         const std::string& profile) const {
  const Key key = KeyOf(client);
  std::lock_guard lock(mutex_);
  auto found = index_.find(key);
  if (found == index_.end()) return std::nullopt;
  const auto& profiles = found->second->profiles;
  auto it = profiles.find(profile);
  if (it == profiles.end()) return std::nullopt;
  return it->second.outcome;
}

nlohmann::json ReadinessTracker::EmptyJson(std::time_t now) {
  return {{"generated_at", Rfc3339(now)},
          {"clients_tracked", 0},
          {"max_clients", 0},
          {"evicted", 0},
          {"profiles", nlohmann::json::array()}};
}

nlohmann::json ReadinessTracker::ToJson(std::time_t now) const {
  // A copy under the lock; sorting and the JSON itself after it, so workers wait only for
  // the copy.
  struct Row {
    const std::string* profile;
    rules::IpAddress address;
    Entry entry;
  };
  std::vector<Client> clients;
  std::size_t max_clients = 0;
  std::uint64_t evicted = 0;
  {
    std::lock_guard lock(mutex_);
    clients.assign(lru_.begin(), lru_.end());
    max_clients = max_clients_;
    evicted = evicted_;
  }
  std::vector<Row> rows;
  for (const Client& c : clients) {
    for (const auto& [profile, entry] : c.profiles) rows.push_back({&profile, c.address, entry});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (*a.profile != *b.profile) return *a.profile < *b.profile;
    return AddressLess(a.address, b.address);
  });

  nlohmann::json doc = {{"generated_at", Rfc3339(now)},
                        {"clients_tracked", clients.size()},
                        {"max_clients", max_clients},
                        {"evicted", evicted},
                        {"profiles", nlohmann::json::array()}};
  for (std::size_t i = 0; i < rows.size();) {
    const std::string& profile = *rows[i].profile;
    nlohmann::json list = nlohmann::json::array();
    std::uint64_t trusting = 0, rejecting = 0;
    std::size_t count = 0;
    for (; i < rows.size() && *rows[i].profile == profile; ++i, ++count) {
      const Entry& e = rows[i].entry;
      const bool trusts = e.outcome == HandshakeOutcome::kTrusted;
      (trusts ? trusting : rejecting)++;
      if (count >= kMaxClientsPerProfile) continue;
      list.push_back({{"client", rows[i].address.ToString()},
                      {"status", trusts ? "trusts" : "rejects"},
                      {"trusted", e.trusted},
                      {"rejected", e.rejected},
                      {"last_alert", e.last_alert.empty() ? nlohmann::json(nullptr)
                                                          : nlohmann::json(e.last_alert)},
                      {"first_seen", Rfc3339(e.first_seen)},
                      {"last_seen", Rfc3339(e.last_seen)}});
    }
    doc["profiles"].push_back({{"profile", profile},
                               {"trusting", trusting},
                               {"rejecting", rejecting},
                               {"clients", std::move(list)},
                               {"clients_truncated", count > kMaxClientsPerProfile}});
  }
  return doc;
}

// ---- CanaryRouter ----

CanaryRouter::CanaryRouter(const std::vector<CanaryConfig>& canaries) {
  for (const CanaryConfig& config : canaries) {
    if (config.ca.empty()) continue;
    Canary canary;
    canary.ca = config.ca;
    canary.percent = std::clamp(config.percent, 0, 100);
    canary.fallback = config.fallback;
    for (const std::string& text : config.clients) {
      std::string why;
      if (auto cidr = rules::Cidr::Parse(text, &why)) canary.clients.push_back(*cidr);
    }
    if (canary.clients.empty() || canary.percent == 0) continue;  // selects nobody
    canaries_.push_back(std::move(canary));
  }
}

int CanaryRouter::Bucket(const rules::IpAddress& client) {
  std::uint8_t data[17];
  data[0] = static_cast<std::uint8_t>(client.family());
  const std::size_t size = static_cast<std::size_t>(client.bit_width() / 8);
  std::copy_n(client.bytes().begin(), size, data + 1);
  return static_cast<int>(StableHash(data, size + 1) % 100);
}

std::string CanaryRouter::Choose(const rules::IpAddress& client, const std::string& rule_profile,
                                 const ReadinessTracker* tracker) const {
  if (canaries_.empty()) return rule_profile;
  const int bucket = Bucket(client);
  for (const Canary& canary : canaries_) {
    if (bucket >= canary.percent) continue;
    if (std::none_of(canary.clients.begin(), canary.clients.end(),
                     [&client](const rules::Cidr& c) { return c.Contains(client); })) {
      continue;
    }
    if (canary.ca == rule_profile) return rule_profile;
    if (canary.fallback && tracker != nullptr &&
        tracker->Latest(client, canary.ca) == HandshakeOutcome::kRejected) {
      return rule_profile;
    }
    return canary.ca;
  }
  return rule_profile;
}

}  // namespace mintgate::proxy
