#include "proxy/log/access_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "proxy/net/conn_error.h"

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
  EXPECT_FALSE(j.contains("error"));
}

TEST(AccessLog, JsonCarriesTheErrorOfAFailedExchange) {
  AccessLog log("-", LogFormat::kJson);
  AccessRecord r = Sample();
  r.status = 504;
  r.error = net::ConnError{net::ErrorSource::kUpstream, net::ErrorKind::kTimeout, "", 504}.Tag();
  r.note = "www.example.com did not answer within 120 s (timeouts.origin_first_byte)";
  nlohmann::json j = nlohmann::json::parse(log.Format(r));
  EXPECT_EQ(j["error"], "upstream/timeout");
  EXPECT_EQ(j["note"], r.note);
}

TEST(ConnError, TagsNameTheSourceAndTheKind) {
  using net::ErrorKind;
  using net::ErrorSource;
  EXPECT_EQ((net::ConnError{ErrorSource::kDownstream, ErrorKind::kClosed, "", 0}.Tag()),
            "downstream/closed");
  EXPECT_EQ((net::ConnError{ErrorSource::kClientTls, ErrorKind::kMalformed, "", 0}.Tag()),
            "client_tls/malformed");
  EXPECT_EQ((net::ConnError{ErrorSource::kOriginTls, ErrorKind::kVerify, "", 502}.Tag()),
            "origin_tls/verify");
  EXPECT_EQ((net::ConnError{ErrorSource::kPolicy, ErrorKind::kRefused, "", 403}.Tag()),
            "policy/refused");
  EXPECT_EQ((net::ConnError{ErrorSource::kDns, ErrorKind::kUnavailable, "", 502}.Tag()),
            "dns/unavailable");
  EXPECT_EQ((net::ConnError{ErrorSource::kInternal, ErrorKind::kTooLarge, "", 0}.Tag()),
            "internal/too_large");
  EXPECT_EQ(net::ToString(ErrorKind::kIo), "io");
  EXPECT_EQ(net::ToString(ErrorSource::kUpstream), "upstream");
}

TEST(AccessLog, JsonSurvivesInvalidUtf8FromTheNetwork) {
  AccessLog log("-", LogFormat::kJson);
  AccessRecord r = Sample();
  r.url = std::string("http://x/\xff\xfe");
  EXPECT_NO_THROW(nlohmann::json::parse(log.Format(r)));
}

// The hand-written JSON is what a JSON library writes, for every kind of string the network
// can bring (quotes, control characters, UTF-8 of every length, invalid and truncated bytes).
TEST(AccessLog, JsonMatchesALibraryDumpByteForByte) {
  AccessLog log("-", LogFormat::kJson);
  const std::vector<std::string> urls = {"http://x/plain",
                                         "q\"uote\\back",
                                         std::string("ctl\x01\x1f\b\f\n\r\t", 10),
                                         "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
                                         "bad\xff\xfe end",
                                         "trunc\xe6\x97",
                                         "over\xc0\xaf long",
                                         "sur\xed\xa0\x80 rogate",
                                         "\xf4\x90\x80\x80 big",
                                         std::string("nul\0byte", 8)};
  std::vector<std::string> cases = urls;
  std::mt19937 random(7);  // and random bytes, biased towards UTF-8 lead and continuation bytes
  for (int n = 0; n < 2000; ++n) {
    std::string bytes;
    const int len = static_cast<int>(random() % 12);
    for (int k = 0; k < len; ++k) {
      const unsigned pick = random() % 4;
      bytes += static_cast<char>(pick == 0   ? random() % 0x80
                                 : pick == 1 ? 0x80 + random() % 0x40
                                             : 0xc0 + random() % 0x40);
    }
    cases.push_back(bytes);
  }
  for (const std::string& url : cases) {
    AccessRecord r = Sample();
    r.url = url;
    r.note = url;
    r.user = "alice";
    r.ca = "new";
    r.sni = "www.example.com";
    r.time = 1795898180.796;
    r.error = "downstream/malformed";
    nlohmann::json j = {
        {"time", r.time},
        {"duration_ms", r.duration_ms},
        {"client", r.client},
        {"user", r.user},
        {"method", r.method},
        {"url", r.url},
        {"status", r.status},
        {"bytes_from_client", r.bytes_from_client},
        {"bytes_to_client", r.bytes_to_client},
        {"action", r.action},
        {"rule", r.rule},
        {"sni", r.sni},
        {"ca", r.ca},
        {"cert_cache", nullptr},
        {"upstream", r.upstream},
        {"upstream_verify", nullptr},
    };
    if (!r.note.empty()) j["note"] = r.note;
    j["error"] = r.error;
    EXPECT_EQ(log.Format(r), j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << url;
  }
}

// Squid's format has no quoting: a field is one run of printable bytes, so whatever a client
// sent that is not (spaces, control bytes, escape sequences, non-ASCII) is percent-encoded.
TEST(AccessLog, SquidFieldsCannotBeForged) {
  AccessLog log("-", LogFormat::kSquid);
  AccessRecord r = Sample();
  r.url = "http://x/a b\n1700000000.000 0 6.6.6.6 TCP_MISS/200\x1b[2J\xc3\xa9%";
  const std::string line = log.Format(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\x1b'), std::string::npos);
  EXPECT_NE(
      line.find("http://x/a%20b%0A1700000000.000%200%206.6.6.6%20TCP_MISS/200%1B[2J%C3%A9%25"),
      std::string::npos)
      << line;
}

TEST(AccessLog, SquidNativeFormat) {
  AccessLog log("-", LogFormat::kSquid);
  EXPECT_EQ(log.Format(Sample()),
            "1700000000.125 42 127.0.0.1 TCP_MISS/200 1234 GET http://www.example.com/a%20b - "
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
  // Decrypted URLs: never world-readable, whatever the umask.
  const mode_t old_umask = ::umask(0);
  { AccessLog log(dir + "/new.log", LogFormat::kJson); }
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/new.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_THROW(AccessLog(dir + "/missing/dir/access.log", LogFormat::kJson), std::runtime_error);
  std::filesystem::remove_all(dir);
}

// Lines are queued and written together: at FlushAll (each worker's loop iteration), when
// 64 KiB are queued, and when the log goes away.
TEST(AccessLog, QueuedLinesReachTheFileAtFlushAllAtSizeAndAtTheEnd) {
  std::string dir = (std::filesystem::temp_directory_path() / "mglogXXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/access.log";
  auto lines = [&path] {
    std::ifstream in(path);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) ++n;
    return n;
  };
  int until_full = 0;
  {
    AccessLog log(path, LogFormat::kJson);
    log.Write(Sample());
    EXPECT_EQ(lines(), 0);
    AccessLog::FlushAll();
    EXPECT_EQ(lines(), 1);
    const std::size_t line_size = log.Format(Sample()).size() + 1;
    until_full = static_cast<int>((64 * 1024 + line_size - 1) / line_size);
    for (int i = 0; i < until_full - 1; ++i) log.Write(Sample());
    EXPECT_EQ(lines(), 1);  // still below 64 KiB
    log.Write(Sample());
    EXPECT_EQ(lines(), 1 + until_full);  // written once 64 KiB were queued
    log.Write(Sample());
    EXPECT_EQ(lines(), 1 + until_full);
  }
  EXPECT_EQ(lines(), 2 + until_full);  // the last one when the log went away
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mintgate::proxy
