// `mintgate ca readiness` with several --admin: MergeReadiness on the documents real trackers
// make, and RunCaReadiness against stand-in admin listeners, one of them down.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "proxy/cli/readiness_command.h"
#include "proxy/runtime/readiness.h"

namespace mintgate::proxy {
namespace {

constexpr std::time_t kNow = 1767225600;  // 2026-01-01T00:00:00Z
constexpr char kToken[] = "merge-test-token-0123456789abcdef";

rules::IpAddress Ip(const std::string& text) {
  auto ip = rules::IpAddress::Parse(text);
  if (!ip) throw std::runtime_error("bad test address " + text);
  return *ip;
}

// A verdict at `when` (seconds): trust on application data, else a rejection by `alert`, or
// by a close during the handshake when no alert is given.
void Rec(ReadinessTracker& t, const std::string& ip, const std::string& profile,
         HandshakeOutcome outcome, std::string_view alert, std::time_t when,
         std::string_view user = "") {
  Verdict v;
  v.outcome = outcome;
  v.evidence = outcome == HandshakeOutcome::kTrusted ? Evidence::kApplicationData
               : alert.empty()                       ? Evidence::kClosedDuringHandshake
                                                     : Evidence::kAlert;
  v.alert = alert;
  v.sni = "www.example.com";
  v.user = user;
  v.at_ms = static_cast<std::int64_t>(when) * 1000;
  t.Record(Ip(ip), profile, v);
}

constexpr auto kTrusted = HandshakeOutcome::kTrusted;
constexpr auto kRejected = HandshakeOutcome::kRejected;

// The row of `client` under `profile`; null when absent.
nlohmann::json Row(const nlohmann::json& doc, const std::string& profile,
                   const std::string& client) {
  for (const auto& p : doc["profiles"]) {
    if (p["profile"] != profile) continue;
    for (const auto& c : p["clients"]) {
      if (c["client"] == client) return c;
    }
  }
  return nullptr;
}

nlohmann::json Profile(const nlohmann::json& doc, const std::string& profile) {
  for (const auto& p : doc["profiles"]) {
    if (p["profile"] == profile) return p;
  }
  return nullptr;
}

using Docs = std::vector<std::pair<std::string, nlohmann::json>>;

TEST(ReadinessMerge, TheLatestVerdictWinsWithItsEvidence) {
  ReadinessTracker a(100), b(100);
  Rec(a, "10.0.0.1", "new", kTrusted, "", kNow - 600);
  Rec(b, "10.0.0.1", "new", kRejected, "unknown_ca", kNow - 60);
  for (const bool reversed : {false, true}) {
    Docs docs = {{"gw-a:9090", a.ToJson(kNow)}, {"gw-b:9090", b.ToJson(kNow)}};
    if (reversed) std::swap(docs[0], docs[1]);
    const nlohmann::json merged = MergeReadiness(docs);
    const nlohmann::json row = Row(merged, "new", "10.0.0.1");
    ASSERT_TRUE(row.is_object()) << merged.dump(2);
    EXPECT_EQ(row["status"], "rejects") << row.dump(2);
    EXPECT_EQ(row["evidence"], "alert");
    EXPECT_EQ(row["last_alert"], "unknown_ca");
    EXPECT_EQ(row["last_rejected"]["alert"], "unknown_ca");
    EXPECT_EQ(row["last_rejected"]["at"], "2025-12-31T23:59:00Z");
    // The other kind's latest stays, from the other gateway.
    EXPECT_EQ(row["last_trusted"]["at"], "2025-12-31T23:50:00Z");
    EXPECT_EQ(row["last_trusted"]["evidence"], "application_data");
    // Connections add up; the span covers both gateways.
    EXPECT_EQ(row["trusted"], 1);
    EXPECT_EQ(row["rejected"], 1);
    EXPECT_EQ(row["first_seen"], "2025-12-31T23:50:00Z");
    EXPECT_EQ(row["last_seen"], "2025-12-31T23:59:00Z");
    const std::vector<std::string> seen_by =
        reversed ? std::vector<std::string>{"gw-b:9090", "gw-a:9090"}
                 : std::vector<std::string>{"gw-a:9090", "gw-b:9090"};
    EXPECT_EQ(row["seen_by"], nlohmann::json(seen_by));
    const nlohmann::json p = Profile(merged, "new");
    EXPECT_EQ(p["trusting"], 0);
    EXPECT_EQ(p["rejecting"], 1);
  }

  // The other way round: it rejected first, then trusted on the other gateway.
  ReadinessTracker c(100), d(100);
  Rec(c, "10.0.0.1", "new", kRejected, "unknown_ca", kNow - 600);
  Rec(d, "10.0.0.1", "new", kTrusted, "", kNow - 60);
  const nlohmann::json merged = MergeReadiness({{"c", c.ToJson(kNow)}, {"d", d.ToJson(kNow)}});
  const nlohmann::json row = Row(merged, "new", "10.0.0.1");
  EXPECT_EQ(row["status"], "trusts") << row.dump(2);
  EXPECT_EQ(row["evidence"], "application_data");
  // The last alert ever seen stays, as one gateway keeps it.
  EXPECT_EQ(row["last_alert"], "unknown_ca");
  EXPECT_EQ(Profile(merged, "new")["trusting"], 1);
  EXPECT_EQ(Profile(merged, "new")["rejecting"], 0);
}

TEST(ReadinessMerge, ATieWithinTheSecondIsARejection) {
  ReadinessTracker a(100), b(100);
  Rec(a, "10.0.0.1", "new", kTrusted, "", kNow);
  Rec(b, "10.0.0.1", "new", kRejected, "", kNow);
  for (const bool reversed : {false, true}) {
    Docs docs = {{"a", a.ToJson(kNow)}, {"b", b.ToJson(kNow)}};
    if (reversed) std::swap(docs[0], docs[1]);
    const nlohmann::json row = Row(MergeReadiness(docs), "new", "10.0.0.1");
    EXPECT_EQ(row["status"], "rejects");
    EXPECT_EQ(row["evidence"], "closed_during_handshake");
    EXPECT_EQ(row["last_alert"], nullptr);
  }
}

TEST(ReadinessMerge, DisjointClientsAreTheUnion) {
  ReadinessTracker a(100), b(50);
  Rec(a, "10.0.0.9", "new", kTrusted, "", kNow - 30);
  Rec(a, "10.0.0.10", "new", kRejected, "unknown_ca", kNow - 20);
  Rec(b, "10.0.0.2", "new", kTrusted, "", kNow - 10);
  Rec(b, "::1", "legacy", kTrusted, "", kNow - 5);
  const nlohmann::json merged =
      MergeReadiness({{"a", a.ToJson(kNow, {"legacy", "new"})}, {"b", b.ToJson(kNow + 1)}});
  EXPECT_EQ(merged["generated_at"], "2026-01-01T00:00:01Z");
  EXPECT_EQ(merged["clients_tracked"], 4);
  EXPECT_EQ(merged["max_clients"], 150);
  EXPECT_EQ(merged["evicted"], 0);
  EXPECT_FALSE(merged.contains("gateways"));
  ASSERT_EQ(merged["profiles"].size(), 2u);
  EXPECT_EQ(merged["profiles"][0]["profile"], "legacy");
  const nlohmann::json p = Profile(merged, "new");
  // Numeric order, IPv4 first, as one gateway lists them.
  std::vector<std::string> order;
  for (const auto& c : p["clients"]) order.push_back(c["client"]);
  EXPECT_EQ(order, (std::vector<std::string>{"10.0.0.2", "10.0.0.9", "10.0.0.10", "::1"}));
  EXPECT_EQ(p["trusting"], 2);
  EXPECT_EQ(p["rejecting"], 1);
  EXPECT_EQ(p["unknown"], 1);
  EXPECT_EQ(p["clients_truncated"], false);
  EXPECT_EQ(Row(merged, "new", "10.0.0.2")["seen_by"], nlohmann::json({"b"}));
  EXPECT_EQ(Row(merged, "new", "10.0.0.9")["seen_by"], nlohmann::json({"a"}));
  // Known to b for legacy only: unknown for new, named by the gateway that tracks it.
  EXPECT_EQ(Row(merged, "new", "::1")["status"], "unknown");
  EXPECT_EQ(Row(merged, "new", "::1")["seen_by"], nlohmann::json({"b"}));
  // a knows legacy (configured) but none of its clients used it; b never listed a's
  // clients there: unknown for legacy, as one gateway would list them.
  const nlohmann::json legacy = Profile(merged, "legacy");
  EXPECT_EQ(legacy["trusting"], 1);
  EXPECT_EQ(legacy["unknown"], 3);
  EXPECT_EQ(Row(merged, "legacy", "10.0.0.9")["status"], "unknown");
  EXPECT_EQ(Row(merged, "legacy", "10.0.0.9")["seen_by"], nlohmann::json({"a"}));
  EXPECT_EQ(Row(merged, "legacy", "10.0.0.9")["trusted"], 0);
}

TEST(ReadinessMerge, CountsAreRecountedNotAdded) {
  ReadinessTracker a(100), b(100);
  for (ReadinessTracker* t : {&a, &b}) {
    Rec(*t, "10.0.0.1", "new", kTrusted, "", kNow - 100);
    Rec(*t, "10.0.0.2", "new", kRejected, "unknown_ca", kNow - 100);
  }
  Rec(b, "10.0.0.3", "new", kTrusted, "", kNow - 50);
  const nlohmann::json merged = MergeReadiness({{"a", a.ToJson(kNow)}, {"b", b.ToJson(kNow)}});
  EXPECT_EQ(merged["clients_tracked"], 3);  // not 2 + 3
  const nlohmann::json p = Profile(merged, "new");
  EXPECT_EQ(p["trusting"], 2);
  EXPECT_EQ(p["rejecting"], 1);
  EXPECT_EQ(p["unknown"], 0);
  EXPECT_EQ(p["clients"].size(), 3u);
  // Each gateway's connections count.
  EXPECT_EQ(Row(merged, "new", "10.0.0.1")["trusted"], 2);
  EXPECT_EQ(Row(merged, "new", "10.0.0.1")["seen_by"], nlohmann::json({"a", "b"}));
}

TEST(ReadinessMerge, TheUserIsTheOneSeenLast) {
  ReadinessTracker a(100), b(100);
  Rec(a, "10.0.0.1", "new", kTrusted, "", kNow - 100, "alice");
  Rec(b, "10.0.0.1", "new", kTrusted, "", kNow - 10, "bob");
  Rec(b, "10.0.0.2", "new", kTrusted, "", kNow - 10);  // nobody identified
  Rec(a, "10.0.0.2", "new", kTrusted, "", kNow - 100, "carol");
  const nlohmann::json merged = MergeReadiness({{"a", a.ToJson(kNow)}, {"b", b.ToJson(kNow)}});
  EXPECT_EQ(Row(merged, "new", "10.0.0.1")["user"], "bob");
  // A gateway that identified nobody there does not erase the name another one learnt.
  EXPECT_EQ(Row(merged, "new", "10.0.0.2")["user"], "carol");
}

TEST(ReadinessMerge, TheChartAddsEachGatewaysLatestPoint) {
  ReadinessTracker a(100), b(100);
  constexpr std::time_t kHour = 3600;
  Rec(a, "10.0.0.1", "new", kTrusted, "", kNow - 3 * kHour);      // a: hour -3: 1 trusting
  Rec(b, "10.0.0.2", "new", kRejected, "", kNow - 2 * kHour);     // b: hour -2: 1 rejecting
  Rec(a, "10.0.0.3", "new", kTrusted, "", kNow - 1 * kHour);      // a: hour -1: 2 trusting
  Rec(b, "10.0.0.2", "new", kTrusted, "", kNow - 1 * kHour + 5);  // b: hour -1: 1 trusting
  const nlohmann::json merged = MergeReadiness({{"a", a.ToJson(kNow)}, {"b", b.ToJson(kNow)}});
  const nlohmann::json history = Profile(merged, "new")["history"];
  ASSERT_EQ(history.size(), 3u) << history.dump(2);
  EXPECT_EQ(history[0],
            nlohmann::json({{"at", "2025-12-31T21:00:00Z"}, {"trusting", 1}, {"rejecting", 0}}));
  // Hour -2: b's point, and a's point of hour -3 that still holds.
  EXPECT_EQ(history[1],
            nlohmann::json({{"at", "2025-12-31T22:00:00Z"}, {"trusting", 1}, {"rejecting", 1}}));
  EXPECT_EQ(history[2],
            nlohmann::json({{"at", "2025-12-31T23:00:00Z"}, {"trusting", 3}, {"rejecting", 0}}));
}

TEST(ReadinessMerge, ATruncatedListKeepsItsFlagAndInventsNoUnknowns) {
  nlohmann::json a = {{"generated_at", "2026-01-01T00:00:00Z"},
                      {"clients_tracked", 5000},
                      {"max_clients", 10000},
                      {"evicted", 7},
                      {"profiles",
                       {{{"profile", "new"},
                         {"trusting", 5000},
                         {"rejecting", 0},
                         {"unknown", 0},
                         {"clients", nlohmann::json::array()},
                         {"clients_truncated", true},
                         {"history", nlohmann::json::array()}}}}};
  ReadinessTracker b(100);
  Rec(b, "10.0.0.1", "legacy", kTrusted, "", kNow);
  const nlohmann::json merged = MergeReadiness({{"a", a}, {"b", b.ToJson(kNow)}});
  EXPECT_EQ(merged["clients_tracked"], 5000);  // at least a's
  EXPECT_EQ(merged["evicted"], 7);
  EXPECT_EQ(merged["max_clients"], 10100);
  const nlohmann::json p = Profile(merged, "new");
  EXPECT_EQ(p["clients_truncated"], true);
  EXPECT_TRUE(Row(merged, "new", "10.0.0.1").is_null()) << p.dump(2);
  EXPECT_EQ(Profile(merged, "legacy")["clients_truncated"], false);
}

TEST(ReadinessMerge, OneDocumentMergesToItself) {
  ReadinessTracker a(100);
  Rec(a, "10.0.0.1", "new", kTrusted, "", kNow - 100, "alice");
  Rec(a, "10.0.0.2", "new", kRejected, "unknown_ca", kNow - 50);
  Rec(a, "10.0.0.1", "legacy", kTrusted, "", kNow - 10);
  nlohmann::json doc = a.ToJson(kNow, {"legacy", "new", "spare"});
  nlohmann::json merged = MergeReadiness({{"a", doc}});
  for (auto& p : merged["profiles"]) {
    for (auto& c : p["clients"]) {
      EXPECT_TRUE(c["seen_by"] == nlohmann::json({"a"})) << c.dump();
      c.erase("seen_by");
    }
  }
  EXPECT_EQ(merged, doc) << merged.dump(2) << "\n" << doc.dump(2);
}

TEST(ReadinessMerge, SkipsWhatIsNoReadinessDocument) {
  ReadinessTracker a(100);
  Rec(a, "10.0.0.1", "new", kTrusted, "", kNow);
  const nlohmann::json odd = {{"profiles",
                               {{{"profile", "new"},
                                 {"clients",
                                  {42,
                                   {{"client", "10.0.0.1"}, {"status", "trusts"}, {"trusted", -3}},
                                   {{"status", "rejects"}}}},
                                 {"history", {{{"at", "yesterday"}}}}}}}};
  const nlohmann::json merged =
      MergeReadiness({{"a", a.ToJson(kNow)}, {"odd", odd}, {"null", nullptr}});
  const nlohmann::json row = Row(merged, "new", "10.0.0.1");
  EXPECT_EQ(row["status"], "trusts");
  EXPECT_EQ(row["trusted"], 1);
  EXPECT_EQ(Profile(merged, "new")["clients"].size(), 1u);
  EXPECT_EQ(Profile(merged, "new")["history"].size(), 1u);
}

// ---- RunCaReadiness with several --admin ----

// A file holding kToken.
std::string TokenFile() {
  static const std::string path = [] {
    std::string dir = ::testing::TempDir() + "mergetokenXXXXXX";
    if (mkdtemp(dir.data()) == nullptr) throw std::runtime_error("mkdtemp");
    const std::string file = dir + "/admin.token";
    std::ofstream(file) << kToken << "\n";
    ::chmod(file.c_str(), 0600);
    return file;
  }();
  return path;
}

// Answers one connection on 127.0.0.1 with /readiness's answer carrying `body`.
class StandInAdmin {
 public:
  explicit StandInAdmin(const std::string& body, int status = 200) {
    response_ =
        "HTTP/1.1 " + std::to_string(status) +
        " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\nConnection: close\r\n\r\n" + body;
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
      }
      for (std::size_t sent = 0; sent < response_.size();) {
        const ssize_t n = ::send(c, response_.data() + sent, response_.size() - sent, 0);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      ::close(c);
    });
  }
  ~StandInAdmin() {
    if (thread_.joinable()) {
      ::shutdown(fd_, SHUT_RDWR);
      thread_.join();
    }
    if (fd_ >= 0) ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::string response_;
  std::thread thread_;
};

// A loopback address where nothing listens (bound, not listening: refused).
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~ClosedPort() { ::close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

std::string DocA() {
  ReadinessTracker t(100);
  Rec(t, "10.0.0.1", "new", kTrusted, "", kNow - 600);
  Rec(t, "10.0.0.2", "new", kTrusted, "", kNow - 600);
  return t.ToJson(kNow).dump(2) + "\n";
}

std::string DocB() {
  ReadinessTracker t(100);
  Rec(t, "10.0.0.2", "new", kRejected, "unknown_ca", kNow - 60);
  Rec(t, "10.0.0.3", "new", kTrusted, "", kNow - 60);
  return t.ToJson(kNow).dump(2) + "\n";
}

TEST(ReadinessMerge, MergesTheGatewaysThatAnswerAndNamesTheOthers) {
  StandInAdmin a(DocA()), b(DocB());
  ClosedPort down;
  CaReadinessArgs args;
  args.token_file = TokenFile();
  args.admins = {a.address(), down.address(), b.address()};
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 0) << err.str();
  EXPECT_EQ(err.str(), "warning: cannot reach the admin listener at " + down.address() +
                           ": connection refused — is mintgate running?\n");
  const std::string text = out.str();
  EXPECT_NE(text.find("Client readiness merged from 2 of 3 gateways (" + a.address() + ", " +
                      b.address() + "; not answering: " + down.address() +
                      "), 2026-01-01T00:00:00Z\n3 clients tracked (at most 200; 0 forgotten"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Profile \"new\": 2 of 3 clients trust it (66%), 1 reject it\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("LAST REJECTED         SEEN BY\n"), std::string::npos) << text;
  EXPECT_NE(text.find("10.0.0.1  -     trusts   application_data  1        0         0       "
                      "2025-12-31T23:50:00Z  -                     " +
                      a.address() + "\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("10.0.0.2  -     rejects  alert:unknown_ca  1        1         0       "
                      "2025-12-31T23:50:00Z  2025-12-31T23:59:00Z  " +
                      a.address() + "," + b.address() + "\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("10.0.0.3"), std::string::npos) << text;
}

TEST(ReadinessMerge, JsonIsTheMergedDocumentWithTheGateways) {
  StandInAdmin a(DocA()), b(DocB());
  ClosedPort down;
  CaReadinessArgs args;
  args.token_file = TokenFile();
  args.json = true;
  args.admins = {a.address(), b.address(), down.address()};
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 0) << err.str();
  EXPECT_NE(err.str().find("warning: cannot reach the admin listener at " + down.address()),
            std::string::npos);
  const nlohmann::json doc = nlohmann::json::parse(out.str());
  ASSERT_EQ(doc["gateways"].size(), 3u);
  EXPECT_EQ(doc["gateways"][0], nlohmann::json({{"address", a.address()}, {"answered", true}}));
  EXPECT_EQ(doc["gateways"][1], nlohmann::json({{"address", b.address()}, {"answered", true}}));
  EXPECT_EQ(doc["gateways"][2]["address"], down.address());
  EXPECT_EQ(doc["gateways"][2]["answered"], false);
  EXPECT_NE(doc["gateways"][2]["error"].get<std::string>().find("connection refused"),
            std::string::npos);
  EXPECT_EQ(doc["clients_tracked"], 3);
  EXPECT_EQ(Row(doc, "new", "10.0.0.2")["status"], "rejects");
  EXPECT_EQ(Profile(doc, "new")["trusting"], 2);
}

TEST(ReadinessMerge, ErrorAnswersAreWarningsToo) {
  StandInAdmin a(DocA()), refused("wrong admin token\n", 401), missing("nothing\n", 404),
      bad("not json");
  CaReadinessArgs args;
  args.token_file = TokenFile();
  args.admins = {refused.address(), a.address(), missing.address(), bad.address()};
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 0) << err.str();
  const std::string e = err.str();
  EXPECT_NE(e.find("warning: the admin listener at " + refused.address() +
                   " refused the token from " + TokenFile() + " (401)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("warning: the admin listener at " + missing.address() + " answered 404"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("warning: the admin listener at " + bad.address() +
                   " did not answer with a readiness document"),
            std::string::npos)
      << e;
  EXPECT_NE(out.str().find("merged from 1 of 4 gateways"), std::string::npos) << out.str();
}

TEST(ReadinessMerge, NoneAnsweringIsExitThree) {
  ClosedPort x, y;
  CaReadinessArgs args;
  args.token_file = TokenFile();
  args.admins = {x.address(), y.address()};
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 3);
  EXPECT_TRUE(out.str().empty());
  EXPECT_NE(err.str().find("warning: cannot reach the admin listener at " + x.address()),
            std::string::npos);
  EXPECT_NE(err.str().find("warning: cannot reach the admin listener at " + y.address()),
            std::string::npos);
  EXPECT_NE(err.str().find("error: none of the 2 admin listeners answered\n"), std::string::npos)
      << err.str();
}

TEST(ReadinessMerge, OneAdminIsTheSingleGatewaysReport) {
  for (const bool json : {false, true}) {
    StandInAdmin first(DocA()), second(DocA());
    CaReadinessArgs one;
    one.token_file = TokenFile();
    one.json = json;
    one.admin = first.address();
    CaReadinessArgs repeated = one;
    repeated.admin.clear();
    repeated.admins = {second.address()};
    std::ostringstream out1, err1, out2, err2;
    EXPECT_EQ(RunCaReadiness(one, out1, err1), 0) << err1.str();
    EXPECT_EQ(RunCaReadiness(repeated, out2, err2), 0) << err2.str();
    std::string expected = out1.str();
    const std::size_t at = expected.find(first.address());
    if (!json) {
      ASSERT_NE(at, std::string::npos);
      expected.replace(at, first.address().size(), second.address());
    }
    EXPECT_EQ(out2.str(), expected);
    EXPECT_EQ(out2.str().find("SEEN BY"), std::string::npos);
    EXPECT_EQ(out2.str().find("seen_by"), std::string::npos);
    EXPECT_EQ(out2.str().find("gateways"), std::string::npos);
  }
}

TEST(ReadinessMerge, TheSameAdminTwiceIsAUsageError) {
  CaReadinessArgs args;
  args.token_file = TokenFile();
  args.admins = {"127.0.0.1:9090", "127.0.0.1:9091", "127.0.0.1:09090"};
  std::ostringstream out, err;
  EXPECT_EQ(RunCaReadiness(args, out, err), 2);
  EXPECT_EQ(err.str(), "error: --admin \"127.0.0.1:09090\" is given twice\n");
  args.admins = {"127.0.0.1:9090", "nowhere"};
  std::ostringstream out2, err2;
  EXPECT_EQ(RunCaReadiness(args, out2, err2), 2);
  EXPECT_NE(err2.str().find("is not HOST:PORT"), std::string::npos);
}

}  // namespace
}  // namespace mintgate::proxy
