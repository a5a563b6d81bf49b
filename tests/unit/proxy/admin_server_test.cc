#include "proxy/control/admin_server.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace mintgate::proxy {
namespace {

int Status(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string Body(const std::string& response) {
  return response.substr(response.find("\r\n\r\n") + 4);
}

constexpr const char* kToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const HttpHeader kHost{"Host", "127.0.0.1:9090"};
const HttpHeader kBearer{"Authorization", std::string("Bearer ") + kToken};

class AdminServerTest : public ::testing::Test {
 protected:
  AdminServerTest() : runtime_(std::make_shared<Runtime>()) { runtime_->admin_token = kToken; }
  std::string Get(const std::string& path, std::vector<HttpHeader> headers,
                  const std::string& config = "") const {
    const AdminServer admin(nullptr, runtime_, config);
    return admin.Respond("GET", path, headers);
  }
  std::shared_ptr<Runtime> runtime_;  // admin.listen 127.0.0.1:9090
};

TEST_F(AdminServerTest, RequestsNamingTheListenerAreServed) {
  EXPECT_EQ(Get("/healthz", {{"Host", "127.0.0.1:9090"}}),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\nok\n");
  EXPECT_EQ(Status(Get("/healthz", {{"host", "localhost"}})), 200);
}

TEST_F(AdminServerTest, OtherHostsAreRefusedOnEveryEndpoint) {
  // What a DNS-rebinding page sends: its own name, now resolving to 127.0.0.1.
  for (const char* path : {"/healthz", "/metrics", "/readiness", "/audit", "/reload", "/nope"}) {
    const std::string r = Get(path, {{"Host", "evil.example:9090"}});
    EXPECT_EQ(Status(r), 403) << path;
    EXPECT_NE(Body(r).find("does not name this admin listener"), std::string::npos) << r;
    EXPECT_EQ(r.find("mintgate_up"), std::string::npos);
  }
  EXPECT_EQ(Status(Get("/readiness", {{"Host", "127.0.0.1:9091"}})), 403);
}

TEST_F(AdminServerTest, AHostHeaderIsRequired) {
  const std::string r = Get("/healthz", {});
  EXPECT_EQ(Status(r), 400);
  EXPECT_EQ(Body(r), "a Host header is required\n");
}

TEST_F(AdminServerTest, PostReloadChecksTheHostAndTheTokenFirst) {
  AdminServer admin(nullptr, runtime_, "");
  int reloads = 0;
  admin.SetReloader(
      [&reloads] {
        ++reloads;
        ReloadOutcome outcome;
        outcome.ok = true;
        outcome.http_status = 200;
        return outcome;
      },
      nullptr);
  // A cross-site form posts with the browser's idea of the host, and never with a token.
  EXPECT_EQ(Status(admin.Respond("POST", "/reload", {{"Host", "attacker.example"}, kBearer})), 403);
  EXPECT_EQ(Status(admin.Respond("POST", "/reload", {kHost})), 401);
  EXPECT_EQ(reloads, 0);
  EXPECT_EQ(Status(admin.Respond("POST", "/reload", {kHost, kBearer})), 200);
  EXPECT_EQ(reloads, 1);
}

TEST_F(AdminServerTest, EveryEndpointButHealthzNeedsTheToken) {
  for (const char* path : {"/metrics", "/readiness", "/audit", "/reload", "/nope"}) {
    // Missing: the challenge names the scheme and realm.
    std::string r = Get(path, {kHost});
    EXPECT_EQ(Status(r), 401) << path;
    EXPECT_NE(r.find("\r\nWWW-Authenticate: Bearer realm=\"mintgate admin\"\r\n"),
              std::string::npos)
        << r;
    EXPECT_NE(Body(r).find("Authorization: Bearer <token>"), std::string::npos) << r;
    // Wrong, or another scheme: RFC 6750's invalid_token.
    for (const std::string& wrong :
         {std::string("Bearer ") + std::string(kToken).replace(63, 1, "0"),
          std::string("Bearer ") + std::string(kToken).substr(0, 63), std::string("Bearer "),
          std::string("Bearer ") + kToken + "0", std::string("Basic ") + kToken,
          std::string(kToken), std::string("Bearer") + kToken}) {
      r = Get(path, {kHost, {"Authorization", wrong}});
      EXPECT_EQ(Status(r), 401) << path << " " << wrong;
      EXPECT_NE(r.find("WWW-Authenticate: Bearer realm=\"mintgate admin\", "
                       "error=\"invalid_token\"\r\n"),
                std::string::npos)
          << r;
      EXPECT_EQ(r.find(kToken), std::string::npos) << "the answer echoes the token";
    }
  }
  // Right: the scheme in any case, spaces around the token.
  EXPECT_EQ(Status(Get("/metrics", {kHost, kBearer})), 200);
  EXPECT_EQ(
      Status(Get("/readiness?x=1", {kHost, {"authorization", std::string("bearer  ") + kToken}})),
      200);
  EXPECT_EQ(Status(Get("/nope", {kHost, kBearer})), 404);
  EXPECT_NE(Get("/metrics", {kHost, kBearer}).find("mintgate_up 1"), std::string::npos);
}

TEST_F(AdminServerTest, HealthzNeedsNoToken) {
  EXPECT_EQ(Status(Get("/healthz", {kHost})), 200);
  EXPECT_EQ(Status(Get("/healthz", {kHost, {"Authorization", "Bearer wrong"}})), 200);
}

TEST_F(AdminServerTest, NoTokenRefusesEverything) {
  // A runtime without a token (never built by BuildRuntime) fails closed.
  runtime_->admin_token.clear();
  EXPECT_EQ(Status(Get("/metrics", {kHost, {"Authorization", "Bearer "}})), 401);
  EXPECT_EQ(Status(Get("/metrics", {kHost, kBearer})), 401);
}

// /audit is the `ca audit --json` report; a CA profile whose certificate cannot be read fails
// it (500) and the report says which, with "ok": false.
TEST_F(AdminServerTest, AuditWithAnUnreadableProfileIsA500WithItsErrors) {
  std::string dir = (std::filesystem::temp_directory_path() / "mgauditXXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  std::ofstream(dir + "/m.toml") << "[server]\nstate_dir = \"" << dir << "/state\"\n"
                                 << "[inspection]\ndefault_ca = \"legacy\"\n"
                                 << "[ca.legacy]\ncert = \"" << dir << "/missing.pem\"\nkey = \""
                                 << dir << "/missing.key\"\n";
  const std::string response = Get("/audit", {kHost, kBearer}, dir + "/m.toml");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(Status(response), 500) << response;
  EXPECT_NE(response.find("application/json"), std::string::npos) << response;
  EXPECT_NE(Body(response).find("\"ok\": false"), std::string::npos) << response;
  EXPECT_NE(Body(response).find("CA profile \\\"legacy\\\" cannot be read"), std::string::npos)
      << response;
}

}  // namespace
}  // namespace mintgate::proxy
