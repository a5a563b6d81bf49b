// The migration console: login, sessions, CSRF, the confirmation step and the overlay it
// writes, and the pages and exports rendered from the audit and readiness documents.
#include "proxy/control/console.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "proxy/config/schedule_overlay.h"
#include "proxy/control/console_pages.h"
#include "proxy/runtime/readiness.h"
#include "rules/ca_resolver.h"

namespace mintgate::proxy {
namespace {

using nlohmann::json;

constexpr const char* kToken = "console-test-token-0123456789abcdef";
constexpr std::time_t kNow = 1767225600;  // 2026-01-01T00:00:00Z

struct Answer {
  int status = 0;
  std::string head;
  std::string body;
  std::string Header(const std::string& name) const {
    const std::size_t at = head.find("\r\n" + name + ": ");
    if (at == std::string::npos) return "";
    const std::size_t start = at + name.size() + 4;
    return head.substr(start, head.find("\r\n", start) - start);
  }
};

Answer Parse(const std::string& response) {
  Answer a;
  const std::size_t end = response.find("\r\n\r\n");
  a.head = response.substr(0, end + 2);
  a.body = response.substr(end + 4);
  a.status = std::stoi(response.substr(9, 3));
  return a;
}

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime_.admin_token = kToken;
    runtime_.readiness = std::make_shared<ReadinessTracker>(100);
    console_ = std::make_unique<Console>("", "127.0.0.1:9090");
    console_->SetClock([this] { return now_; });
  }

  Answer Send(const std::string& method, const std::string& target, const std::string& body = "",
              std::vector<HttpHeader> extra = {}) {
    std::vector<HttpHeader> headers{{"Host", "127.0.0.1:9090"}};
    if (!cookie_.empty()) headers.push_back({"Cookie", "other=1; " + cookie_});
    for (HttpHeader& h : extra) headers.push_back(std::move(h));
    return Parse(console_->Respond({method, target, &headers, body, "127.0.0.1"}, runtime_));
  }

  // Logs in; returns the CSRF token of the session.
  std::string LogIn() {
    const Answer a = Send("POST", "/console/login", std::string("token=") + kToken);
    EXPECT_EQ(a.status, 303);
    const std::string set = a.Header("Set-Cookie");
    cookie_ = set.substr(0, set.find(';'));
    const Answer page = Send("GET", "/console/");
    EXPECT_EQ(page.status, 200);
    const std::string marker = "name=\"csrf\" value=\"";
    const std::size_t at = page.body.find(marker);
    EXPECT_NE(at, std::string::npos);
    return page.body.substr(at + marker.size(), 64);
  }

  Runtime runtime_;
  std::unique_ptr<Console> console_;
  std::time_t now_ = kNow;
  std::string cookie_;
};

TEST_F(ConsoleTest, AnonymousRequestsGoToTheLoginPage) {
  EXPECT_TRUE(Console::Handles("/"));
  EXPECT_TRUE(Console::Handles("/console/export/audit.csv"));
  EXPECT_FALSE(Console::Handles("/consoles"));
  EXPECT_FALSE(Console::Handles("/readiness"));

  Answer a = Send("GET", "/");
  EXPECT_EQ(a.status, 303);
  EXPECT_EQ(a.Header("Location"), "/console/");
  a = Send("GET", "/console/");
  EXPECT_EQ(a.status, 303);
  EXPECT_EQ(a.Header("Location"), "/console/login");
  a = Send("GET", "/console/export/readiness.json");
  EXPECT_EQ(a.status, 303);
  a = Send("GET", "/console/login");
  EXPECT_EQ(a.status, 200);
  EXPECT_NE(a.body.find("<form method=\"post\" action=\"/console/login\""), std::string::npos);
  EXPECT_NE(a.Header("Content-Security-Policy").find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(a.Header("X-Frame-Options"), "DENY");
  EXPECT_EQ(a.Header("Cache-Control"), "no-store");
  // A form posted without a session changes nothing.
  a = Send("POST", "/console/action", "action=clear&profile=legacy&confirm=yes");
  EXPECT_EQ(a.status, 403);
  EXPECT_NE(a.body.find("log in again"), std::string::npos);
  EXPECT_EQ(Send("DELETE", "/console/").status, 405);
}

TEST_F(ConsoleTest, LoginSetsAStrictHttpOnlyCookie) {
  Answer a = Send("POST", "/console/login", "token=wrong-token");
  EXPECT_EQ(a.status, 401);
  EXPECT_TRUE(a.Header("Set-Cookie").empty());
  EXPECT_NE(a.body.find("Wrong admin token"), std::string::npos);

  a = Send("POST", "/console/login", std::string("token=") + kToken);
  ASSERT_EQ(a.status, 303);
  EXPECT_EQ(a.Header("Location"), "/console/");
  const std::string cookie = a.Header("Set-Cookie");
  EXPECT_EQ(cookie.rfind("mintgate_console=", 0), 0u);
  EXPECT_NE(cookie.find("; HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("; SameSite=Strict"), std::string::npos);
  EXPECT_NE(cookie.find("; Path=/console"), std::string::npos);
  EXPECT_EQ(cookie.find(kToken), std::string::npos) << "the session is not the token";
  cookie_ = cookie.substr(0, cookie.find(';'));
  EXPECT_EQ(Send("GET", "/console/").status, 200);
  EXPECT_EQ(Send("GET", "/console/login").status, 303) << "already logged in";
}

TEST_F(ConsoleTest, RepeatedFailuresAreThrottledPerAddress) {
  for (int i = 0; i < Console::kMaxLoginFailures; ++i) {
    EXPECT_EQ(Send("POST", "/console/login", "token=guess" + std::to_string(i)).status, 401);
  }
  // Even the right token waits now.
  Answer a = Send("POST", "/console/login", std::string("token=") + kToken);
  EXPECT_EQ(a.status, 429);
  EXPECT_FALSE(a.Header("Retry-After").empty());
  now_ += Console::kFailureWindow;
  EXPECT_EQ(Send("POST", "/console/login", std::string("token=") + kToken).status, 303);
}

TEST_F(ConsoleTest, SessionsExpireWhenIdleAndAtTheirEnd) {
  LogIn();
  now_ += Console::kIdleSeconds - 10;
  EXPECT_EQ(Send("GET", "/console/").status, 200);
  now_ += Console::kIdleSeconds;
  EXPECT_EQ(Send("GET", "/console/").status, 303) << "idle for an hour";

  LogIn();
  for (std::time_t t = 0; t < Console::kSessionSeconds - 1800; t += 1800) {
    now_ += 1800;
    ASSERT_EQ(Send("GET", "/console/").status, 200);
  }
  now_ += 1800;
  EXPECT_EQ(Send("GET", "/console/").status, 303) << "used all along, but 8 hours old";
}

TEST_F(ConsoleTest, LogoutEndsTheSession) {
  const std::string csrf = LogIn();
  const std::string old = cookie_;
  Answer a = Send("POST", "/console/logout", "csrf=" + csrf);
  EXPECT_EQ(a.status, 303);
  EXPECT_NE(a.Header("Set-Cookie").find("Max-Age=0"), std::string::npos);
  cookie_ = old;  // a copy of the cookie is worth nothing now
  EXPECT_EQ(Send("GET", "/console/").status, 303);
}

TEST_F(ConsoleTest, FormsNeedTheSessionsCsrfTokenAndTheSameOrigin) {
  const std::string csrf = LogIn();
  EXPECT_EQ(Send("POST", "/console/logout", "").status, 403);
  EXPECT_EQ(Send("POST", "/console/logout", "csrf=" + std::string(64, '0')).status, 403);
  EXPECT_EQ(
      Send("POST", "/console/logout", "csrf=" + csrf, {{"Sec-Fetch-Site", "cross-site"}}).status,
      403);
  EXPECT_EQ(Send("POST", "/console/logout", "csrf=" + csrf, {{"Origin", "http://attacker.example"}})
                .status,
            403);
  EXPECT_EQ(Send("POST", "/console/logout", "csrf=" + csrf, {{"Origin", "null"}}).status, 403);
  // The login form is checked for its origin too (login CSRF).
  cookie_.clear();
  EXPECT_EQ(Send("POST", "/console/login", std::string("token=") + kToken,
                 {{"Sec-Fetch-Site", "same-site"}})
                .status,
            403);
  EXPECT_EQ(Send("POST", "/console/logout", "csrf=" + csrf,
                 {{"Origin", "http://127.0.0.1:9090"}, {"Sec-Fetch-Site", "same-origin"}})
                .status,
            403)
      << "no session cookie";
}

TEST_F(ConsoleTest, WithoutAConfigurationFileThereIsNothingToAuditOrChange) {
  const std::string csrf = LogIn();
  const Answer page = Send("GET", "/console/");
  EXPECT_NE(page.body.find("embedded default configuration"), std::string::npos);
  EXPECT_EQ(Send("GET", "/console/export/audit.csv").status, 404);
  const Answer readiness = Send("GET", "/console/export/readiness.json");
  EXPECT_EQ(readiness.status, 200);
  EXPECT_EQ(readiness.Header("Content-Type"), "application/json");
  EXPECT_EQ(readiness.Header("Content-Disposition"),
            "attachment; filename=\"mintgate-readiness.json\"");
  EXPECT_EQ(json::parse(readiness.body)["clients_tracked"], 0);
  EXPECT_EQ(Send("POST", "/console/confirm", "csrf=" + csrf + "&action=clear&profile=x").status,
            409);
}

// A configuration file with a migration (its CA files need not exist: the console's schedule
// actions are checked against the file, as `mintgate ca schedule` does).
class ConsoleScheduleTest : public ConsoleTest {
 protected:
  void SetUp() override {
    ConsoleTest::SetUp();
    dir_ = std::filesystem::temp_directory_path() /
           ("mintgate-console-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_ = (dir_ / "mintgate.toml").string();
    std::ofstream(config_) << "[server]\nstate_dir = \"state\"\n[inspection]\ndefault_ca = "
                              "\"legacy\"\n[ca.legacy]\ncert = \"l.pem\"\nkey = \"l.key\"\n"
                              "retire_at = 2026-03-01T00:00:00Z\nsuccessor = \"new\"\n[ca.new]\n"
                              "cert = \"n.pem\"\nkey = \"n.key\"\n";
    runtime_.config.server.state_dir = (dir_ / "state").string();
    console_ = std::make_unique<Console>(config_, "127.0.0.1:9090");
    console_->SetClock([this] { return now_; });
    console_->SetReloader([this] {
      ++reloads_;
      ReloadOutcome o;
      o.ok = true;
      return o;
    });
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string config_;
  int reloads_ = 0;
};

TEST_F(ConsoleScheduleTest, AnActionIsConfirmedThenWrittenToTheOverlayAndReloaded) {
  const std::string csrf = LogIn();
  const std::string form = "csrf=" + csrf + "&action=retire_at&profile=legacy&retire_at=2026-04-15";
  Answer a = Send("POST", "/console/confirm", form);
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_NE(a.body.find("Postpone the cutover of legacy"), std::string::npos) << a.body;
  EXPECT_NE(a.body.find("2026-03-01T00:00:00Z -&gt; 2026-04-15T00:00:00Z"), std::string::npos);
  EXPECT_NE(a.body.find("name=\"retire_at\" value=\"2026-04-15T00:00:00Z\""), std::string::npos);
  // Nothing is written before the confirmation, and a bare action is refused.
  const std::string overlay = ScheduleOverlayPath(runtime_.config.server.state_dir);
  EXPECT_FALSE(std::filesystem::exists(overlay));
  EXPECT_EQ(Send("POST", "/console/action", form).status, 400);
  EXPECT_FALSE(std::filesystem::exists(overlay));

  a = Send("POST", "/console/action",
           "csrf=" + csrf + "&confirm=yes&action=retire_at&profile=legacy&retire_at=" +
               "2026-04-15T00%3A00%3A00Z");
  EXPECT_EQ(a.status, 303);
  EXPECT_EQ(reloads_, 1);
  const ScheduleOverlayLoad loaded = LoadScheduleOverlay(overlay);
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded.overlay.retire_at.count("legacy"), 1u);
  EXPECT_EQ(rules::FormatInstant(*loaded.overlay.retire_at.at("legacy").retire_at),
            "2026-04-15T00:00:00Z");
  EXPECT_EQ(loaded.overlay.retire_at.at("legacy").changed.by, "console 127.0.0.1");
  struct stat st {};
  ASSERT_EQ(::stat(overlay.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The outcome is shown once, and the action is in the recent actions.
  Answer page = Send("GET", "/console/");
  EXPECT_NE(page.body.find("id=\"flash\">Done: "), std::string::npos);
  EXPECT_NE(page.body.find("<td>console 127.0.0.1</td><td>retire_at</td><td>legacy</td>"
                           "<td>2026-03-01T00:00:00Z</td><td>2026-04-15T00:00:00Z</td>"),
            std::string::npos);
  page = Send("GET", "/console/");
  EXPECT_EQ(page.body.find("id=\"flash\""), std::string::npos);
}

TEST_F(ConsoleScheduleTest, RefusedChangesSayWhyAndWriteNothing) {
  const std::string csrf = LogIn();
  Answer a = Send("POST", "/console/confirm",
                  "csrf=" + csrf + "&action=retire_at&profile=new&retire_at=2026-05-01");
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(a.body.find("has no successor"), std::string::npos) << a.body;
  a = Send("POST", "/console/confirm",
           "csrf=" + csrf + "&action=retire_at&profile=legacy&retire_at=next+week");
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(a.body.find("is not a time"), std::string::npos);
  a = Send("POST", "/console/confirm",
           "csrf=" + csrf + "&action=canary_start&ca=new&percent=150&clients=10.0.0.0%2F8");
  EXPECT_EQ(a.status, 400);
  a = Send("POST", "/console/confirm", "csrf=" + csrf + "&action=explode&profile=legacy");
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(a.body.find("unknown action"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(ScheduleOverlayPath(runtime_.config.server.state_dir)));
  EXPECT_EQ(reloads_, 0);
}

TEST_F(ConsoleScheduleTest, RollingBackAPassedCutoverIsFlaggedAsSuch) {
  now_ = kNow + 90 * 86400;  // after retire_at
  const std::string csrf = LogIn();
  const Answer a =
      Send("POST", "/console/confirm", "csrf=" + csrf + "&action=clear&profile=legacy");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_NE(a.body.find("Roll back the cutover of legacy"), std::string::npos);
  EXPECT_NE(a.body.find("class=\"danger\""), std::string::npos);
  EXPECT_NE(a.body.find("sign with legacy again at once"), std::string::npos);
}

TEST_F(ConsoleScheduleTest, ACanaryStartsThroughTheConsole) {
  const std::string csrf = LogIn();
  Answer a = Send("POST", "/console/confirm",
                  "csrf=" + csrf +
                      "&action=canary_start&ca=new&percent=25&clients=10.0.0.0%2F8+"
                      "192.168.0.0%2F16");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_NE(a.body.find("name=\"fallback\" value=\"yes\""), std::string::npos);
  a = Send("POST", "/console/action",
           "csrf=" + csrf +
               "&confirm=yes&action=canary_start&ca=new&percent=25&clients=10.0.0.0%2F8+"
               "192.168.0.0%2F16&fallback=no");
  EXPECT_EQ(a.status, 303);
  const ScheduleOverlayLoad loaded =
      LoadScheduleOverlay(ScheduleOverlayPath(runtime_.config.server.state_dir));
  ASSERT_EQ(loaded.overlay.canaries.count("new"), 1u);
  const CanaryChange& c = loaded.overlay.canaries.at("new");
  EXPECT_TRUE(c.started);
  EXPECT_EQ(c.percent, 25);
  EXPECT_EQ(c.clients, (std::vector<std::string>{"10.0.0.0/8", "192.168.0.0/16"}));
  EXPECT_FALSE(c.fallback);
}

// ---- pages ----

json Audit() {
  return json::parse(R"({
    "at": "2026-01-01T00:00:00Z", "ok": true, "errors": [], "needs_migration": true,
    "overlay": {"file": "s/schedule.toml", "changes": []},
    "rules": [
      {"rule": "<b>tunnel</b>", "action": "tunnel", "configured_profile": null, "profile": null,
       "subject_cn": null, "issuer_cn": null, "status": "ok", "switches": null},
      {"rule": "default", "action": "decrypt", "configured_profile": "legacy",
       "profile": "legacy", "subject_cn": "Legacy", "issuer_cn": "Legacy", "status": "migrate",
       "switches": "2026-02-01T00:00:00Z -> new"}],
    "profiles": [
      {"name": "legacy", "used_by": ["default"], "subject": "CN=Legacy", "subject_cn": "Legacy",
       "issuer": "CN=Legacy", "issuer_cn": "Legacy", "key_type": "ECDSA P-256",
       "not_after": "2030-01-01T00:00:00Z", "days_left": 1461, "sha256": "AA:BB",
       "retire_at": "2026-02-01T00:00:00Z", "successor": "new"},
      {"name": "new", "used_by": ["default"], "subject": "CN=New", "subject_cn": "New",
       "issuer": "CN=New", "issuer_cn": "New", "key_type": "ECDSA P-256",
       "not_after": "2036-01-01T00:00:00Z", "days_left": 3652, "sha256": "CC:DD"}]})");
}

rules::IpAddress Ip(const std::string& text) { return *rules::IpAddress::Parse(text); }

void Record(ReadinessTracker& t, const std::string& ip, const std::string& profile, bool trusts,
            std::time_t at, std::string_view sni = "www.example.com") {
  Verdict v;
  v.outcome = trusts ? HandshakeOutcome::kTrusted : HandshakeOutcome::kRejected;
  v.evidence = trusts ? Evidence::kApplicationData : Evidence::kAlert;
  v.alert = trusts ? "" : "unknown_ca";
  v.sni = sni;
  v.at_ms = static_cast<std::int64_t>(at) * 1000;
  t.Record(Ip(ip), profile, v);
}

TEST(ConsolePages, TheProjectionListsRecentClientsThatNeverTrustedTheSuccessor) {
  ReadinessTracker t(100);
  Record(t, "10.0.0.1", "legacy", true, kNow - 3600);  // never tried new: at risk
  Record(t, "10.0.0.2", "legacy", true, kNow - 3600);  // rejects new: at risk
  Record(t, "10.0.0.2", "new", false, kNow - 3000);
  Record(t, "10.0.0.3", "legacy", true, kNow - 3600);  // trusts new: ready
  Record(t, "10.0.0.3", "new", true, kNow - 3000);
  Record(t, "10.0.0.4", "legacy", true, kNow - 30 * 86400);  // not seen recently
  const std::vector<Projection> p = ProjectCutovers(Audit(), t.ToJson(kNow), kNow);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].profile, "legacy");
  EXPECT_EQ(p[0].successor, "new");
  EXPECT_EQ(p[0].rules, std::vector<std::string>{"default"});
  EXPECT_EQ(p[0].ready, 1u);
  ASSERT_EQ(p[0].at_risk.size(), 2u);
  EXPECT_EQ(p[0].at_risk[0].client, "10.0.0.1");
  EXPECT_EQ(p[0].at_risk[0].successor_seen, "never connected with it");
  EXPECT_EQ(p[0].at_risk[1].client, "10.0.0.2");
  EXPECT_EQ(p[0].at_risk[1].successor_seen, "rejects (alert:unknown_ca)");
  // After the date there is nothing to project.
  EXPECT_TRUE(ProjectCutovers(Audit(), t.ToJson(kNow), kNow + 40 * 86400).empty());
}

TEST(ConsolePages, ThePageShowsEveryRuleAndEscapesWhatItShows) {
  ReadinessTracker t(100);
  Record(t, "10.0.0.2", "new", false, kNow - 60);
  ConsoleView v;
  v.now = kNow;
  v.gateway = "127.0.0.1:9090";
  v.audit = Audit();
  v.readiness = t.ToJson(kNow);
  v.csrf = "c0ffee";
  CanaryConfig canary;
  canary.ca = "new";
  canary.percent = 10;
  v.canaries.push_back(canary);
  const std::string html = RenderConsolePage(v);
  EXPECT_NE(html.find("data-rule=\"&lt;b&gt;tunnel&lt;/b&gt;\""), std::string::npos);
  EXPECT_EQ(html.find("<b>tunnel</b>"), std::string::npos);
  EXPECT_NE(html.find("<tr data-rule=\"default\" data-status=\"migrate\">"), std::string::npos);
  EXPECT_NE(html.find("&rarr; new <time datetime=\"2026-02-01T00:00:00Z\">"), std::string::npos);
  EXPECT_NE(html.find("data-client=\"10.0.0.2\" data-status=\"rejects\""), std::string::npos);
  EXPECT_NE(html.find("<td>alert:unknown_ca</td>"), std::string::npos);
  EXPECT_NE(html.find("<svg id=\"timeline\""), std::string::npos);
  EXPECT_NE(html.find("<svg class=\"chart\""), std::string::npos);
  EXPECT_NE(html.find("<tr data-canary=\"new\">"), std::string::npos);
  EXPECT_NE(html.find("<td>10%</td>"), std::string::npos);
  // Every form carries the CSRF token; no asset comes from elsewhere.
  std::size_t forms = 0, tokens = 0;
  for (std::size_t at = 0; (at = html.find("<form", at)) != std::string::npos; ++at) ++forms;
  for (std::size_t at = 0;
       (at = html.find("name=\"csrf\" value=\"c0ffee\"", at)) != std::string::npos; ++at) {
    ++tokens;
  }
  EXPECT_GT(forms, 3u);
  EXPECT_EQ(forms, tokens);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);

  // A failed audit says so, as the CLI does.
  v.audit["ok"] = false;
  v.audit["errors"] = {"CA profile \"new\" cannot be read: <missing>"};
  const std::string failed = RenderConsolePage(v);
  EXPECT_NE(failed.find("The audit failed"), std::string::npos);
  EXPECT_NE(failed.find("cannot be read: &lt;missing&gt;"), std::string::npos);
}

TEST(ConsolePages, CsvExportsQuoteAndDefuseFormulas) {
  ReadinessTracker t(100);
  Record(t, "10.0.0.2", "new", false, kNow - 60, "=HYPERLINK(\"x\",\"y\")");
  const std::string csv = ReadinessCsv(t.ToJson(kNow));
  EXPECT_EQ(csv.rfind("profile,client,status,evidence,last_alert,", 0), 0u);
  EXPECT_NE(csv.find("new,10.0.0.2,rejects,alert:unknown_ca,unknown_ca,0,1,0,,,"
                     "2025-12-31T23:59:00Z,\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\","),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find("\r\n"), std::string::npos);

  const std::string audit = AuditCsv(Audit());
  EXPECT_NE(audit.find("default,decrypt,legacy,legacy,Legacy,Legacy,migrate,"
                       "2026-02-01T00:00:00Z,new\r\n"),
            std::string::npos)
      << audit;
}

}  // namespace
}  // namespace mintgate::proxy
