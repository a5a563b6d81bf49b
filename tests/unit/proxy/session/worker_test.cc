// Worker: sessions outlive nothing they own. A failed uv_accept used to free a Session whose
// embedded libuv handles were still closing (their close callbacks then wrote into freed
// memory: ASan reports it); now the session is registered first and reaped like any other.
#include "proxy/session/worker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>

#include "proxy/runtime/runtime.h"

namespace mintgate::proxy {

class WorkerTest : public ::testing::Test {
 protected:
  static void Connection(Worker& worker, uv_stream_t* server) { worker.OnConnection(server); }
};

namespace {

TEST_F(WorkerTest, FailedAcceptLeavesNothingClosingInFreedMemory) {
  auto runtime = std::make_shared<Runtime>();
  runtime->config.server.listen = {HostPort{"127.0.0.1", 0}};
  Worker worker(0, runtime);
  ASSERT_EQ(worker.Start(), "");
  std::promise<void> done;
  worker.Post([&] {
    auto* server = new uv_tcp_t;
    uv_tcp_init(worker.loop(), server);
    sockaddr_in any{};
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_tcp_bind(server, reinterpret_cast<sockaddr*>(&any), 0);
    uv_listen(reinterpret_cast<uv_stream_t*>(server), 8, [](uv_stream_t*, int) {});
    // Nothing is pending on this listener: every uv_accept fails (EAGAIN).
    for (int i = 0; i < 3; ++i) Connection(worker, reinterpret_cast<uv_stream_t*>(server));
    uv_close(reinterpret_cast<uv_handle_t*>(server),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    done.set_value();
  });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  // Stopping runs the loop through the close callbacks and the reaping of those sessions; a
  // session never reaped would hold the stop until the drain time.
  const auto start = std::chrono::steady_clock::now();
  worker.Stop(std::chrono::milliseconds(20000));
  worker.Join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
}

}  // namespace
}  // namespace mintgate::proxy
