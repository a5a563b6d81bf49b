// The session's phases driven through in-memory streams with a fake clock, resolver and loop:
// plain keep-alive and pipelining, the pool, Upgrade, an upstream failure at each phase,
// every timeout of plain HTTP (no sleeping: the clock moves when the test says), backpressure
// both ways, and the access record of each failure.
#include "proxy/session/session.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <uv.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fakes.h"
#include "proxy/control/runtime_builder.h"
#include "proxy/log/access_log.h"

namespace mintgate::proxy::testing {
namespace {

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / "mgsessXXXXXX").string();
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    uv_loop_init(&loop_);
  }
  void TearDown() override {
    context_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // the pool's timer closes
    uv_loop_close(&loop_);
    std::filesystem::remove_all(dir_);
  }

  // A gateway configuration: plain HTTP, origins on 127.0.0.2, short and distinct timeouts
  // (seconds) so that each one can be told apart.
  // `server_extra`: more [server] keys.
  void Start(const std::string& extra = "", const std::string& server_extra = "") {
    std::ofstream(dir_ + "/m.toml") << "[server]\nlisten = [\"127.0.0.1:3128\"]\nstate_dir = \""
                                    << dir_ << "/state\"\nallow_loopback_upstreams = true\n"
                                    << server_extra << "[inspection]\nenabled = false\n"
                                    << "[log]\naccess = \"" << dir_ << "/access.log\"\n"
                                    << "[timeouts]\nrequest_head = 10\nclient_idle = 60\n"
                                    << "connect = 11\norigin_first_byte = 120\n"
                                    << "origin_idle = 121\ntunnel_idle = 600\n"
                                    << extra;
    std::ostringstream out;
    RuntimeBuild build = BuildRuntime(dir_ + "/m.toml", {}, out);
    ASSERT_NE(build.runtime, nullptr) << (build.errors.empty() ? "" : build.errors[0]);
    context_ = std::make_unique<FakeContext>(build.runtime, &loop_);
    context_->resolver_.Add("www.lab.test", "127.0.0.2");
    context_->resolver_.Add("other.lab.test", "127.0.0.3");
    context_->net_.Listen("127.0.0.2:80");
  }

  // The access records written so far.
  std::vector<nlohmann::json> Records() {
    AccessLog::FlushAll();
    std::vector<nlohmann::json> records;
    std::ifstream in(dir_ + "/access.log");
    for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
    return records;
  }

  // The origin side of the gateway's n-th origin connection.
  MemoryStream& Origin(std::size_t n = 0) {
    auto& all = context_->net_.connections();
    EXPECT_LT(n, all.size());
    EXPECT_NE(all.at(n), nullptr) << "origin connection " << n << " is gone";
    return *all.at(n);
  }
  std::size_t OriginConnections() { return context_->net_.connections().size(); }

  static std::string Get(const std::string& path, const std::string& extra = "") {
    return "GET http://www.lab.test" + path + " HTTP/1.1\r\nHost: www.lab.test\r\n" + extra +
           "\r\n";
  }
  static std::string Ok(const std::string& body) {
    return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  std::string dir_;
  uv_loop_t loop_{};
  std::unique_ptr<FakeContext> context_;
};

TEST_F(SessionTest, PlainKeepAliveReusesTheOriginConnection) {
  Start();
  MemoryStream* client = context_->Connect();
  client->Send(Get("/a"));
  context_->Pump();
  ASSERT_EQ(OriginConnections(), 1u);
  // The origin sees an origin-form request with its own Host.
  EXPECT_EQ(Origin().peer().received.rfind("GET /a HTTP/1.1\r\n", 0), 0u)
      << Origin().peer().received;
  EXPECT_NE(Origin().peer().received.find("Host: www.lab.test\r\n"), std::string::npos);
  Origin().Send(Ok("first"));
  context_->Pump();
  EXPECT_NE(client->peer().received.find("\r\n\r\nfirst"), std::string::npos);
  Origin().peer().received.clear();
  client->Send(Get("/b"));
  context_->Pump();
  ASSERT_EQ(OriginConnections(), 1u) << "the kept-alive origin connection was not reused";
  EXPECT_EQ(Origin().peer().received.rfind("GET /b HTTP/1.1\r\n", 0), 0u);
  Origin().Send(Ok("second"));
  context_->Pump();
  EXPECT_NE(client->peer().received.find("\r\n\r\nsecond"), std::string::npos);
  EXPECT_FALSE(client->peer().ended);
  const auto records = Records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["url"], "http://www.lab.test/a");
  EXPECT_EQ(records[1]["status"], 200);
  EXPECT_FALSE(records[1].contains("error"));
}

TEST_F(SessionTest, ExchangesAreCountedForMetrics) {
  Start();
  MemoryStream* client = context_->Connect();
  const std::string request = Get("/a");
  client->Send(request);
  context_->Pump();
  ASSERT_EQ(OriginConnections(), 1u);
  const std::string response = Ok("first");
  Origin().Send(response);
  context_->Pump();
  const WorkerMetrics& m = context_->metrics_;
  EXPECT_EQ(m.requests[static_cast<std::size_t>(ActionIndex::kHttp)][2].value(), 1u);
  EXPECT_EQ(m.client_bytes.read.value(), request.size());
  EXPECT_EQ(m.origin_bytes.read.value(), response.size());
  EXPECT_EQ(m.origin_bytes.written.value(), Origin().peer().received.size());
  EXPECT_EQ(m.client_bytes.written.value(), client->peer().received.size());
  EXPECT_EQ(m.upstream_connects.value(), 1u);
  std::uint64_t timed = 0;
  for (const auto& bucket : m.time_to_first_byte.buckets()) timed += bucket.value();
  EXPECT_EQ(timed, 1u);
  // A name that does not resolve: counted with its reason.
  client->Send("GET http://nowhere.lab.test/ HTTP/1.1\r\nHost: nowhere.lab.test\r\n\r\n");
  context_->Pump();
  EXPECT_EQ(m.dns_failures.Snapshot().size(), 1u);
  EXPECT_EQ(m.requests[static_cast<std::size_t>(ActionIndex::kHttp)][5].value(), 1u);
}

// server.proxy_protocol: a balancer at 127.0.0.1 names the client; 127.0.0.5 is no balancer.
constexpr const char* kBalancer =
    "allow_clients = [\"127.0.0.1/32\", \"198.51.100.0/24\"]\nproxy_protocol = \"any\"\n"
    "proxy_protocol_from = [\"127.0.0.1/32\"]\n";

TEST_F(SessionTest, ProxyHeaderNamesTheClient) {
  Start("", kBalancer);
  MemoryStream* client = context_->Connect("127.0.0.1");
  // Header and request in one read, then the header's client goes through the rules.
  client->Send("PROXY TCP4 198.51.100.7 127.0.0.1 40000 3128\r\n" + Get("/a"));
  context_->Pump();
  ASSERT_EQ(OriginConnections(), 1u);
  Origin().Send(Ok("hi"));
  context_->Pump();
  EXPECT_NE(client->peer().received.find("\r\n\r\nhi"), std::string::npos);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["client"], "198.51.100.7");
}

TEST_F(SessionTest, TheBalancerIsNeverADestination) {
  Start("", kBalancer);
  // The balancer listens on 127.0.0.2:80, which www.lab.test resolves to: connecting there
  // would send the request through the balancer to a gateway again.
  MemoryStream* client = context_->Connect("127.0.0.1");
  client->Send("PROXY TCP4 198.51.100.7 127.0.0.2 40000 80\r\n" + Get("/a"));
  context_->Pump();
  EXPECT_EQ(OriginConnections(), 0u);
  EXPECT_EQ(client->peer().received.rfind("HTTP/1.1 403", 0), 0u) << client->peer().received;
  EXPECT_NE(Records().at(0)["note"].get<std::string>().find("load balancer"), std::string::npos);
}

TEST_F(SessionTest, ProxyHeaderSourceMustBeAnAllowedClient) {
  Start("", kBalancer);
  MemoryStream* client = context_->Connect("127.0.0.1");
  client->Send("PROXY TCP4 203.0.113.9 127.0.0.1 40000 3128\r\n" + Get("/a"));
  context_->Pump();
  EXPECT_EQ(OriginConnections(), 0u);
  EXPECT_EQ(client->peer().received.rfind("HTTP/1.1 403", 0), 0u) << client->peer().received;
  EXPECT_EQ(Records().at(0)["client"], "203.0.113.9");
}

TEST_F(SessionTest, ConnectionsWithoutAValidProxyHeaderAreClosed) {
  Start("", kBalancer);
  const WorkerMetrics& m = context_->metrics_;
  const auto refused = [&m] {
    return m.refused[static_cast<std::size_t>(Refusal::kProxyHeader)].value();
  };
  // A client speaking HTTP straight to a listener that expects the header.
  MemoryStream* direct = context_->Connect("127.0.0.1");
  auto direct_peer = direct->shared_peer();
  direct->Send(Get("/a"));
  context_->Pump();
  EXPECT_TRUE(direct_peer->received.empty());
  EXPECT_TRUE(direct_peer->ended);
  EXPECT_EQ(refused(), 1u);
  // A well-formed header from a peer that is not a balancer is not believed.
  const std::size_t open = context_->open_sessions();
  context_->Connect("127.0.0.5");  // closed at once: the stream it returns is already gone
  EXPECT_EQ(context_->open_sessions(), open);
  EXPECT_EQ(refused(), 2u);
  // A header that never ends: closed at timeouts.request_head.
  MemoryStream* slow = context_->Connect("127.0.0.1");
  auto slow_peer = slow->shared_peer();
  slow->Send("PROXY TCP4 198.51.100.7");
  context_->Pump();
  EXPECT_FALSE(slow_peer->ended);
  context_->Advance(10'000);
  EXPECT_TRUE(slow_peer->ended);
  EXPECT_EQ(refused(), 3u);
  EXPECT_EQ(OriginConnections(), 0u);
  const auto records = Records();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["error"], "policy/refused");
  EXPECT_NE(records[1]["note"].get<std::string>().find("proxy_protocol_from"), std::string::npos);
}

TEST_F(SessionTest, LocalProxyHeaderKeepsTheBalancerAsClient) {
  Start("", kBalancer);
  MemoryStream* check = context_->Connect("127.0.0.1");
  check->Send("PROXY UNKNOWN\r\n" + Get("/a"));
  context_->Pump();
  ASSERT_EQ(OriginConnections(), 1u);
  Origin().Send(Ok("hi"));
  context_->Pump();
  EXPECT_EQ(Records().at(0)["client"], "127.0.0.1");
}

TEST_F(SessionTest, PipelinedRequestsAreAnsweredInOrder) {
  Start();
  MemoryStream* client = context_->Connect();
  client->Send(Get("/1") + Get("/2"));
  context_->Pump();
  ASSERT_EQ(OriginConnections(), 1u);
  // The second request waits until the first response is done.
  EXPECT_EQ(Origin().peer().received.find("GET /2"), std::string::npos);
  Origin().Send(Ok("one"));
  context_->Pump();
  EXPECT_NE(Origin().peer().received.find("GET /2"), std::string::npos);
  Origin().Send(Ok("two"));
  context_->Pump();
  const std::string& got = client->peer().received;
  ASSERT_NE(got.find("one"), std::string::npos);
  ASSERT_NE(got.find("two"), std::string::npos);
  EXPECT_LT(got.find("one"), got.find("two"));
}

TEST_F(SessionTest, TheNextClientGetsThePooledConnection) {
  Start();
  MemoryStream* first = context_->Connect();
  first->Send(Get("/a", "Connection: close\r\n"));
  context_->Pump();
  Origin().Send(Ok("a"));
  context_->Pump();
  EXPECT_TRUE(first->peer().ended);  // the client asked to close; the origin stays pooled
  EXPECT_EQ(context_->pool().idle(), 1u);
  MemoryStream* second = context_->Connect();
  second->Send(Get("/b"));
  context_->Pump();
  EXPECT_EQ(OriginConnections(), 1u);
  EXPECT_EQ(context_->pool().reused(), 1u);
  Origin().Send(Ok("b"));
  context_->Pump();
  EXPECT_NE(second->peer().received.find("\r\n\r\nb"), std::string::npos);
}

TEST_F(SessionTest, UpgradeSplicesBothWays) {
  Start();
  MemoryStream* client = context_->Connect();
  client->Send(Get("/ws", "Connection: Upgrade\r\nUpgrade: websocket\r\n"));
  context_->Pump();
  ASSERT_EQ(OriginConnections(), 1u);
  Origin().Send(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
      "from-origin");
  context_->Pump();
  EXPECT_NE(client->peer().received.find("101 Switching Protocols"), std::string::npos);
  EXPECT_NE(client->peer().received.find("from-origin"), std::string::npos);
  client->Send("from-client");
  context_->Pump();
  EXPECT_NE(Origin().peer().received.find("from-client"), std::string::npos);
}

TEST_F(SessionTest, DnsFailureIs502WithItsCause) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send("GET http://nowhere.lab.test/ HTTP/1.1\r\nHost: nowhere.lab.test\r\n\r\n");
  context_->Pump();
  EXPECT_EQ(peer->received.rfind("HTTP/1.1 502", 0), 0u) << peer->received;
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "dns/unavailable");
  EXPECT_NE(records[0]["note"].get<std::string>().find("nowhere.lab.test"), std::string::npos);
}

TEST_F(SessionTest, RefusedConnectIs502) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send("GET http://other.lab.test/ HTTP/1.1\r\nHost: other.lab.test\r\n\r\n");
  context_->Pump();
  EXPECT_EQ(peer->received.rfind("HTTP/1.1 502", 0), 0u) << peer->received;
  EXPECT_EQ(Records().at(0)["error"], "upstream/refused");
}

TEST_F(SessionTest, ConnectTimeoutIs504AfterTimeoutsConnect) {
  Start();
  context_->net_.Listen("127.0.0.3:80", MemoryNet::OriginMode::kBlackhole);
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send("GET http://other.lab.test/ HTTP/1.1\r\nHost: other.lab.test\r\n\r\n");
  context_->Pump();
  context_->Advance(10'999);
  EXPECT_TRUE(peer->received.empty()) << "answered before timeouts.connect";
  context_->Advance(1);
  EXPECT_EQ(peer->received.rfind("HTTP/1.1 504", 0), 0u) << peer->received;
  EXPECT_EQ(Records().at(0)["error"], "upstream/timeout");
}

TEST_F(SessionTest, SlowRequestHeadIs408AfterRequestHead) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send("GET http://www.lab.test/ HTTP/1.1\r\nHo");
  context_->Pump();
  context_->Advance(5'000);
  client->Send("st: www");  // trickling bytes do not extend the 10 s
  context_->Pump();
  context_->Advance(4'999);
  EXPECT_TRUE(peer->received.empty());
  context_->Advance(1);
  EXPECT_EQ(peer->received.rfind("HTTP/1.1 408", 0), 0u) << peer->received;
  context_->Advance(2'000);  // the linger after the answer
  EXPECT_TRUE(peer->ended);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "downstream/timeout");
}

TEST_F(SessionTest, IdleKeptAliveClientIsClosedSilentlyAfterClientIdle) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send(Get("/a"));
  context_->Pump();
  Origin().Send(Ok("a"));
  context_->Pump();
  const std::size_t answered = peer->received.size();
  context_->Advance(59'999);
  EXPECT_FALSE(peer->ended);
  context_->Advance(1);
  EXPECT_TRUE(peer->ended);
  EXPECT_EQ(peer->received.size(), answered) << "an idle close says nothing";
  EXPECT_EQ(Records().size(), 1u) << "an idle close is not a failure";
  EXPECT_EQ(context_->open_sessions(), 0u);
}

TEST_F(SessionTest, SilentOriginIs504AfterOriginFirstByte) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send(Get("/slow"));
  context_->Pump();
  context_->Advance(119'999);
  EXPECT_TRUE(peer->received.empty());
  context_->Advance(1);
  EXPECT_EQ(peer->received.rfind("HTTP/1.1 504", 0), 0u) << peer->received;
  EXPECT_EQ(Records().at(0)["error"], "upstream/timeout");
}

TEST_F(SessionTest, OriginSilentMidResponseIsClosedAfterOriginIdle) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send(Get("/stall"));
  context_->Pump();
  Origin().Send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
  context_->Pump();
  context_->Advance(60'000);
  Origin().Send("more");  // activity restarts the idle period
  context_->Pump();
  context_->Advance(120'999);
  EXPECT_FALSE(peer->ended);
  context_->Advance(1);
  EXPECT_TRUE(peer->ended);
  EXPECT_NE(peer->received.find("partialmore"), std::string::npos);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "upstream/timeout");
  EXPECT_NE(records[0]["note"].get<std::string>().find("origin_idle"), std::string::npos);
}

TEST_F(SessionTest, OriginClosingBeforeAnsweringIs502) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send(Get("/x", "Content-Length: 2\r\n") + "hi");  // a body: never retried
  context_->Pump();
  Origin().SendEnd();
  context_->Pump();
  EXPECT_EQ(peer->received.rfind("HTTP/1.1 502", 0), 0u) << peer->received;
  EXPECT_EQ(Records().at(0)["error"], "upstream/closed");
}

TEST_F(SessionTest, OriginClosingMidResponseClosesTheClient) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send(Get("/cut"));
  context_->Pump();
  Origin().Send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf");
  Origin().SendEnd();
  context_->Pump();
  EXPECT_TRUE(peer->ended);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "upstream/closed");
  EXPECT_NE(records[0]["note"].get<std::string>().find("mid-response"), std::string::npos);
}

TEST_F(SessionTest, ClientLeavingMidUploadIsRecorded) {
  Start();
  MemoryStream* client = context_->Connect();
  client->Send(
      "PUT http://www.lab.test/up HTTP/1.1\r\nHost: www.lab.test\r\n"
      "Content-Length: 100\r\n\r\nabc");
  context_->Pump();
  client->SendEnd();
  context_->Pump();
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "downstream/closed");
}

// A client that does not read: the origin's bytes queue up to the high watermark, then the
// gateway stops reading the origin, and starts again once the client has read.
TEST_F(SessionTest, SlowClientStopsReadingTheOrigin) {
  Start();
  MemoryStream* client = context_->Connect();
  client->Send(Get("/big"));
  context_->Pump();
  client->peer().accepts = false;
  const std::string chunk(256 * 1024, 'x');
  Origin().Send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(8 * chunk.size()) +
                "\r\n\r\n");
  for (int i = 0; i < 8; ++i) Origin().Send(chunk);
  context_->Pump();
  EXPECT_FALSE(Origin().reading()) << "the origin is read although the client reads nothing";
  EXPECT_LE(client->queued_bytes(), (1u << 20) + 64 * 1024);
  client->Drain();
  context_->Pump();
  EXPECT_EQ(client->peer().received.size() - client->peer().received.find("\r\n\r\n") - 4,
            8 * chunk.size());
}

// An origin that does not read an upload: the client is no longer read.
TEST_F(SessionTest, SlowOriginStopsReadingTheClient) {
  Start();
  MemoryStream* client = context_->Connect();
  const std::size_t size = 4u << 20;
  client->Send("PUT http://www.lab.test/up HTTP/1.1\r\nHost: www.lab.test\r\nContent-Length: " +
               std::to_string(size) + "\r\n\r\n");
  context_->Pump();
  Origin().peer().accepts = false;
  client->Send(std::string(size, 'u'));
  context_->Pump();
  EXPECT_FALSE(client->reading()) << "the client is read although the origin reads nothing";
  Origin().Drain();
  context_->Pump();
  const std::string& got = Origin().peer().received;
  EXPECT_EQ(got.size() - got.find("\r\n\r\n") - 4, size);
}

TEST_F(SessionTest, BlockedHostIs403AndNeverConnects) {
  Start("[[rule]]\nname = \"no-www\"\naction = \"block\"\nhosts = [\"www.lab.test\"]\n");
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send(Get("/"));
  context_->Pump();
  EXPECT_EQ(peer->received.rfind("HTTP/1.1 403", 0), 0u) << peer->received;
  EXPECT_EQ(OriginConnections(), 0u);
  const auto records = Records();
  EXPECT_EQ(records.at(0)["error"], "policy/refused");
  EXPECT_EQ(records.at(0)["rule"], "no-www");
}

// A client that does not read its answer does not hold the connection: the 403 stays queued
// for timeouts.linger (2 s by default), then the connection closes. One that reads it gets a
// FIN and, once it ends its side too, is closed at once.
TEST_F(SessionTest, AnswerNobodyReadsIsDroppedAfterLinger) {
  Start("[[rule]]\nname = \"no-www\"\naction = \"block\"\nhosts = [\"www.lab.test\"]\n");
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  peer->accepts = false;
  client->Send(Get("/"));
  context_->Pump();
  EXPECT_TRUE(peer->received.empty());
  context_->Advance(1999);
  EXPECT_EQ(context_->open_sessions(), 1u) << "closed before timeouts.linger";
  context_->Advance(1);
  EXPECT_EQ(context_->open_sessions(), 0u) << "still open after timeouts.linger";
  EXPECT_TRUE(peer->ended);

  MemoryStream* reader = context_->Connect();
  auto reader_peer = reader->shared_peer();
  reader->Send(Get("/"));
  context_->Pump();
  EXPECT_EQ(reader_peer->received.rfind("HTTP/1.1 403", 0), 0u);
  EXPECT_TRUE(reader_peer->ended) << "no FIN after the answer";
  EXPECT_EQ(context_->open_sessions(), 1u) << "lingering: what the client still sends is read";
  reader->Send("late bytes are dropped");
  reader->SendEnd();
  context_->Pump();
  EXPECT_EQ(context_->open_sessions(), 0u) << "the client's end did not close the lingering one";
}

// An upgraded connection is a tunnel: closed after timeouts.tunnel_idle with no byte either
// way, and every byte starts the period again.
TEST_F(SessionTest, IdleTunnelIsClosedAfterTunnelIdle) {
  Start();
  MemoryStream* client = context_->Connect();
  auto peer = client->shared_peer();
  client->Send(Get("/ws", "Connection: Upgrade\r\nUpgrade: websocket\r\n"));
  context_->Pump();
  Origin().Send(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      "Upgrade: websocket\r\n\r\n");
  context_->Pump();
  context_->Advance(599'000);
  client->Send("ping");
  context_->Pump();
  context_->Advance(599'000);
  EXPECT_FALSE(peer->ended) << "activity did not restart timeouts.tunnel_idle";
  context_->Advance(1'000);
  EXPECT_TRUE(peer->ended);
  const auto records = Records();
  ASSERT_EQ(records.size(), 2u);  // the upgrade, then the tunnel's end
  EXPECT_EQ(records[1]["error"], "downstream/timeout");
  EXPECT_NE(records[1]["note"].get<std::string>().find("tunnel idle for 600 s"), std::string::npos)
      << records[1];
}

}  // namespace
}  // namespace mintgate::proxy::testing
