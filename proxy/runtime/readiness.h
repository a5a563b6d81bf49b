// Client readiness for a CA cutover: which clients already trust which CA profile, learnt from
// real connections, and the canary routing that sends a share of the clients to the successor
// CA before the cutover. A client trusts a leaf only when it sends application data over the
// decrypted connection: many clients (GnuTLS programs such as wget, Node, several language
// runtimes) finish the handshake and check the certificate afterwards, then close. A
// rejection is a certificate alert, or a close or reset after our certificate with no
// application data, during the handshake or after it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <deque>
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

// How a verdict was reached.
enum class Evidence : std::uint8_t {
  kApplicationData,        // trusts: the client sent data over the decrypted connection
  kAlert,                  // rejects: a certificate alert in the handshake, or any fatal
                           // alert after it before any data
  kClosedDuringHandshake,  // rejects: closed after our certificate, before its Finished
  kClosedAfterHandshake,   // rejects: finished the handshake, then closed without sending data
  kResetDuringHandshake,   // rejects: reset after our certificate, before its Finished
  kResetAfterHandshake,    // rejects: finished the handshake, then reset without sending data
};

// "application_data", "alert", "closed_during_handshake", "closed_after_handshake",
// "reset_during_handshake", "reset_after_handshake".
std::string_view EvidenceName(Evidence evidence);

// One connection's verdict on a leaf from one profile.
struct Verdict {
  HandshakeOutcome outcome = HandshakeOutcome::kTrusted;
  Evidence evidence = Evidence::kApplicationData;
  std::string_view alert;  // kAlert: its name ("unknown_ca")
  std::string_view sni;    // the server name the client asked for; "" when none
  std::string_view user;   // who the gateway identified behind the connection; "" unknown
  std::int64_t at_ms = 0;  // wall clock, milliseconds since the epoch
  // A monotonic clock shared by the workers (milliseconds): now, and for a rejection after
  // the handshake, when that handshake finished (see Record).
  std::uint64_t steady_ms = 0;
  std::uint64_t handshake_steady_ms = 0;
};

// The RFC 8446 name of a certificate-related TLS alert description: 42 "bad_certificate",
// 43 "unsupported_certificate", 44 "certificate_revoked", 45 "certificate_expired",
// 46 "certificate_unknown", 48 "unknown_ca"; "" for any other (also with the level byte,
// as OpenSSL's info callback reports it: (level << 8) | description).
std::string_view CertificateAlertName(int alert);

// The certificate alert the peer sent, read from a tls::TlsEngine::error() text
// ("...; peer sent alert: unknown CA; ..."), as CertificateAlertName names it; "" when the
// peer sent none or another alert.
std::string_view PeerCertificateAlert(std::string_view engine_error);

// Any alert the peer sent, from the same text, in RFC 8446 spelling ("unknown CA" ->
// "unknown_ca", "handshake failure" -> "handshake_failure"); "" when it sent none.
std::string PeerAlert(std::string_view engine_error);

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

  // One connection's verdict for `client` on a leaf from `profile`. The status becomes the
  // verdict, except for a connection that closed or reset unused after its handshake when the
  // same client sent application data under the same profile on another connection within
  // kSpareWindowMs before that handshake, or since: a browser's spare connection (opened ahead
  // and closed unused), not a rejection. That one is only counted as unused, and Record
  // returns false.
  bool Record(const rules::IpAddress& client, const std::string& profile, const Verdict& verdict);

  // The latest outcome of this client with this profile: nullopt when never seen (or evicted).
  std::optional<HandshakeOutcome> Latest(const rules::IpAddress& client,
                                         const std::string& profile) const;

  // How many clients trusted and rejected one profile over time, for the console's chart: a
  // point per hour in which a verdict was recorded for the profile (the counts when the
  // hour's last verdict was recorded), the newest kHistoryPoints hours that had one. The
  // counts are those of the clients tracked: an evicted client leaves them.
  struct HistoryPoint {
    std::int64_t hour_ms = 0;  // wall clock, the hour's start
    std::uint64_t trusting = 0;
    std::uint64_t rejecting = 0;
  };
  std::vector<HistoryPoint> History(const std::string& profile) const;
  static constexpr std::size_t kHistoryPoints = 24 * 31;

  // The /readiness document: {"generated_at", "clients_tracked", "max_clients", "evicted",
  // "profiles": [{"profile", "trusting", "rejecting", "unknown", "clients": [{"client",
  // "status", "trusted", "rejected", "unused", "evidence", "last_alert", "last_trusted",
  // "last_rejected", "first_seen", "last_seen", "user"}], "clients_truncated", "history": [{"at",
  // "trusting", "rejecting"}]}]}. "status" is "trusts", "rejects" (the latest verdict) or
  // "unknown": a client tracked for another profile that never made a decrypted connection with
  // this one. "last_trusted" and "last_rejected" are null or {"at", "evidence", "alert", "sni"}.
  // Profiles by name: those seen and `profiles` (the configured ones, listed even before any
  // client); clients by address, at most kMaxClientsPerProfile per profile (the counts always count
  // all).
  nlohmann::json ToJson(std::time_t now, const std::vector<std::string>& profiles = {}) const;
  // The same document for a gateway without a tracker: nothing tracked.
  static nlohmann::json EmptyJson(std::time_t now);
  // A client's row under a profile it has no verdict for ("status": "unknown"); `user` ""
  // is null.
  static nlohmann::json UnknownRow(const std::string& client, const std::string& user);

  static constexpr std::size_t kMaxClientsPerProfile = 1000;
  static constexpr std::uint64_t kSpareWindowMs = 60'000;

 private:
  // The latest verdict of one kind: at_ms 0 when never.
  struct Seen {
    std::int64_t at_ms = 0;
    Evidence evidence = Evidence::kApplicationData;
    std::string alert;
    std::string sni;
  };
  struct Entry {
    HandshakeOutcome outcome = HandshakeOutcome::kTrusted;
    std::uint64_t trusted = 0;
    std::uint64_t rejected = 0;
    std::uint64_t unused = 0;  // spare connections closed unused (see Record)
    Seen last_trust;
    std::uint64_t last_trust_steady_ms = 0;
    Seen last_reject;
    std::string last_alert;  // "" when none was ever seen
    std::int64_t first_seen_ms = 0;
    std::int64_t last_seen_ms = 0;
  };
  struct Client {
    rules::IpAddress address;
    std::map<std::string, Entry, std::less<>> profiles;
    std::string user;  // the latest user identified behind this address ([auth]); "" none
  };
  // Family byte, then the address bytes.
  using Key = std::array<std::uint8_t, 17>;
  struct KeyHash {
    std::size_t operator()(const Key& key) const;
  };
  // The clients whose latest verdict on a profile is each outcome, and their history.
  struct Counts {
    std::uint64_t trusting = 0;
    std::uint64_t rejecting = 0;
    std::deque<HistoryPoint> history;
  };
  static Key KeyOf(const rules::IpAddress& address);
  void EvictLocked();
  void CountLocked(const std::string& profile, std::optional<HandshakeOutcome> before,
                   HandshakeOutcome after, std::int64_t at_ms);

  mutable std::mutex mutex_;
  std::size_t max_clients_;
  std::uint64_t evicted_ = 0;
  std::list<Client> lru_;  // most recently seen first
  std::unordered_map<Key, std::list<Client>::iterator, KeyHash> index_;
  std::map<std::string, Counts, std::less<>> counts_;
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
