#include "proxy/access_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace mintgate::proxy {
namespace {

AccessRecord Sample() {
  AccessRecord r;
  r.time = 1700000000.125;
  r.duration_ms = 42;
  r.client = "127.0.0.1";
  r.method = "GET";
  r.url = "http://www.example.com/a b";
  r.status = 200;
  r.bytes_from_client = 80;
  r.bytes_to_client = 1234;
  r.action = "http";
  r.rule = "default";
  r.upstream = "192.0.2.7";
  return r;
}

TEST(AccessLog, JsonCarriesEveryField) {
  AccessLog log("-", LogFormat::kJson);
  nlohmann::json j = nlohmann::json::parse(log.Format(Sample()));
  EXPECT_DOUBLE_EQ(j["time"].get<double>(), 1700000000.125);
  EXPECT_EQ(j["duration_ms"], 42);
  EXPECT_EQ(j["client"], "127.0.0.1");
  EXPECT_TRUE(j["user"].is_null());
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["url"], "http://www.example.com/a b");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["bytes_from_client"], 80);
  EXPECT_EQ(j["bytes_to_client"], 1234);
  EXPECT_EQ(j["action"], "http");
  EXPECT_EQ(j["rule"], "default");
  EXPECT_TRUE(j["ca"].is_null());
  EXPECT_TRUE(j["cert_cache"].is_null());
  EXPECT_EQ(j["upstream"], "192.0.2.7");
  EXPECT_FALSE(j.contains("note"));
}

TEST(AccessLog, JsonSurvivesInvalidUtf8FromTheNetwork) {
  AccessLog log("-", LogFormat::kJson);
  AccessRecord r = Sample();
  r.url = std::string("http://x/\xff\xfe");
  EXPECT_NO_THROW(nlohmann::json::parse(log.Format(r)));
}

TEST(AccessLog, SquidNativeFormat) {
  AccessLog log("-", LogFormat::kSquid);
  EXPECT_EQ(log.Format(Sample()),
            "1700000000.125 42 127.0.0.1 TCP_MISS/200 1234 GET http://www.example.com/a_b - "
            "HIER_DIRECT/192.0.2.7 -");
  AccessRecord tunnel = Sample();
  tunnel.action = "tunnel";
  tunnel.method = "CONNECT";
  tunnel.url = "www.example.com:443";
  EXPECT_NE(log.Format(tunnel).find("TCP_TUNNEL/200"), std::string::npos);
  AccessRecord denied = Sample();
  denied.status = 403;
  denied.upstream.clear();
  EXPECT_NE(log.Format(denied).find("TCP_DENIED/403"), std::string::npos);
  EXPECT_NE(log.Format(denied).find("HIER_NONE/-"), std::string::npos);
}

TEST(AccessLog, AppendsToAFileAndReportsOneItCannotOpen) {
  std::string dir = (std::filesystem::temp_directory_path() / "mglogXXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  {
    AccessLog log(dir + "/access.log", LogFormat::kJson);
    log.Write(Sample());
    log.Write(Sample());
  }
  std::ifstream in(dir + "/access.log");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    EXPECT_NO_THROW(nlohmann::json::parse(line));
    ++lines;
  }
  EXPECT_EQ(lines, 2);
  EXPECT_THROW(AccessLog(dir + "/missing/dir/access.log", LogFormat::kJson), std::runtime_error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mintgate::proxy
