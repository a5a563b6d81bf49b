// The two directions of an exchange on their own, over a plain transport to an in-memory
// peer: what the request relay holds back until the origin is ready and how it re-chunks, what
// the response relay passes on (interim, HEAD, close-delimited, chunked, a switch), and the
// watermarks that decide when a relay's source reads.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fakes.h"
#include "proxy/session/request_relay.h"
#include "proxy/session/response_relay.h"
#include "proxy/session/watermarks.h"

namespace mintgate::proxy::testing {
namespace {

struct NoEvents final : Transport::Events {
  void OnTransportFailed(const net::ConnError& error) override { failures.push_back(error); }
  void OnTransportQueued() override {}
  std::vector<net::ConnError> failures;
};

class RelayTest : public ::testing::Test,
                  public RequestRelay::Events,
                  public ResponseRelay::Events {
 protected:
  RelayTest() { transport_.Attach(&stream_); }

  void OnRequestHead(HttpHead& head) override { heads.push_back(head.method + " " + head.target); }
  bool OnResponseHead(const HttpHead& head, bool close_delimited) override {
    statuses.push_back(head.status);
    return !close_delimited;
  }
  void OnSwitch(bool asked) override { switches.push_back(asked); }

  const std::string& sent() { return stream_.peer().received; }

  MemoryNet net_;
  MemoryStream stream_{net_, nullptr, "127.0.0.2"};
  Transport::Cork cork_;
  NoEvents events_;
  Transport transport_{net::ErrorSource::kUpstream, cork_, events_};
  std::vector<std::string> heads;
  std::vector<int> statuses;
  std::vector<bool> switches;
};

TEST_F(RelayTest, RequestBodyWaitsForTheOriginThenFlows) {
  RequestRelay relay(*this, transport_);
  relay.NewParser();
  relay.Next();
  std::string in =
      "PUT http://www.lab.test/u HTTP/1.1\r\nHost: www.lab.test\r\n"
      "Content-Length: 10\r\n\r\nfirst";
  relay.Feed(in);
  ASSERT_EQ(heads, std::vector<std::string>{"PUT http://www.lab.test/u"});
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(sent(), "") << "nothing may reach an origin that is not connected";
  relay.SendHead("/u", "www.lab.test");
  EXPECT_EQ(sent().rfind("PUT /u HTTP/1.1\r\n", 0), 0u) << sent();
  EXPECT_NE(sent().find("\r\n\r\nfirst"), std::string::npos) << "the held-back body follows";
  in = "+rest";
  relay.Feed(in);
  EXPECT_TRUE(relay.complete());
  EXPECT_EQ(sent().substr(sent().size() - 10), "first+rest");
}

TEST_F(RelayTest, ChunkedRequestIsChunkedAgainAndPipelinedStays) {
  RequestRelay relay(*this, transport_);
  relay.NewParser();
  relay.Next();
  std::string in =
      "POST http://www.lab.test/c HTTP/1.1\r\nHost: www.lab.test\r\n"
      "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
      "GET http://www.lab.test/next HTTP/1.1\r\nHost: www.lab.test\r\n\r\n";
  relay.SendHead("/c", "www.lab.test");  // connected before the head: body flows at once
  relay.Feed(in);
  EXPECT_TRUE(relay.complete());
  EXPECT_TRUE(relay.paused());
  EXPECT_NE(sent().find("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), std::string::npos) << sent();
  EXPECT_EQ(in.rfind("GET http://www.lab.test/next", 0), 0u) << "the next request is not parsed";
  relay.Next();
  relay.Resume();
  relay.Feed(in);
  EXPECT_EQ(heads.back(), "GET http://www.lab.test/next");
}

TEST_F(RelayTest, ResponsePassesInterimHeadBodyAndEnd) {
  ResponseRelay relay(*this, transport_);
  relay.Begin(false, false);
  std::string wire =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n";
  std::size_t offset = 0;
  while (offset < wire.size()) {
    HttpParser::FeedResult r = relay.Feed(wire.data() + offset, wire.size() - offset);
    offset += r.consumed;
    ASSERT_FALSE(r.error);
    if (r.paused && !relay.complete()) relay.Resume();
    if (r.consumed == 0) break;
  }
  EXPECT_TRUE(relay.started());
  EXPECT_TRUE(relay.complete());
  EXPECT_EQ(statuses, std::vector<int>{200}) << "interim responses are not the session's";
  EXPECT_EQ(sent().rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0), 0u) << sent();
  EXPECT_EQ(sent().substr(sent().size() - 16), "\r\n4\r\nbody\r\n0\r\n\r\n");
}

TEST_F(RelayTest, CloseDelimitedResponseClosesTheClientAndHeadHasNoBody) {
  ResponseRelay relay(*this, transport_);
  relay.Begin(false, false);
  std::string wire = "HTTP/1.1 200 OK\r\n\r\nuntil the end";
  relay.Feed(wire.data(), wire.size());
  EXPECT_TRUE(relay.close_delimited());
  EXPECT_NE(sent().find("Connection: close\r\n"), std::string::npos) << sent();
  EXPECT_FALSE(relay.FeedEof());
  EXPECT_TRUE(relay.complete());

  relay.Reset();
  stream_.peer().received.clear();
  relay.Begin(true, false);  // HEAD: the Content-Length announces a body that never comes
  wire = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  HttpParser::FeedResult r = relay.Feed(wire.data(), wire.size());
  EXPECT_TRUE(r.paused);
  EXPECT_TRUE(relay.complete());
  EXPECT_FALSE(relay.close_delimited());
}

TEST_F(RelayTest, UnaskedSwitchIsNotPassedOn) {
  ResponseRelay relay(*this, transport_);
  relay.Begin(false, false);
  std::string wire =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n";
  relay.Feed(wire.data(), wire.size());
  EXPECT_EQ(switches, std::vector<bool>{false});
  EXPECT_FALSE(relay.upgrading());
  EXPECT_EQ(sent(), "");

  relay.Reset();
  relay.Begin(false, true);
  relay.Feed(wire.data(), wire.size());
  EXPECT_EQ(switches.back(), true);
  EXPECT_TRUE(relay.upgrading());
  EXPECT_NE(sent().find("Upgrade: x\r\n"), std::string::npos) << sent();
}

TEST(Watermarks, SourceStopsAboveHighAndResumesOnlyBelowLow) {
  EXPECT_TRUE(Watermarks::SourceReads(true, Watermarks::kHigh));
  EXPECT_FALSE(Watermarks::SourceReads(true, Watermarks::kHigh + 1));
  EXPECT_FALSE(Watermarks::SourceReads(false, Watermarks::kLow + 1));
  EXPECT_TRUE(Watermarks::SourceReads(false, Watermarks::kLow));
}

}  // namespace
}  // namespace mintgate::proxy::testing
