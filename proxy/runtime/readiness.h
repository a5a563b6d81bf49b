// Client readiness for a CA cutover: which clients already trust which CA profile, learnt from
// real handshakes (a finished handshake with a leaf from profile X: the client trusts X; an
// abort with a certificate alert right after our certificate: it does not), and the canary
// routing that sends a share of the clients to the successor CA before the cutover.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/config/config.h"
#include "rules/ip_address.h"

namespace mintgate::proxy {

enum class HandshakeOutcome { kTrusted, kRejected };

// The RFC 8446 name of a certificate-related TLS alert description: 42 "bad_certificate",
// 43 "unsupported_certificate", 44 "certificate_revoked", 45 "certificate_expired",
// 46 "certificate_unknown", 48 "unknown_ca"; "" for any other (also with the level byte,
// as OpenSSL's info callback reports it: (level << 8) | description).
std::string_view CertificateAlertName(int alert);

// The certificate alert the peer sent, read from a tls::TlsEngine::error() text
// ("...; peer sent alert: unknown CA; ..."), as CertificateAlertName names it; "" when the
// peer sent none or another alert.
std::string_view PeerCertificateAlert(std::string_view engine_error);

// What the gateway has seen of clients' handshakes, per client address and CA profile.
// Thread-safe (one short-held mutex); bounded: at most max_clients addresses, the least
// recently seen evicted first. Outlives configuration reloads (set_max_clients).
class ReadinessTracker {
 public:
  explicit ReadinessTracker(std::size_t max_clients);

  // 0 counts as 1. Shrinking evicts the least recently seen clients at once.
  void set_max_clients(std::size_t max_clients);
  std::size_t max_clients() const;
  std::size_t clients_tracked() const;
  std::uint64_t evicted() const;

  // One handshake of `client` with a leaf from `profile`. `alert`: the certificate alert of a
  // rejection ("unknown_ca"), or "".
  void Record(const rules::IpAddress& client, const std::string& profile, HandshakeOutcome outcome,
              std::string_view alert, std::time_t now);

  // The latest outcome of this client with this profile: nullopt when never seen (or evicted).
  std::optional<HandshakeOutcome> Latest(const rules::IpAddress& client,
                                         const std::string& profile) const;

  // The /readiness document: {"generated_at", "clients_tracked", "max_clients", "evicted",
  // "profiles": [{"profile", "trusting", "rejecting", "clients": [{"client", "status",
  // "trusted", "rejected", "last_alert", "first_seen", "last_seen"}], "clients_truncated"}]},
  // profiles by name, clients by address, at most kMaxClientsPerProfile clients per profile
  // (trusting/rejecting always count all of them).
  nlohmann::json ToJson(std::time_t now) const;
  // The same document for a gateway without a tracker: nothing tracked.
  static nlohmann::json EmptyJson(std::time_t now);

  static constexpr std::size_t kMaxClientsPerProfile = 1000;

 private:
  struct Entry {
    HandshakeOutcome outcome = HandshakeOutcome::kTrusted;
    std::uint64_t trusted = 0;
    std::uint64_t rejected = 0;
    std::string last_alert;  // "" when none was ever seen
    std::time_t first_seen = 0;
    std::time_t last_seen = 0;
  };
  struct Client {
    rules::IpAddress address;
    std::map<std::string, Entry, std::less<>> profiles;
  };
  // Family byte, then the address bytes.
  using Key = std::array<std::uint8_t, 17>;
  struct KeyHash {
    std::size_t operator()(const Key& key) const;
  };
  static Key KeyOf(const rules::IpAddress& address);
  void EvictLocked();

  mutable std::mutex mutex_;
  std::size_t max_clients_;
  std::uint64_t evicted_ = 0;
  std::list<Client> lru_;  // most recently seen first
  std::unordered_map<Key, std::list<Client>::iterator, KeyHash> index_;
};

// Which profile signs for a client, by config.canaries: immutable, built per configuration.
class CanaryRouter {
 public:
  // Canaries whose clients do not parse are skipped (configurations are validated before).
  explicit CanaryRouter(const std::vector<CanaryConfig>& canaries);

  bool empty() const { return canaries_.empty(); }

  // The profile to sign with for a decrypt decision whose rule signs with `rule_profile`: the
  // `ca` of the first canary that covers `client` and whose percent selects it (Bucket(client)
  // < percent), unless that canary falls back and `tracker` saw this client reject its ca last
  // time; otherwise `rule_profile`. `tracker` may be null.
  std::string Choose(const rules::IpAddress& client, const std::string& rule_profile,
                     const ReadinessTracker* tracker) const;

  // A stable 0..99 bucket of an address (the same on every run and every machine).
  static int Bucket(const rules::IpAddress& client);

 private:
  struct Canary {
    std::string ca;
    std::vector<rules::Cidr> clients;
    int percent = 100;
    bool fallback = true;
  };
  std::vector<Canary> canaries_;
};

}  // namespace mintgate::proxy
