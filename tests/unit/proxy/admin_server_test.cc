#include "proxy/admin_server.h"

#include <gtest/gtest.h>

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

class AdminServerTest : public ::testing::Test {
 protected:
  AdminServerTest() : runtime_(std::make_shared<Runtime>()) {}
  std::string Get(const std::string& path, std::vector<HttpHeader> headers) const {
    const AdminServer admin(nullptr, runtime_, "");
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

TEST_F(AdminServerTest, PostReloadChecksTheHostFirst) {
  const AdminServer admin(nullptr, runtime_, "");
  // A cross-site form posts with the browser's idea of the host: refused before any reload.
  EXPECT_EQ(Status(admin.Respond("POST", "/reload", {{"Host", "attacker.example"}})), 403);
  EXPECT_EQ(Status(admin.Respond("POST", "/reload", {{"Host", "127.0.0.1:9090"}})), 501);
}

}  // namespace
}  // namespace mintgate::proxy
