// proxy/net/: handles freed by libuv's close callback, streams that can be dropped with writes
// in flight, timers, listeners. Real sockets on loopback, one loop, no threads.
#include <gtest/gtest.h>
#include <uv.h>

#include <memory>
#include <string>

#include "proxy/net/clock.h"
#include "proxy/net/handle.h"
#include "proxy/net/listener.h"
#include "proxy/net/tcp_stream.h"

namespace mintgate::proxy::net {
namespace {

class NetTest : public ::testing::Test {
 protected:
  NetTest() { uv_loop_init(&loop_); }
  ~NetTest() override {
    // Everything the test closed is freed here; a handle left open fails the test.
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
  }
  // Runs the loop until `done` holds (bounded: a hang fails instead of blocking the suite).
  template <typename F>
  bool RunUntil(F done) {
    for (int i = 0; i < 20000 && !done(); ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    return done();
  }
  uv_loop_t loop_{};
};

// Records what a stream reports.
struct Recorder final : TcpStream::Delegate {
  uv_buf_t ReadBuffer() override { return uv_buf_init(buffer, sizeof buffer); }
  void OnRead(ssize_t nread, const char* data) override {
    if (nread < 0) {
      ended = true;
      end_status = static_cast<int>(nread);
    } else {
      received.append(data, static_cast<std::size_t>(nread));
    }
  }
  void OnWriteDone(int status) override {
    ++writes_done;
    if (status < 0) write_error = status;
  }
  char buffer[64 * 1024];
  std::string received;
  bool ended = false;
  int end_status = 0;
  int writes_done = 0;
  int write_error = 0;
};

// A listener on an ephemeral loopback port and a stream connected to it, with the accepted
// side as `server`.
struct Pair {
  Recorder client_events, server_events;
  std::unique_ptr<TcpStream> client, server;
  std::unique_ptr<Listener> listener;
  bool connected = false;
  int connect_status = 1;
};

void Connect(uv_loop_t* loop, Pair& pair) {
  pair.listener = std::make_unique<Listener>(loop, [loop, &pair](uv_stream_t* server) {
    pair.server = std::make_unique<TcpStream>(loop, &pair.server_events);
    ASSERT_EQ(pair.server->Accept(server), 0);
  });
  ASSERT_EQ(pair.listener->Listen("127.0.0.1", 0), "");
  sockaddr_storage bound{};
  int len = sizeof bound;
  ASSERT_EQ(uv_tcp_getsockname(reinterpret_cast<uv_tcp_t*>(pair.listener->stream()),
                               reinterpret_cast<sockaddr*>(&bound), &len),
            0);
  pair.client = std::make_unique<TcpStream>(loop, &pair.client_events);
  ASSERT_EQ(pair.client->Connect(reinterpret_cast<sockaddr*>(&bound),
                                 [&pair](int status) {
                                   pair.connected = true;
                                   pair.connect_status = status;
                                 }),
            0);
}

TEST_F(NetTest, HandleIsFreedByItsCloseCallbackNotByItsOwner) {
  int fired = 0;
  {
    auto timer = Handle<uv_timer_t>::Make(&loop_, &uv_timer_init);
    ASSERT_TRUE(timer);
    timer->data = &fired;
    uv_timer_start(
        timer.get(), [](uv_timer_t* t) { ++*static_cast<int*>(t->data); }, 0, 0);
  }  // closed here, freed when the loop runs its close callback (ASan: no leak, no reuse)
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(fired, 0);
}

TEST_F(NetTest, MovedHandleClosesOnce) {
  auto a = Handle<uv_timer_t>::Make(&loop_, &uv_timer_init);
  Handle<uv_timer_t> b = std::move(a);
  EXPECT_FALSE(a);
  EXPECT_TRUE(b);
  a = std::move(b);
  a.Close();
  a.Close();
  EXPECT_FALSE(a);
}

TEST_F(NetTest, StreamCarriesBytesBothWaysAndCountsThem) {
  Pair pair;
  Connect(&loop_, pair);
  ASSERT_TRUE(RunUntil([&] { return pair.connected && pair.server; }));
  ASSERT_EQ(pair.connect_status, 0);
  EXPECT_EQ(pair.client->PeerAddress(), "127.0.0.1");
  std::uint16_t port = 0;
  EXPECT_EQ(pair.server->LocalAddress(&port), "127.0.0.1");
  EXPECT_NE(port, 0);
  pair.server->StartReading();
  pair.client->StartReading();
  ASSERT_TRUE(pair.client->Write("hello, "));
  ASSERT_TRUE(pair.client->Write("origin"));
  ASSERT_TRUE(RunUntil([&] { return pair.server_events.received.size() == 13; }));
  EXPECT_EQ(pair.server_events.received, "hello, origin");
  ASSERT_TRUE(pair.server->Write("hi"));
  ASSERT_TRUE(pair.server->Shutdown());
  ASSERT_TRUE(RunUntil([&] { return pair.client_events.ended; }));
  EXPECT_EQ(pair.client_events.received, "hi");
  EXPECT_EQ(pair.client_events.end_status, UV_EOF);
  EXPECT_EQ(pair.client->bytes_written(), 13u);
  EXPECT_EQ(pair.server->bytes_read(), 13u);
  EXPECT_EQ(pair.client->bytes_read(), 2u);
  pair.client->Close();
  pair.server->Close();
  pair.listener->Close();
}

// The socket buffer fills, the rest is queued in owned write requests; dropping the stream
// then must neither leak them nor call anyone back (the use-after-free class of a failed
// accept, for writes).
TEST_F(NetTest, StreamDroppedWithWritesQueuedFreesThemAndTellsNobody) {
  Pair pair;
  Connect(&loop_, pair);
  ASSERT_TRUE(RunUntil([&] { return pair.connected && pair.server; }));
  const std::string chunk(1 << 20, 'x');
  for (int i = 0; i < 64 && pair.client->pending_writes() < 2; ++i) {
    ASSERT_TRUE(pair.client->Write(chunk));
  }
  ASSERT_GE(pair.client->pending_writes(), 2u) << "the peer reads nothing: writes must queue";
  EXPECT_GT(pair.client->queued_bytes(), 0u);
  pair.client.reset();  // closed with writes in flight
  pair.server->StartReading();
  ASSERT_TRUE(RunUntil([&] { return pair.server_events.ended; }));
  EXPECT_EQ(pair.client_events.writes_done, 0);
  pair.server->Close();
  pair.listener->Close();
}

TEST_F(NetTest, QueuedWritesCompleteInOrderAndReportDone) {
  Pair pair;
  Connect(&loop_, pair);
  ASSERT_TRUE(RunUntil([&] { return pair.connected && pair.server; }));
  std::string sent;
  for (int i = 0; i < 40; ++i) {
    std::string chunk(256 * 1024, static_cast<char>('a' + i % 26));
    sent += chunk;
    ASSERT_TRUE(pair.client->Write(std::move(chunk)));
  }
  pair.server->StartReading();
  ASSERT_TRUE(RunUntil([&] { return pair.server_events.received.size() == sent.size(); }));
  EXPECT_TRUE(pair.server_events.received == sent) << "bytes reordered or lost";
  ASSERT_TRUE(RunUntil([&] { return pair.client->pending_writes() == 0; }));
  EXPECT_EQ(pair.client->queued_bytes(), 0u);
  EXPECT_EQ(pair.client_events.write_error, 0);
  pair.client->Close();
  pair.server->Close();
  pair.listener->Close();
}

TEST_F(NetTest, AcceptWithNothingPendingFailsAndClosesTheStream) {
  Listener listener(&loop_, [](uv_stream_t*) {});
  ASSERT_EQ(listener.Listen("127.0.0.1", 0), "");
  Recorder events;
  TcpStream stream(&loop_, &events);
  EXPECT_EQ(stream.Accept(listener.stream()), UV_EAGAIN);
  EXPECT_TRUE(stream.closed());
  EXPECT_FALSE(stream.Write("x"));
  listener.Close();
}

TEST_F(NetTest, ListenerExplainsWhyItCannotListen) {
  Listener first(&loop_, [](uv_stream_t*) {});
  ASSERT_EQ(first.Listen("127.0.0.1", 0), "");
  Listener bad(&loop_, [](uv_stream_t*) {});
  EXPECT_EQ(bad.Listen("localhost", 3128), "localhost:3128: listen addresses must be IP addresses");
  Listener v6(&loop_, [](uv_stream_t*) {});
  const std::string error = v6.Listen("::1", 0);
  EXPECT_TRUE(error.empty() || error.rfind("[::1]:0: ", 0) == 0) << error;
  first.Close();
  bad.Close();
  v6.Close();
}

TEST_F(NetTest, TimerFiresOnceAndARestartReplacesTheDeadline) {
  LoopClock clock(&loop_);
  std::unique_ptr<Timer> timer = clock.NewTimer();
  int first = 0, second = 0;
  timer->Start(1, [&] { ++first; });
  timer->Start(1, [&] { ++second; });  // re-armed: the first callback is gone
  EXPECT_TRUE(timer->active());
  ASSERT_TRUE(RunUntil([&] { return second == 1; }));
  EXPECT_EQ(first, 0);
  EXPECT_FALSE(timer->active());
  timer->Start(1, [&] { ++first; });
  timer->Stop();
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(first, 0);
}

TEST_F(NetTest, TimerMayBeDestroyedByItsOwnCallback) {
  LoopClock clock(&loop_);
  std::unique_ptr<Timer> timer = clock.NewTimer();
  bool fired = false;
  timer->Start(0, [&] {
    fired = true;
    timer.reset();
  });
  ASSERT_TRUE(RunUntil([&] { return fired; }));
  EXPECT_EQ(timer, nullptr);
}

}  // namespace
}  // namespace mintgate::proxy::net
