#include "proxy/runtime/readiness.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>

#include "rules/ca_resolver.h"

namespace mintgate::proxy {
namespace {

std::string Rfc3339(std::time_t t) {
  return rules::FormatInstant(rules::Instant{std::chrono::seconds{t}});
}

std::string Rfc3339Ms(std::int64_t ms) { return Rfc3339(static_cast<std::time_t>(ms / 1000)); }

bool AfterHandshake(Evidence e) {
  return e == Evidence::kClosedAfterHandshake || e == Evidence::kResetAfterHandshake;
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

namespace {

// The text of the alert the peer sent, as tls::TlsEngine::error() words it ("...; peer sent
// alert: unknown CA; ..."): "unknown CA"; "" when it sent none.
std::string_view PeerAlertText(std::string_view engine_error) {
  constexpr std::string_view kMarker = "peer sent alert: ";
  const std::size_t at = engine_error.find(kMarker);
  if (at == std::string_view::npos) return "";
  const std::string_view text = engine_error.substr(at + kMarker.size());
  return text.substr(0, text.find(';'));
}

}  // namespace

std::string_view PeerCertificateAlert(std::string_view engine_error) {
  const std::string_view text = PeerAlertText(engine_error);
  // OpenSSL's SSL_alert_desc_string_long texts of the certificate alerts.
  static constexpr std::pair<std::string_view, int> kTexts[] = {
      {"bad certificate", 42},     {"unsupported certificate", 43}, {"certificate revoked", 44},
      {"certificate expired", 45}, {"certificate unknown", 46},     {"unknown CA", 48}};
  for (const auto& [name, code] : kTexts) {
    if (text == name) return CertificateAlertName(code);
  }
  return "";
}

std::string PeerAlert(std::string_view engine_error) {
  std::string name;
  for (const char c : PeerAlertText(engine_error)) {
    name += c == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

std::string_view EvidenceName(Evidence evidence) {
  switch (evidence) {
    case Evidence::kApplicationData:
      return "application_data";
    case Evidence::kAlert:
      return "alert";
    case Evidence::kClosedDuringHandshake:
      return "closed_during_handshake";
    case Evidence::kClosedAfterHandshake:
      return "closed_after_handshake";
    case Evidence::kResetDuringHandshake:
      return "reset_during_handshake";
    case Evidence::kResetAfterHandshake:
      return "reset_after_handshake";
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
    for (const auto& [profile, entry] : lru_.back().profiles) {
      Counts& counts = counts_[profile];
      (entry.outcome == HandshakeOutcome::kTrusted ? counts.trusting : counts.rejecting)--;
    }
    index_.erase(KeyOf(lru_.back().address));
    lru_.pop_back();
    ++evicted_;
  }
}

void ReadinessTracker::CountLocked(const std::string& profile,
                                   std::optional<HandshakeOutcome> before, HandshakeOutcome after,
                                   std::int64_t at_ms) {
  Counts& counts = counts_[profile];
  if (before) (*before == HandshakeOutcome::kTrusted ? counts.trusting : counts.rejecting)--;
  (after == HandshakeOutcome::kTrusted ? counts.trusting : counts.rejecting)++;
  constexpr std::int64_t kHourMs = 3600 * 1000;
  const std::int64_t hour_ms = at_ms - ((at_ms % kHourMs) + kHourMs) % kHourMs;
  // Verdicts from the workers may arrive slightly out of order: an older hour's verdict
  // updates the newest point rather than going back in time.
  if (counts.history.empty() || counts.history.back().hour_ms < hour_ms) {
    counts.history.push_back({hour_ms, 0, 0});
    if (counts.history.size() > kHistoryPoints) counts.history.pop_front();
  }
  counts.history.back().trusting = counts.trusting;
  counts.history.back().rejecting = counts.rejecting;
}

std::vector<ReadinessTracker::HistoryPoint> ReadinessTracker::History(
    const std::string& profile) const {
  std::lock_guard lock(mutex_);
  const auto it = counts_.find(profile);
  if (it == counts_.end()) return {};
  return {it->second.history.begin(), it->second.history.end()};
}

bool ReadinessTracker::Record(const rules::IpAddress& client, const std::string& profile,
                              const Verdict& verdict) {
  const Key key = KeyOf(client);
  std::lock_guard lock(mutex_);
  auto found = index_.find(key);
  if (found != index_.end()) {
    lru_.splice(lru_.begin(), lru_, found->second);
  } else {
    lru_.push_front(Client{client, {}, {}});
    index_.emplace(key, lru_.begin());
  }
  if (!verdict.user.empty()) lru_.front().user = std::string(verdict.user);
  auto [it, inserted] = lru_.front().profiles.try_emplace(profile);
  Entry& e = it->second;
  const std::optional<HandshakeOutcome> before =
      inserted ? std::nullopt : std::optional<HandshakeOutcome>(e.outcome);
  if (inserted) e.first_seen_ms = verdict.at_ms;
  e.last_seen_ms = std::max(e.last_seen_ms, verdict.at_ms);
  bool counted = true;
  if (verdict.outcome == HandshakeOutcome::kTrusted) {
    ++e.trusted;
    e.outcome = verdict.outcome;
    e.last_trust =
        Seen{verdict.at_ms, verdict.evidence, std::string(verdict.alert), std::string(verdict.sni)};
    e.last_trust_steady_ms = verdict.steady_ms;
  } else if (AfterHandshake(verdict.evidence) && e.last_trust.at_ms != 0 &&
             e.last_trust_steady_ms + kSpareWindowMs >= verdict.handshake_steady_ms) {
    // The client used another connection with this profile meanwhile: this one was spare.
    ++e.unused;
    counted = false;
  } else {
    ++e.rejected;
    e.outcome = verdict.outcome;
    e.last_reject =
        Seen{verdict.at_ms, verdict.evidence, std::string(verdict.alert), std::string(verdict.sni)};
    if (!verdict.alert.empty()) e.last_alert = verdict.alert;
  }
  const HandshakeOutcome after = e.outcome;
  // Evicting first (never this client: it is the most recent) makes the point count without
  // the evicted.
  if (found == index_.end()) EvictLocked();
  if (counted) CountLocked(profile, before, after, verdict.at_ms);
  return counted;
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

nlohmann::json ReadinessTracker::UnknownRow(const std::string& client, const std::string& user) {
  return {{"client", client},
          {"status", "unknown"},
          {"trusted", 0},
          {"rejected", 0},
          {"unused", 0},
          {"evidence", nullptr},
          {"last_alert", nullptr},
          {"last_trusted", nullptr},
          {"last_rejected", nullptr},
          {"first_seen", nullptr},
          {"last_seen", nullptr},
          {"user", user.empty() ? nlohmann::json(nullptr) : nlohmann::json(user)}};
}

nlohmann::json ReadinessTracker::EmptyJson(std::time_t now) {
  return {{"generated_at", Rfc3339(now)},
          {"clients_tracked", 0},
          {"max_clients", 0},
          {"evicted", 0},
          {"profiles", nlohmann::json::array()}};
}

namespace {

nlohmann::json SeenJson(std::int64_t at_ms, Evidence evidence, const std::string& alert,
                        const std::string& sni) {
  if (at_ms == 0) return nullptr;
  return {{"at", Rfc3339Ms(at_ms)},
          {"evidence", EvidenceName(evidence)},
          {"alert", alert.empty() ? nlohmann::json(nullptr) : nlohmann::json(alert)},
          {"sni", sni.empty() ? nlohmann::json(nullptr) : nlohmann::json(sni)}};
}

}  // namespace

nlohmann::json ReadinessTracker::ToJson(std::time_t now,
                                        const std::vector<std::string>& profiles) const {
  // A copy under the lock; sorting and the JSON itself after it, so workers wait only for
  // the copy.
  std::vector<Client> clients;
  std::map<std::string, std::deque<HistoryPoint>, std::less<>> history;
  std::size_t max_clients = 0;
  std::uint64_t evicted = 0;
  {
    std::lock_guard lock(mutex_);
    clients.assign(lru_.begin(), lru_.end());
    for (const auto& [profile, counts] : counts_) history.emplace(profile, counts.history);
    max_clients = max_clients_;
    evicted = evicted_;
  }
  std::sort(clients.begin(), clients.end(),
            [](const Client& a, const Client& b) { return AddressLess(a.address, b.address); });
  std::vector<std::string> names = profiles;
  for (const Client& c : clients) {
    for (const auto& entry : c.profiles) names.push_back(entry.first);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());

  nlohmann::json doc = {{"generated_at", Rfc3339(now)},
                        {"clients_tracked", clients.size()},
                        {"max_clients", max_clients},
                        {"evicted", evicted},
                        {"profiles", nlohmann::json::array()}};
  for (const std::string& profile : names) {
    nlohmann::json list = nlohmann::json::array();
    std::uint64_t trusting = 0, rejecting = 0, unknown = 0;
    for (const Client& c : clients) {
      const auto it = c.profiles.find(profile);
      const bool listed = list.size() < kMaxClientsPerProfile;
      if (it == c.profiles.end()) {
        ++unknown;
        if (listed) {
          list.push_back(UnknownRow(c.address.ToString(), c.user));
        }
        continue;
      }
      const Entry& e = it->second;
      const bool trusts = e.outcome == HandshakeOutcome::kTrusted;
      (trusts ? trusting : rejecting)++;
      if (!listed) continue;
      const Seen& latest = trusts ? e.last_trust : e.last_reject;
      list.push_back(
          {{"client", c.address.ToString()},
           {"status", trusts ? "trusts" : "rejects"},
           {"trusted", e.trusted},
           {"rejected", e.rejected},
           {"unused", e.unused},
           {"evidence", latest.at_ms == 0 ? nlohmann::json(nullptr)
                                          : nlohmann::json(EvidenceName(latest.evidence))},
           {"last_alert",
            e.last_alert.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.last_alert)},
           {"last_trusted", SeenJson(e.last_trust.at_ms, e.last_trust.evidence, e.last_trust.alert,
                                     e.last_trust.sni)},
           {"last_rejected", SeenJson(e.last_reject.at_ms, e.last_reject.evidence,
                                      e.last_reject.alert, e.last_reject.sni)},
           {"first_seen", Rfc3339Ms(e.first_seen_ms)},
           {"last_seen", Rfc3339Ms(e.last_seen_ms)},
           {"user", c.user.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.user)}});
    }
    const bool truncated = trusting + rejecting + unknown > list.size();
    nlohmann::json points = nlohmann::json::array();
    if (const auto h = history.find(profile); h != history.end()) {
      for (const HistoryPoint& p : h->second) {
        points.push_back(
            {{"at", Rfc3339Ms(p.hour_ms)}, {"trusting", p.trusting}, {"rejecting", p.rejecting}});
      }
    }
    doc["profiles"].push_back({{"profile", profile},
                               {"trusting", trusting},
                               {"rejecting", rejecting},
                               {"unknown", unknown},
                               {"clients", std::move(list)},
                               {"clients_truncated", truncated},
                               {"history", std::move(points)}});
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
