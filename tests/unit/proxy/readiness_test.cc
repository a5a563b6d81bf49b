#include "proxy/runtime/readiness.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "proxy/cli/readiness_command.h"
#include "proxy/control/admin_server.h"

namespace mintgate::proxy {
namespace {

constexpr std::time_t kNow = 1767225600;  // 2026-01-01T00:00:00Z

rules::IpAddress Ip(const std::string& text) {
  auto ip = rules::IpAddress::Parse(text);
  if (!ip) throw std::runtime_error("bad test address " + text);
  return *ip;
}

// A verdict at `when` (seconds): trust on application data, a rejection by `alert`, or by a
// close during the handshake when no alert is given.
bool Rec(ReadinessTracker& t, const rules::IpAddress& ip, const std::string& profile,
         HandshakeOutcome outcome, std::string_view alert, std::time_t when) {
  Verdict v;
  v.outcome = outcome;
  v.evidence = outcome == HandshakeOutcome::kTrusted ? Evidence::kApplicationData
               : alert.empty()                       ? Evidence::kClosedDuringHandshake
                                                     : Evidence::kAlert;
  v.alert = alert;
  v.sni = "www.example.com";
  v.at_ms = static_cast<std::int64_t>(when) * 1000;
  return t.Record(ip, profile, v);
}

rules::IpAddress V4(std::uint32_t n) {
  return Ip(std::to_string(n >> 24) + "." + std::to_string((n >> 16) & 255) + "." +
            std::to_string((n >> 8) & 255) + "." + std::to_string(n & 255));
}

// ---- alerts ----

TEST(CertificateAlert, NamesTheCertificateAlertsOnly) {
  EXPECT_EQ(CertificateAlertName(48), "unknown_ca");
  EXPECT_EQ(CertificateAlertName((2 << 8) | 48), "unknown_ca");  // OpenSSL's level << 8
  EXPECT_EQ(CertificateAlertName(42), "bad_certificate");
  EXPECT_EQ(CertificateAlertName(43), "unsupported_certificate");
  EXPECT_EQ(CertificateAlertName(44), "certificate_revoked");
  EXPECT_EQ(CertificateAlertName(45), "certificate_expired");
  EXPECT_EQ(CertificateAlertName(46), "certificate_unknown");
  EXPECT_EQ(CertificateAlertName(40), "");  // handshake_failure
  EXPECT_EQ(CertificateAlertName(47), "");  // illegal_parameter
  EXPECT_EQ(CertificateAlertName(0), "");
}

TEST(CertificateAlert, ReadsThePeerAlertFromTheEngineError) {
  // The texts are OpenSSL's own, as tls::TlsEngine puts them in error().
  for (int code : {42, 43, 44, 45, 46, 48}) {
    const std::string error = std::string("SSL_do_handshake: protocol error; peer sent alert: ") +
                              SSL_alert_desc_string_long((2 << 8) | code) +
                              "; error:0A000418:SSL routines::tlsv1 alert unknown ca";
    EXPECT_EQ(PeerCertificateAlert(error), CertificateAlertName(code)) << error;
  }
  EXPECT_EQ(PeerCertificateAlert(std::string("x; peer sent alert: ") +
                                 SSL_alert_desc_string_long((2 << 8) | 40)),
            "");
  // Only what the peer sent counts, not what we sent.
  EXPECT_EQ(PeerCertificateAlert("x; sent alert: unknown CA"), "");
  EXPECT_EQ(PeerCertificateAlert("connection reset"), "");
}

// ---- ReadinessTracker ----

TEST(ReadinessTracker, EvictsTheLeastRecentlySeen) {
  ReadinessTracker t(3);
  const auto a = Ip("10.0.0.1"), b = Ip("10.0.0.2"), c = Ip("10.0.0.3"), d = Ip("10.0.0.4");
  Rec(t, a, "new", HandshakeOutcome::kTrusted, "", kNow);
  Rec(t, b, "new", HandshakeOutcome::kTrusted, "", kNow + 1);
  Rec(t, c, "new", HandshakeOutcome::kTrusted, "", kNow + 2);
  Rec(t, a, "old", HandshakeOutcome::kTrusted, "", kNow + 3);  // a is the most recent now
  Rec(t, d, "new", HandshakeOutcome::kTrusted, "", kNow + 4);
  EXPECT_EQ(t.clients_tracked(), 3u);
  EXPECT_EQ(t.evicted(), 1u);
  EXPECT_FALSE(t.Latest(b, "new").has_value());
  EXPECT_TRUE(t.Latest(a, "new").has_value());
  EXPECT_TRUE(t.Latest(c, "new").has_value());
  EXPECT_TRUE(t.Latest(d, "new").has_value());

  // Latest() is a look-up, not a sighting: c stays the least recently seen.
  EXPECT_TRUE(t.Latest(c, "new").has_value());
  Rec(t, Ip("::1"), "new", HandshakeOutcome::kTrusted, "", kNow + 5);
  EXPECT_FALSE(t.Latest(c, "new").has_value());
  EXPECT_EQ(t.evicted(), 2u);

  // A reload that shrinks the bound keeps the most recent.
  t.set_max_clients(1);
  EXPECT_EQ(t.max_clients(), 1u);
  EXPECT_EQ(t.clients_tracked(), 1u);
  EXPECT_EQ(t.evicted(), 4u);
  EXPECT_TRUE(t.Latest(Ip("::1"), "new").has_value());
  t.set_max_clients(10);
  Rec(t, a, "new", HandshakeOutcome::kTrusted, "", kNow + 6);
  EXPECT_EQ(t.clients_tracked(), 2u);
}

TEST(ReadinessTracker, HistoryCountsClientsPerHour) {
  ReadinessTracker t(2);
  const auto a = Ip("10.0.0.1"), b = Ip("10.0.0.2"), c = Ip("10.0.0.3");
  EXPECT_TRUE(t.History("new").empty());
  Rec(t, a, "new", HandshakeOutcome::kRejected, "unknown_ca", kNow + 10);
  Rec(t, b, "new", HandshakeOutcome::kRejected, "unknown_ca", kNow + 20);
  Rec(t, a, "new", HandshakeOutcome::kTrusted, "", kNow + 3600 + 5);  // changes its mind
  Rec(t, a, "new", HandshakeOutcome::kTrusted, "", kNow + 3600 + 9);  // no change
  // Two hours later a third client evicts b (bound 2): it leaves the counts.
  Rec(t, c, "new", HandshakeOutcome::kTrusted, "", kNow + 3 * 3600 + 1);
  // A late verdict from an earlier hour updates the newest point, never an older one.
  Rec(t, a, "new", HandshakeOutcome::kRejected, "unknown_ca", kNow + 2 * 3600);
  const auto h = t.History("new");
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].hour_ms, kNow * 1000);
  EXPECT_EQ(h[0].trusting, 0u);
  EXPECT_EQ(h[0].rejecting, 2u);
  EXPECT_EQ(h[1].hour_ms, (kNow + 3600) * 1000);
  EXPECT_EQ(h[1].trusting, 1u);
  EXPECT_EQ(h[1].rejecting, 1u);
  EXPECT_EQ(h[2].hour_ms, (kNow + 3 * 3600) * 1000);
  EXPECT_EQ(h[2].trusting, 1u);  // c; a rejects again; b evicted
  EXPECT_EQ(h[2].rejecting, 1u);
  EXPECT_TRUE(t.History("old").empty());

  // The JSON carries it per profile.
  const nlohmann::json doc = t.ToJson(kNow + 4 * 3600);
  ASSERT_EQ(doc["profiles"].size(), 1u);
  const auto& points = doc["profiles"][0]["history"];
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[1]["at"], "2026-01-01T01:00:00Z");
  EXPECT_EQ(points[1]["trusting"], 1);

  // Bounded: one point per hour for at most kHistoryPoints hours.
  ReadinessTracker many(10);
  for (std::size_t i = 0; i < ReadinessTracker::kHistoryPoints + 5; ++i) {
    Rec(many, a, "new", HandshakeOutcome::kTrusted, "", kNow + static_cast<std::time_t>(i) * 3600);
  }
  const auto bounded = many.History("new");
  ASSERT_EQ(bounded.size(), ReadinessTracker::kHistoryPoints);
  EXPECT_EQ(bounded.front().hour_ms, (kNow + 5 * 3600) * 1000);
}

TEST(ReadinessTracker, TheLatestOutcomeWinsPerProfile) {
  ReadinessTracker t(100);
  const auto ip = Ip("192.0.2.7");
  EXPECT_FALSE(t.Latest(ip, "new").has_value());
  Rec(t, ip, "new", HandshakeOutcome::kRejected, "unknown_ca", kNow);
  Rec(t, ip, "old", HandshakeOutcome::kTrusted, "", kNow);
  EXPECT_EQ(t.Latest(ip, "new"), HandshakeOutcome::kRejected);
  EXPECT_EQ(t.Latest(ip, "old"), HandshakeOutcome::kTrusted);
  EXPECT_FALSE(t.Latest(ip, "other").has_value());
  EXPECT_FALSE(t.Latest(Ip("192.0.2.8"), "new").has_value());
  // The operator installed the new root.
  Rec(t, ip, "new", HandshakeOutcome::kTrusted, "", kNow + 60);
  EXPECT_EQ(t.Latest(ip, "new"), HandshakeOutcome::kTrusted);

  const nlohmann::json j = t.ToJson(kNow + 120);
  const nlohmann::json& c = j["profiles"][0]["clients"][0];
  EXPECT_EQ(j["profiles"][0]["profile"], "new");
  EXPECT_EQ(c["status"], "trusts");
  EXPECT_EQ(c["trusted"], 1);
  EXPECT_EQ(c["rejected"], 1);
  EXPECT_EQ(c["last_alert"], "unknown_ca");  // history, not status
  EXPECT_EQ(c["first_seen"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(c["last_seen"], "2026-01-01T00:01:00Z");
}

TEST(ReadinessTracker, JsonShapeIsSortedAndStable) {
  ReadinessTracker t(50);
  Rec(t, Ip("10.0.0.10"), "new", HandshakeOutcome::kTrusted, "", kNow);
  Rec(t, Ip("2001:db8::1"), "new", HandshakeOutcome::kRejected, "bad_certificate", kNow);
  Rec(t, Ip("10.0.0.2"), "new", HandshakeOutcome::kRejected, "unknown_ca", kNow);
  Rec(t, Ip("10.0.0.2"), "legacy", HandshakeOutcome::kTrusted, "", kNow);

  const nlohmann::json j = t.ToJson(kNow);
  EXPECT_EQ(j["generated_at"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(j["clients_tracked"], 3);
  EXPECT_EQ(j["max_clients"], 50);
  EXPECT_EQ(j["evicted"], 0);
  ASSERT_EQ(j["profiles"].size(), 2u);
  EXPECT_EQ(j["profiles"][0]["profile"], "legacy");
  EXPECT_EQ(j["profiles"][0]["trusting"], 1);
  EXPECT_EQ(j["profiles"][0]["rejecting"], 0);
  EXPECT_EQ(j["profiles"][0]["clients"][0]["last_alert"], nullptr);
  const nlohmann::json& p = j["profiles"][1];
  EXPECT_EQ(p["profile"], "new");
  EXPECT_EQ(p["trusting"], 1);
  EXPECT_EQ(p["rejecting"], 2);
  EXPECT_EQ(p["clients_truncated"], false);
  ASSERT_EQ(p["clients"].size(), 3u);
  // Numeric address order, IPv4 first.
  EXPECT_EQ(p["clients"][0]["client"], "10.0.0.2");
  EXPECT_EQ(p["clients"][1]["client"], "10.0.0.10");
  EXPECT_EQ(p["clients"][2]["client"], "2001:db8::1");
  EXPECT_EQ(p["clients"][0]["status"], "rejects");
  EXPECT_EQ(p["clients"][0]["last_alert"], "unknown_ca");
  EXPECT_EQ(p["clients"][1]["status"], "trusts");
  EXPECT_EQ(p["clients"][2]["last_alert"], "bad_certificate");
  for (const char* key : {"client", "status", "trusted", "rejected", "last_alert", "last_seen"}) {
    EXPECT_TRUE(p["clients"][0].contains(key)) << key;
  }
  EXPECT_EQ(t.ToJson(kNow).dump(), j.dump());

  const nlohmann::json empty = ReadinessTracker::EmptyJson(kNow);
  EXPECT_EQ(empty["clients_tracked"], 0);
  EXPECT_TRUE(empty["profiles"].is_array());
  EXPECT_TRUE(empty["profiles"].empty());
}

TEST(ReadinessTracker, CapsTheClientListPerProfile) {
  const std::size_t n = ReadinessTracker::kMaxClientsPerProfile + 5;
  ReadinessTracker t(10000);
  for (std::uint32_t i = 0; i < n; ++i) {
    Rec(t, V4(0x0a000000 + i), "new", HandshakeOutcome::kTrusted, "", kNow);
  }
  const nlohmann::json j = t.ToJson(kNow);
  const nlohmann::json& p = j["profiles"][0];
  EXPECT_EQ(p["trusting"], n);
  EXPECT_EQ(p["clients"].size(), ReadinessTracker::kMaxClientsPerProfile);
  EXPECT_EQ(p["clients_truncated"], true);
  EXPECT_EQ(p["clients"][0]["client"], "10.0.0.0");
}

TEST(ReadinessTracker, SurvivesConcurrentWorkers) {
  ReadinessTracker t(300);
  std::atomic<bool> stop{false};
  auto worker = [&t](std::uint32_t seed) {
    for (std::uint32_t i = 0; i < 20000; ++i) {
      const auto ip = V4(0x0a000000 + (i * 7 + seed) % 500);
      const bool reject = (i + seed) % 3 == 0;
      Rec(t, ip, (i & 1) != 0 ? "new" : "old",
          reject ? HandshakeOutcome::kRejected : HandshakeOutcome::kTrusted,
          reject ? "unknown_ca" : "", kNow + i);
      (void)t.Latest(ip, "new");
    }
  };
  std::thread reader([&] {
    while (!stop.load()) (void)t.ToJson(kNow);
  });
  std::thread a(worker, 1), b(worker, 2);
  a.join();
  b.join();
  t.set_max_clients(100);
  stop = true;
  reader.join();
  EXPECT_EQ(t.clients_tracked(), 100u);
  EXPECT_GT(t.evicted(), 0u);
  const nlohmann::json j = t.ToJson(kNow);
  std::size_t listed = 0;
  for (const auto& p : j["profiles"]) listed += p["clients"].size();
  EXPECT_GE(listed, 100u);
  EXPECT_LE(listed, 200u);
}

TEST(ReadinessAlerts, PeerAlertNamesAnyAlertInRfcSpelling) {
  EXPECT_EQ(PeerAlert("handshake failed; peer sent alert: unknown CA; error:0A000418"),
            "unknown_ca");
  EXPECT_EQ(PeerAlert("x; peer sent alert: handshake failure"), "handshake_failure");
  EXPECT_EQ(PeerAlert("x; peer sent alert: certificate unknown; y"), "certificate_unknown");
  EXPECT_EQ(PeerAlert("connection reset"), "");
  EXPECT_EQ(EvidenceName(Evidence::kApplicationData), "application_data");
  EXPECT_EQ(EvidenceName(Evidence::kClosedAfterHandshake), "closed_after_handshake");
  EXPECT_EQ(EvidenceName(Evidence::kResetDuringHandshake), "reset_during_handshake");
}

// A rejection after the handshake from a client that used another connection with the same
// profile within a minute before (or during) it is a spare connection: counted as unused,
// the status unchanged. Beyond the minute, it is a rejection. Alerts and closes during the
// handshake are rejections whatever came before.
TEST(ReadinessTracker, SpareConnectionsWithinTheWindowAreUnused) {
  ReadinessTracker t(10);
  const auto ip = Ip("10.0.0.1");
  Verdict trust;
  trust.outcome = HandshakeOutcome::kTrusted;
  trust.evidence = Evidence::kApplicationData;
  trust.sni = "a.example";
  trust.at_ms = kNow * 1000;
  trust.steady_ms = 100'000;
  EXPECT_TRUE(t.Record(ip, "new", trust));

  Verdict closed;
  closed.outcome = HandshakeOutcome::kRejected;
  closed.evidence = Evidence::kClosedAfterHandshake;
  closed.sni = "b.example";
  closed.at_ms = kNow * 1000 + 70'000;
  closed.handshake_steady_ms = 100'000 + ReadinessTracker::kSpareWindowMs;  // just within
  closed.steady_ms = closed.handshake_steady_ms + 10'000;
  EXPECT_FALSE(t.Record(ip, "new", closed));
  EXPECT_EQ(t.Latest(ip, "new"), HandshakeOutcome::kTrusted);

  Verdict during = closed;
  during.evidence = Evidence::kClosedDuringHandshake;
  EXPECT_TRUE(t.Record(Ip("10.0.0.2"), "new", trust));
  EXPECT_TRUE(t.Record(Ip("10.0.0.2"), "new", during)) << "only closes after the handshake";

  closed.handshake_steady_ms += 1;  // a minute and a millisecond after the request
  EXPECT_TRUE(t.Record(ip, "new", closed));
  EXPECT_EQ(t.Latest(ip, "new"), HandshakeOutcome::kRejected);

  const nlohmann::json j = t.ToJson(kNow + 100);
  const nlohmann::json& c = j["profiles"][0]["clients"][0];
  EXPECT_EQ(c["client"], "10.0.0.1");
  EXPECT_EQ(c["status"], "rejects");
  EXPECT_EQ(c["trusted"], 1);
  EXPECT_EQ(c["rejected"], 1);
  EXPECT_EQ(c["unused"], 1);
  EXPECT_EQ(c["evidence"], "closed_after_handshake");
  // Both verdicts, with their times and what the client asked for.
  EXPECT_EQ(c["last_trusted"]["at"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(c["last_trusted"]["evidence"], "application_data");
  EXPECT_EQ(c["last_trusted"]["sni"], "a.example");
  EXPECT_EQ(c["last_rejected"]["at"], "2026-01-01T00:01:10Z");
  EXPECT_EQ(c["last_rejected"]["sni"], "b.example");
  EXPECT_TRUE(c["last_rejected"]["alert"].is_null());
  EXPECT_TRUE(c["last_alert"].is_null());
}

// Configured profiles are listed before any client used them, and a client seen with one
// profile but never with another is "unknown" for that one, never "trusts".
TEST(ReadinessTracker, ClientsNeverSeenWithAProfileAreUnknown) {
  ReadinessTracker t(10);
  Rec(t, Ip("10.0.0.1"), "legacy", HandshakeOutcome::kTrusted, "", kNow);
  Rec(t, Ip("10.0.0.2"), "legacy", HandshakeOutcome::kTrusted, "", kNow);
  Rec(t, Ip("10.0.0.2"), "new", HandshakeOutcome::kTrusted, "", kNow);
  const nlohmann::json j = t.ToJson(kNow, {"new", "legacy", "spare"});
  ASSERT_EQ(j["profiles"].size(), 3u) << j;
  const nlohmann::json& legacy = j["profiles"][0];
  EXPECT_EQ(legacy["profile"], "legacy");
  EXPECT_EQ(legacy["trusting"], 2);
  EXPECT_EQ(legacy["unknown"], 0);
  const nlohmann::json& fresh = j["profiles"][1];
  EXPECT_EQ(fresh["profile"], "new");
  EXPECT_EQ(fresh["trusting"], 1);
  EXPECT_EQ(fresh["rejecting"], 0);
  EXPECT_EQ(fresh["unknown"], 1);
  ASSERT_EQ(fresh["clients"].size(), 2u);
  EXPECT_EQ(fresh["clients"][0]["client"], "10.0.0.1");
  EXPECT_EQ(fresh["clients"][0]["status"], "unknown");
  EXPECT_TRUE(fresh["clients"][0]["last_seen"].is_null());
  EXPECT_EQ(fresh["clients"][1]["status"], "trusts");
  const nlohmann::json& spare = j["profiles"][2];
  EXPECT_EQ(spare["profile"], "spare");
  EXPECT_EQ(spare["unknown"], 2);
  EXPECT_EQ(spare["trusting"], 0);
}

// ---- CanaryRouter ----

CanaryConfig Canary(const std::string& ca, std::vector<std::string> clients, int percent = 100,
                    bool fallback = true) {
  CanaryConfig c;
  c.ca = ca;
  c.clients = std::move(clients);
  c.percent = percent;
  c.fallback = fallback;
  return c;
}

TEST(CanaryRouter, WithoutCanariesTheRuleDecides) {
  const CanaryRouter router({});
  EXPECT_TRUE(router.empty());
  EXPECT_EQ(router.Choose(Ip("10.0.0.1"), "legacy", nullptr), "legacy");
  // Unparsable blocks are skipped (the loader reports them).
  const CanaryRouter bad({Canary("new", {"10.0.0.1/8", "nonsense"})});
  EXPECT_TRUE(bad.empty());
  EXPECT_EQ(bad.Choose(Ip("10.0.0.1"), "legacy", nullptr), "legacy");
}

TEST(CanaryRouter, PercentZeroAndHundred) {
  const CanaryRouter all({Canary("new", {"0.0.0.0/0", "::/0"}, 100)});
  const CanaryRouter none({Canary("new", {"0.0.0.0/0", "::/0"}, 0)});
  EXPECT_FALSE(all.empty());
  for (std::uint32_t i = 0; i < 1000; ++i) {
    const auto ip = V4(0xc0a80000 + i * 13);
    EXPECT_EQ(all.Choose(ip, "legacy", nullptr), "new");
    EXPECT_EQ(none.Choose(ip, "legacy", nullptr), "legacy");
  }
  EXPECT_EQ(all.Choose(Ip("2001:db8::5"), "legacy", nullptr), "new");
}

TEST(CanaryRouter, PartialPercentIsStableAndProportional) {
  const CanaryRouter router({Canary("new", {"0.0.0.0/0", "::/0"}, 30)});
  const CanaryRouter again({Canary("new", {"0.0.0.0/0", "::/0"}, 30)});
  int chosen = 0, chosen_v6 = 0;
  for (std::uint32_t i = 0; i < 10000; ++i) {
    const auto ip = V4(0x0a000000 + i);  // consecutive addresses: the hard case
    const std::string first = router.Choose(ip, "legacy", nullptr);
    EXPECT_EQ(router.Choose(ip, "legacy", nullptr), first);
    EXPECT_EQ(again.Choose(ip, "legacy", nullptr), first);
    EXPECT_EQ(first == "new", CanaryRouter::Bucket(ip) < 30);
    if (first == "new") ++chosen;
    char v6[64];
    std::snprintf(v6, sizeof v6, "2001:db8::%x", i);
    if (router.Choose(Ip(v6), "legacy", nullptr) == "new") ++chosen_v6;
  }
  EXPECT_NEAR(chosen, 3000, 300);
  EXPECT_NEAR(chosen_v6, 3000, 300);
  // Buckets spread over the whole range.
  std::vector<int> per_bucket(100);
  for (std::uint32_t i = 0; i < 10000; ++i) ++per_bucket[CanaryRouter::Bucket(V4(0x0a000000 + i))];
  for (int count : per_bucket) EXPECT_GT(count, 50);
  // The same on every run: pinned values.
  // (FNV-1a of the family byte and address bytes, splitmix64-finalised, mod 100: a change
  // would move clients between CAs on upgrade.)
  EXPECT_EQ(CanaryRouter::Bucket(Ip("10.0.0.1")), 41);
  EXPECT_EQ(CanaryRouter::Bucket(Ip("192.168.1.20")), 73);
  EXPECT_EQ(CanaryRouter::Bucket(Ip("2001:db8::1")), 54);
}

TEST(CanaryRouter, MatchesClientsByCidrInBothFamilies) {
  const CanaryRouter router({Canary("new", {"10.0.0.0/8", "2001:db8::/32"})});
  EXPECT_EQ(router.Choose(Ip("10.1.2.3"), "legacy", nullptr), "new");
  EXPECT_EQ(router.Choose(Ip("192.168.1.1"), "legacy", nullptr), "legacy");
  EXPECT_EQ(router.Choose(Ip("2001:db8:1::9"), "legacy", nullptr), "new");
  EXPECT_EQ(router.Choose(Ip("2001:db9::1"), "legacy", nullptr), "legacy");
  EXPECT_EQ(router.Choose(Ip("::ffff:10.1.2.3"), "legacy", nullptr), "legacy");
}

TEST(CanaryRouter, FallsBackForClientsThatRejectTheCanaryCa) {
  const CanaryRouter router({Canary("new", {"10.0.0.0/8"}, 100, true)});
  const CanaryRouter stubborn({Canary("new", {"10.0.0.0/8"}, 100, false)});
  ReadinessTracker t(10);
  const auto ip = Ip("10.9.9.9");
  EXPECT_EQ(router.Choose(ip, "legacy", &t), "new");  // never seen: try the canary
  Rec(t, ip, "new", HandshakeOutcome::kRejected, "unknown_ca", kNow);
  EXPECT_EQ(router.Choose(ip, "legacy", &t), "legacy");
  EXPECT_EQ(stubborn.Choose(ip, "legacy", &t), "new");
  EXPECT_EQ(router.Choose(Ip("10.9.9.8"), "legacy", &t), "new");  // other clients unaffected
  // Rejecting another profile does not matter.
  Rec(t, Ip("10.9.9.8"), "legacy", HandshakeOutcome::kRejected, "unknown_ca", kNow);
  EXPECT_EQ(router.Choose(Ip("10.9.9.8"), "legacy", &t), "new");
  // Once the client trusts it (root installed, a later handshake succeeded) it is back in.
  Rec(t, ip, "new", HandshakeOutcome::kTrusted, "", kNow + 1);
  EXPECT_EQ(router.Choose(ip, "legacy", &t), "new");
}

TEST(CanaryRouter, TheFirstMatchingCanaryWins) {
  const CanaryRouter router({Canary("lab", {"10.1.0.0/16"}), Canary("new", {"10.0.0.0/8"}),
                             Canary("other", {"0.0.0.0/0"})});
  EXPECT_EQ(router.Choose(Ip("10.1.0.5"), "legacy", nullptr), "lab");
  EXPECT_EQ(router.Choose(Ip("10.2.0.5"), "legacy", nullptr), "new");
  EXPECT_EQ(router.Choose(Ip("172.16.0.1"), "legacy", nullptr), "other");
  // A canary whose ca the rule signs with anyway changes nothing.
  EXPECT_EQ(router.Choose(Ip("10.1.0.5"), "lab", nullptr), "lab");
  // A canary that does not select the client (percent) lets the next one decide.
  const CanaryRouter partial({Canary("lab", {"0.0.0.0/0"}, 0), Canary("new", {"0.0.0.0/0"})});
  EXPECT_EQ(partial.Choose(Ip("10.1.0.5"), "legacy", nullptr), "new");
}

// ---- admin endpoint ----

constexpr const char* kAdminToken = "readiness-test-token-0123456789";

std::vector<HttpHeader> AdminHeaders() {
  return {{"Host", "127.0.0.1:9090"}, {"Authorization", std::string("Bearer ") + kAdminToken}};
}

std::string Body(const std::string& response) {
  return response.substr(response.find("\r\n\r\n") + 4);
}

TEST(AdminReadiness, ServesTheTrackerDocument) {
  auto runtime = std::make_shared<Runtime>();
  runtime->admin_token = kAdminToken;
  {
    const AdminServer admin(nullptr, runtime, "");
    const std::string r = admin.Respond("GET", "/readiness", AdminHeaders());
    EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
    EXPECT_NE(r.find("application/json"), std::string::npos);
    const auto j = nlohmann::json::parse(Body(r));
    EXPECT_EQ(j["clients_tracked"], 0);
    EXPECT_TRUE(j["profiles"].empty());
  }
  runtime->readiness = std::make_shared<ReadinessTracker>(10);
  Rec(*runtime->readiness, Ip("127.0.0.1"), "new", HandshakeOutcome::kTrusted, "", kNow);
  const AdminServer admin(nullptr, runtime, "");
  const auto j = nlohmann::json::parse(Body(admin.Respond("GET", "/readiness", AdminHeaders())));
  EXPECT_EQ(j["clients_tracked"], 1);
  EXPECT_EQ(j["max_clients"], 10);
  EXPECT_EQ(j["profiles"][0]["clients"][0]["client"], "127.0.0.1");
}

// ---- mintgate ca readiness ----

// A file holding kAdminToken, made once per test program.
const std::string& TokenFile() {
  static const std::string path = [] {
    std::string dir = ::testing::TempDir() + "admintokenXXXXXX";
    if (mkdtemp(dir.data()) == nullptr) throw std::runtime_error("mkdtemp");
    const std::string file = dir + "/admin.token";
    std::ofstream(file) << kAdminToken << "\n";
    ::chmod(file.c_str(), 0600);
    return file;
  }();
  return path;
}

CaReadinessArgs ReadinessArgs() {
  CaReadinessArgs args;
  args.token_file = TokenFile();
  return args;
}

// Answers one connection on 127.0.0.1 (or ::1) with `response`, recording the request.
class OneShotServer {
 public:
  explicit OneShotServer(std::string response, bool v6 = false) : response_(std::move(response)) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
    }
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        ::listen(fd_, 4) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      return;
    }
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      while (request_.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        request_.append(buf, static_cast<std::size_t>(n));
      }
      for (std::size_t sent = 0; sent < response_.size();) {
        const ssize_t n = ::send(c, response_.data() + sent, response_.size() - sent, 0);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      ::close(c);
    });
  }
  ~OneShotServer() {
    if (thread_.joinable()) {
      ::shutdown(fd_, SHUT_RDWR);  // unblocks accept() when nobody came
      thread_.join();
    }
    if (fd_ >= 0) ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  // Valid after the client is done (the server thread has finished reading).
  const std::string& request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::string response_;
  std::string request_;
  std::thread thread_;
};

std::string ReadinessResponse() {
  ReadinessTracker t(100);
  Rec(t, Ip("10.0.0.1"), "new", HandshakeOutcome::kTrusted, "", kNow);
  Rec(t, Ip("10.0.0.2"), "new", HandshakeOutcome::kRejected, "unknown_ca", kNow);
  Rec(t, Ip("10.0.0.1"), "legacy", HandshakeOutcome::kTrusted, "", kNow);
  auto runtime = std::make_shared<Runtime>();
  runtime->readiness = std::make_shared<ReadinessTracker>(100);
  runtime->admin_token = kAdminToken;
  // The real endpoint's framing, with this document as its body.
  const std::string framing =
      AdminServer(nullptr, runtime, "").Respond("GET", "/readiness", AdminHeaders());
  const std::string body = t.ToJson(kNow).dump(2) + "\n";
  const std::string head = framing.substr(0, framing.find("Content-Length:"));
  return head + "Content-Length: " + std::to_string(body.size()) +
         "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + body;
}

TEST(CaReadinessCommand, PrintsATablePerProfile) {
  OneShotServer server(ReadinessResponse());
  ASSERT_NE(server.port(), 0);
  CaReadinessArgs args = ReadinessArgs();
  args.admin = "127.0.0.1:" + std::to_string(server.port());
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 0) << err.str();
  const std::string text = out.str();
  EXPECT_NE(text.find("2 clients tracked"), std::string::npos) << text;
  EXPECT_NE(text.find("Profile \"legacy\": 1 of 1 clients trust it (100%), 0 reject it, 1 "
                      "never used it (unknown)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Profile \"new\": 1 of 2 clients trust it (50%), 1 reject it\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("CLIENT    USER  STATUS   EVIDENCE          TRUSTED  REJECTED  UNUSED  LAST "
                      "TRUSTED          LAST REJECTED"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("10.0.0.2  -     rejects  alert:unknown_ca  0        1         0       -"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("10.0.0.2  -     unknown  -"), std::string::npos) << text;
  EXPECT_LT(text.find("\"legacy\""), text.find("\"new\""));
  const std::string& request = server.request();
  EXPECT_EQ(request.rfind("GET /readiness HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("Host: 127.0.0.1:"), std::string::npos);
}

TEST(CaReadinessCommand, JsonIsTheDocument) {
  OneShotServer server(ReadinessResponse());
  CaReadinessArgs args = ReadinessArgs();
  args.admin = "127.0.0.1:" + std::to_string(server.port());
  args.json = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 0) << err.str();
  const auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["clients_tracked"], 2);
  EXPECT_EQ(j["profiles"][1]["profile"], "new");
  EXPECT_EQ(j["profiles"][1]["rejecting"], 1);
}

TEST(CaReadinessCommand, ReachesIpv6Listeners) {
  OneShotServer server(ReadinessResponse(), true);
  if (server.port() == 0) GTEST_SKIP() << "no IPv6 loopback";
  CaReadinessArgs args = ReadinessArgs();
  args.admin = "[::1]:" + std::to_string(server.port());
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("at [::1]:"), std::string::npos) << out.str();
}

TEST(CaReadinessCommand, TakesTheAddressAndTokenFromTheConfig) {
  OneShotServer server(ReadinessResponse());
  std::string dir = ::testing::TempDir() + "readinessXXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  // The token the gateway generated in its state_dir.
  ASSERT_EQ(::mkdir((dir + "/state").c_str(), 0700), 0);
  std::ofstream(dir + "/state/admin.token") << "state-dir-token-0123456789abcdef\n";
  const std::string file = dir + "/mintgate.toml";
  std::ofstream(file) << "[server]\nstate_dir = \"state\"\n[admin]\nlisten = \"127.0.0.1:"
                      << server.port() << "\"\n";
  CaReadinessArgs args;
  args.config = file;
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("10.0.0.1"), std::string::npos);
  EXPECT_NE(server.request().find("\r\nAuthorization: Bearer state-dir-token-0123456789abcdef\r\n"),
            std::string::npos)
      << server.request();

  // admin.token_file when set.
  OneShotServer second(ReadinessResponse());
  std::ofstream(dir + "/token") << "configured-token-0123456789abcdef\n";
  std::ofstream(file) << "[admin]\nlisten = \"127.0.0.1:" << second.port()
                      << "\"\ntoken_file = \"token\"\n";
  std::ostringstream out2, err2;
  EXPECT_EQ(RunCaReadiness(args, out2, err2), 0) << err2.str();
  EXPECT_NE(
      second.request().find("\r\nAuthorization: Bearer configured-token-0123456789abcdef\r\n"),
      std::string::npos)
      << second.request();

  std::ofstream(file) << "[admin]\nlisten = 9090\n";
  std::ostringstream out3, err3;
  EXPECT_EQ(RunCaReadiness(args, out3, err3), 2);
  EXPECT_NE(err3.str().find("mintgate.toml:2"), std::string::npos) << err3.str();
  std::filesystem::remove_all(dir);
}

TEST(CaReadinessCommand, SendsTheTokenAndTheListenersAddress) {
  OneShotServer server(ReadinessResponse());
  CaReadinessArgs args = ReadinessArgs();
  args.admin = "127.0.0.1:" + std::to_string(server.port());
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 0) << err.str();
  const std::string& request = server.request();
  EXPECT_NE(request.find("\r\nAuthorization: Bearer " + std::string(kAdminToken) + "\r\n"),
            std::string::npos)
      << request;
  EXPECT_NE(request.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << request;
}

TEST(CaReadinessCommand, AnUnreadableTokenIsAUsageError) {
  OneShotServer server(ReadinessResponse());
  CaReadinessArgs args;
  args.admin = "127.0.0.1:" + std::to_string(server.port());
  args.token_file = ::testing::TempDir() + "no-such-admin.token";
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 2);
  EXPECT_NE(err.str().find("error: cannot read the admin token: " + args.token_file +
                           ": cannot read: No such file or directory"),
            std::string::npos)
      << err.str();
  EXPECT_NE(err.str().find("--token-file"), std::string::npos) << err.str();
  // An empty file is no token either.
  args.token_file = ::testing::TempDir() + "empty-admin.token";
  std::ofstream(args.token_file) << "\n";
  std::ostringstream out2, err2;
  EXPECT_EQ(RunCaReadiness(args, out2, err2), 2);
  EXPECT_NE(err2.str().find("empty"), std::string::npos) << err2.str();
  std::remove(args.token_file.c_str());
}

TEST(CaReadinessCommand, A401SaysTheTokenIsWrong) {
  OneShotServer server(
      "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"mintgate admin\", "
      "error=\"invalid_token\"\r\nContent-Length: 18\r\n\r\nwrong admin token\n");
  CaReadinessArgs args = ReadinessArgs();
  args.admin = "127.0.0.1:" + std::to_string(server.port());
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 3);
  EXPECT_NE(err.str().find("refused the token from " + TokenFile() + " (401)"), std::string::npos)
      << err.str();
  EXPECT_EQ(err.str().find(kAdminToken), std::string::npos) << "the token was printed";
}

TEST(CaReadinessCommand, UnreachableIsExitThree) {
  // A bound port nobody listens on: the kernel refuses the connection.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string where = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  CaReadinessArgs args = ReadinessArgs();
  args.admin = where;
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 3);
  EXPECT_EQ(err.str(), "error: cannot reach the admin listener at " + where +
                           ": connection refused — is mintgate running?\n");
  EXPECT_TRUE(out.str().empty());
  ::close(fd);
}

TEST(CaReadinessCommand, ErrorAnswersAndBadDocumentsAreExitThree) {
  {
    OneShotServer server(
        "HTTP/1.1 404 Not Found\r\nContent-Length: 30\r\n\r\nunknown admin endpoint /ready\n");
    CaReadinessArgs args = ReadinessArgs();
    args.admin = "127.0.0.1:" + std::to_string(server.port());
    std::ostringstream out, err;
    EXPECT_EQ(RunCaReadiness(args, out, err), 3);
    EXPECT_NE(err.str().find("answered 404"), std::string::npos) << err.str();
    EXPECT_NE(err.str().find("unknown admin endpoint"), std::string::npos) << err.str();
  }
  {
    OneShotServer server("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    CaReadinessArgs args = ReadinessArgs();
    args.admin = "127.0.0.1:" + std::to_string(server.port());
    std::ostringstream out, err;
    EXPECT_EQ(RunCaReadiness(args, out, err), 3);
    EXPECT_NE(err.str().find("readiness document"), std::string::npos) << err.str();
  }
  {
    OneShotServer server("SSH-2.0-OpenSSH\r\n");
    CaReadinessArgs args = ReadinessArgs();
    args.admin = "127.0.0.1:" + std::to_string(server.port());
    std::ostringstream out, err;
    EXPECT_EQ(RunCaReadiness(args, out, err), 3);
    EXPECT_NE(err.str().find("not an HTTP response"), std::string::npos) << err.str();
  }
}

TEST(CaReadinessCommand, BadAdminAddressIsAUsageError) {
  for (const char* bad : {"localhost", "127.0.0.1:", "127.0.0.1:99999", "::1:9090", "[::1]9090",
                          ":9090", "127.0.0.1:port"}) {
    CaReadinessArgs args = ReadinessArgs();
    args.admin = bad;
    std::ostringstream out, err;
    EXPECT_EQ(RunCaReadiness(args, out, err), 2) << bad;
    EXPECT_NE(err.str().find("is not HOST:PORT"), std::string::npos) << bad;
  }
}

TEST(CaReadinessCommand, SilentListenerTimesOut) {
  // Listens but never answers: the timeout ends the wait.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  HostPort hp{"127.0.0.1", ntohs(a.sin_port)};
  const auto start = std::chrono::steady_clock::now();
  const AdminFetchResult r = FetchAdmin(hp, "/readiness", 300);
  EXPECT_EQ(r.status, AdminFetchResult::Status::kBadResponse);
  EXPECT_NE(r.error.find("timeout"), std::string::npos) << r.error;
  // Without the timeout it would wait for ever; the bound only catches that.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  ::close(fd);
}

}  // namespace
}  // namespace mintgate::proxy
