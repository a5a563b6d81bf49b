#include "proxy/dns/resolver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace mintgate::proxy {
namespace {

using namespace std::chrono_literals;

sockaddr_in Loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// Binds a socket of `type` to 127.0.0.1:0 and returns it with the port the kernel chose.
int BindLoopback(int type, std::uint16_t* port) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Whether a socket of `type` can bind 127.0.0.1:`port`; with `connect_instead`, whether
// something accepts a connection there.
bool Try(int type, std::uint16_t port, bool connect_instead = false) {
  const int fd = socket(AF_INET, type, 0);
  if (fd < 0) return false;
  const sockaddr_in addr = Loopback(port);
  const auto* a = reinterpret_cast<const sockaddr*>(&addr);
  const bool ok = (connect_instead ? connect(fd, a, sizeof addr) : bind(fd, a, sizeof addr)) == 0;
  close(fd);
  return ok;
}

bool TcpConnects(std::uint16_t port) { return Try(SOCK_STREAM, port, true); }

// A UDP and TCP port free a moment ago, for dnsmasq, chosen below the kernel's ephemeral
// range: a port the kernel picked (bind to port 0) goes back into that range when released,
// where a test running in parallel could be given it for a client socket before dnsmasq
// binds it. 0 if none is found.
std::uint16_t FreeFixedPort() {
  int low = 32768;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d", &low) != 1) low = 32768;
    std::fclose(f);
  }
  const int first = low > 11000 ? 10000 : low;
  const int last = low > 11000 ? low : 65536;
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(first, last - 1);
  for (int i = 0; i < 1000; ++i) {
    const auto port = static_cast<std::uint16_t>(pick(rng));
    if (Try(SOCK_STREAM, port) && Try(SOCK_DGRAM, port)) return port;
  }
  return 0;
}

class ResolverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::uint16_t port = FreeFixedPort();
    ASSERT_NE(port, 0) << "no free port below the ephemeral range";
    port_ = port;
    pid_file_ = "/tmp/mintgate-resolver-test-" + std::to_string(getpid()) + ".pid";

    // Only local answers: the test must never forward a query anywhere.
    std::vector<std::string> args = {
        "/usr/sbin/dnsmasq",
        "-k",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--port=" + std::to_string(port),
        "--address=/v4.lab.test/127.0.0.1",
        "--address=/v6.lab.test/::1",
        "--host-record=both.lab.test,127.0.0.2,::2",
        "--local=/lab.test/",
        "--local-ttl=1",
        "--pid-file=" + pid_file_,
        "--user=" + std::string(getuid() == 0 ? "root" : ""),
    };
    if (getuid() != 0) args.pop_back();
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(rc, 0) << "cannot start dnsmasq";
    dnsmasq_pid_ = pid;

    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!TcpConnects(port_)) {
      int status = 0;
      ASSERT_EQ(waitpid(dnsmasq_pid_, &status, WNOHANG), 0) << "dnsmasq exited early";
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "dnsmasq did not start";
      std::this_thread::sleep_for(20ms);
    }
  }

  static void TearDownTestSuite() {
    if (dnsmasq_pid_ > 0) {
      kill(dnsmasq_pid_, SIGTERM);
      int status = 0;
      waitpid(dnsmasq_pid_, &status, 0);
      dnsmasq_pid_ = -1;
    }
    unlink(pid_file_.c_str());
  }

  void SetUp() override {
    ASSERT_GT(dnsmasq_pid_, 0) << "dnsmasq is not running";
    ASSERT_EQ(uv_loop_init(&loop_), 0);
  }

  void TearDown() override {
    resolver_.reset();
    // Every handle must close: uv_loop_close fails with UV_EBUSY otherwise.
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  Resolver::Options LabOptions() {
    Resolver::Options options;
    options.servers = {{"127.0.0.1", port_}};
    options.timeout = 2000ms;
    return options;
  }

  Resolver& MakeResolver(Resolver::Options options) {
    resolver_ = std::make_unique<Resolver>(&loop_, std::move(options));
    return *resolver_;
  }

  // Runs the loop until `done` or `limit` has passed; a safety timer keeps a test from
  // hanging (and keeps UV_RUN_ONCE from spinning when nothing else is active).
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    uv_timer_t safety;
    uv_timer_init(&loop_, &safety);
    bool expired = false;
    safety.data = &expired;
    uv_timer_start(
        &safety, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; },
        static_cast<std::uint64_t>(limit.count()), 0);
    while (!done() && !expired) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&safety), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    return done();
  }

  void Sleep(std::chrono::milliseconds duration) {
    RunUntil([] { return false; }, duration);
  }

  // Resolves and waits for the answer, checking it is not delivered inside Resolve().
  ResolveResult ResolveAndWait(const std::string& host) {
    std::optional<ResolveResult> result;
    bool in_resolve = true;
    bool called_inside = false;
    resolver_->Resolve(host, [&](const ResolveResult& r) {
      called_inside = in_resolve;
      result = r;
    });
    in_resolve = false;
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); })) << "no answer for " << host;
    EXPECT_FALSE(called_inside) << "callback ran inside Resolve for " << host;
    return result.value_or(ResolveResult{});
  }

  static std::vector<std::string> Strings(const ResolveResult& r) {
    std::vector<std::string> out;
    for (const auto& a : r.addresses) out.push_back(a.ToString());
    return out;
  }

  static inline pid_t dnsmasq_pid_ = -1;
  static inline std::uint16_t port_ = 0;
  static inline std::string pid_file_;
  uv_loop_t loop_{};
  std::unique_ptr<Resolver> resolver_;
};

TEST_F(ResolverTest, ResolvesIpv4Name) {
  MakeResolver(LabOptions());
  ResolveResult r = ResolveAndWait("v4.lab.test");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_FALSE(r.from_cache);
  EXPECT_EQ(Strings(r), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(r.addresses[0].family, AF_INET);
  EXPECT_EQ(resolver_->stats().queries, 1u);
}

TEST_F(ResolverTest, ResolvesIpv6OnlyName) {
  MakeResolver(LabOptions());
  ResolveResult r = ResolveAndWait("v6.lab.test");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(Strings(r), std::vector<std::string>{"::1"});
  EXPECT_EQ(r.addresses[0].family, AF_INET6);
}

TEST_F(ResolverTest, BothFamiliesIpv4First) {
  MakeResolver(LabOptions());
  ResolveResult r = ResolveAndWait("Both.Lab.Test");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(Strings(r), (std::vector<std::string>{"127.0.0.2", "::2"}));
}

TEST_F(ResolverTest, NxdomainNamesTheHostAndIsCachedNegatively) {
  MakeResolver(LabOptions());
  ResolveResult r = ResolveAndWait("nx.lab.test");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "DNS: no such host nx.lab.test");
  EXPECT_TRUE(r.addresses.empty());

  ResolveResult again = ResolveAndWait("nx.lab.test");
  EXPECT_FALSE(again.ok);
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(again.error, "DNS: no such host nx.lab.test");
  EXPECT_EQ(resolver_->stats().queries, 1u);
  EXPECT_EQ(resolver_->stats().cache_hits, 1u);
  EXPECT_GE(resolver_->stats().failures, 1u);
}

TEST_F(ResolverTest, SecondLookupIsACacheHitCaseInsensitively) {
  MakeResolver(LabOptions());
  ASSERT_TRUE(ResolveAndWait("v4.lab.test").ok);
  ResolveResult r = ResolveAndWait("V4.LAB.test");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.from_cache);
  EXPECT_EQ(Strings(r), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(resolver_->stats().queries, 1u);
  EXPECT_EQ(resolver_->stats().cache_hits, 1u);
}

TEST_F(ResolverTest, EntryExpiresAfterItsTtl) {
  MakeResolver(LabOptions());  // dnsmasq answers with TTL 1 s (--local-ttl=1)
  ASSERT_TRUE(ResolveAndWait("both.lab.test").ok);
  Sleep(1300ms);
  ResolveResult r = ResolveAndWait("both.lab.test");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_FALSE(r.from_cache);
  EXPECT_EQ(resolver_->stats().queries, 2u);
  EXPECT_EQ(resolver_->stats().cache_hits, 0u);
}

TEST_F(ResolverTest, ConcurrentLookupsShareOneQuery) {
  MakeResolver(LabOptions());
  int answers = 0;
  for (int i = 0; i < 3; ++i) {
    resolver_->Resolve("v4.lab.test", [&](const ResolveResult& r) {
      EXPECT_TRUE(r.ok) << r.error;
      EXPECT_EQ(Strings(r), std::vector<std::string>{"127.0.0.1"});
      ++answers;
    });
  }
  ASSERT_TRUE(RunUntil([&] { return answers == 3; }));
  EXPECT_EQ(resolver_->stats().queries, 1u);
}

TEST_F(ResolverTest, IpLiteralsNeedNoQuery) {
  MakeResolver(LabOptions());
  ResolveResult v4 = ResolveAndWait("192.0.2.7");
  ASSERT_TRUE(v4.ok);
  EXPECT_EQ(Strings(v4), std::vector<std::string>{"192.0.2.7"});
  EXPECT_EQ(v4.addresses[0].family, AF_INET);

  ResolveResult v6 = ResolveAndWait("2001:db8::1");
  ASSERT_TRUE(v6.ok);
  EXPECT_EQ(Strings(v6), std::vector<std::string>{"2001:db8::1"});
  EXPECT_EQ(v6.addresses[0].family, AF_INET6);

  ResolveResult bracketed = ResolveAndWait("[::1]");
  ASSERT_TRUE(bracketed.ok);
  EXPECT_EQ(Strings(bracketed), std::vector<std::string>{"::1"});

  EXPECT_EQ(resolver_->stats().queries, 0u);
}

TEST_F(ResolverTest, RejectsInvalidHostNames) {
  MakeResolver(LabOptions());
  for (const std::string& host :
       {std::string(), std::string(254, 'a'), std::string("bad host"), std::string("a/b"),
        std::string("[v4.lab.test]"), std::string("[127.0.0.1]")}) {
    ResolveResult r = ResolveAndWait(host);
    EXPECT_FALSE(r.ok) << host;
    EXPECT_EQ(r.error.rfind("DNS: invalid host", 0), 0u) << host << ": " << r.error;
  }
  EXPECT_EQ(resolver_->stats().queries, 0u);
}

// A numeric spelling is its address, never a name for DNS: "127.0.0.01" once passed as a name
// and reached 127.0.0.1 through the resolver. Numeric hosts that are no address are refused.
TEST_F(ResolverTest, NumericSpellingsNeverBecomeQueries) {
  MakeResolver(LabOptions());
  for (const char* spelling : {"127.0.0.01", "0177.1", "2130706433", "[::ffff:127.0.0.1]"}) {
    ResolveResult r = ResolveAndWait(spelling);
    ASSERT_TRUE(r.ok) << spelling << ": " << r.error;
    EXPECT_EQ(Strings(r), std::vector<std::string>{"127.0.0.1"}) << spelling;
    EXPECT_EQ(r.addresses[0].family, AF_INET) << spelling;
  }
  for (const char* bad : {"1.2.3.4.5", "999.0.0.1", "v4.0x1"}) {
    ResolveResult r = ResolveAndWait(bad);
    EXPECT_FALSE(r.ok) << bad;
  }
  EXPECT_EQ(resolver_->stats().queries, 0u);
}

TEST_F(ResolverTest, TimesOutWhenTheServerNeverAnswers) {
  std::uint16_t silent_port = 0;
  int silent = BindLoopback(SOCK_DGRAM, &silent_port);
  ASSERT_GE(silent, 0);
  Resolver::Options options;
  options.servers = {{"127.0.0.1", silent_port}};
  options.timeout = 300ms;
  MakeResolver(options);

  const auto start = std::chrono::steady_clock::now();
  ResolveResult r = ResolveAndWait("slow.example");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "DNS: timed out resolving slow.example");
  EXPECT_GE(elapsed, 250ms);
  // The configured 300 ms ended it, not the 5 s default (a loose bound: a loaded or
  // sanitized build may be slow, but never by seconds).
  EXPECT_LT(elapsed, Resolver::Options{}.timeout);
  EXPECT_EQ(resolver_->stats().timeouts, 1u);
  resolver_.reset();  // with the c-ares query still pending
  close(silent);
}

TEST_F(ResolverTest, CancelPreventsTheCallback) {
  MakeResolver(LabOptions());
  bool cancelled_called = false;
  bool other_called = false;
  const auto id =
      resolver_->Resolve("both.lab.test", [&](const ResolveResult&) { cancelled_called = true; });
  resolver_->Resolve("both.lab.test", [&](const ResolveResult& r) {
    EXPECT_TRUE(r.ok) << r.error;
    other_called = true;
  });
  resolver_->Cancel(id);
  const auto literal =
      resolver_->Resolve("127.0.0.1", [&](const ResolveResult&) { cancelled_called = true; });
  resolver_->Cancel(literal);
  ASSERT_TRUE(RunUntil([&] { return other_called; }));
  Sleep(50ms);
  EXPECT_FALSE(cancelled_called);
  resolver_->Cancel(id);  // already finished: a no-op
  resolver_->Cancel(12345);
}

TEST_F(ResolverTest, CallbacksNeverRunInsideResolve) {
  MakeResolver(LabOptions());
  ASSERT_TRUE(ResolveAndWait("v4.lab.test").ok);  // now cached
  bool in_resolve = false;
  int answers = 0;
  auto check = [&](const ResolveResult&) {
    EXPECT_FALSE(in_resolve);
    ++answers;
  };
  for (const char* host : {"v4.lab.test", "127.0.0.1", "[::1]", "bad host!", "nx.lab.test"}) {
    in_resolve = true;
    resolver_->Resolve(host, check);
    in_resolve = false;
  }
  ASSERT_TRUE(RunUntil([&] { return answers == 5; }));
}

TEST_F(ResolverTest, CallbackMayStartAnotherLookup) {
  MakeResolver(LabOptions());
  std::optional<ResolveResult> second;
  resolver_->Resolve("127.0.0.1", [&](const ResolveResult&) {
    resolver_->Resolve("v6.lab.test", [&](const ResolveResult& r) { second = r; });
  });
  ASSERT_TRUE(RunUntil([&] { return second.has_value(); }));
  EXPECT_TRUE(second->ok) << second->error;
}

TEST_F(ResolverTest, CallbackMayDestroyTheResolver) {
  MakeResolver(LabOptions());
  int answers = 0;
  resolver_->Resolve("127.0.0.1", [&](const ResolveResult&) {
    ++answers;
    resolver_.reset();
  });
  resolver_->Resolve("127.0.0.2", [&](const ResolveResult&) { ++answers; });
  RunUntil([&] { return resolver_ == nullptr; });
  Sleep(20ms);
  EXPECT_EQ(answers, 1);
}

TEST_F(ResolverTest, DestroyingWithPendingLookupsIsSafe) {
  MakeResolver(LabOptions());
  bool called = false;
  resolver_->Resolve("both.lab.test", [&](const ResolveResult&) { called = true; });
  resolver_->Resolve("v4.lab.test", [&](const ResolveResult&) { called = true; });
  resolver_->Resolve("::1", [&](const ResolveResult&) { called = true; });
  resolver_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
}

TEST_F(ResolverTest, DestroyingWhileWaitingForAServerIsSafe) {
  std::uint16_t silent_port = 0;
  int silent = BindLoopback(SOCK_DGRAM, &silent_port);
  ASSERT_GE(silent, 0);
  Resolver::Options options;
  options.servers = {{"127.0.0.1", silent_port}};
  MakeResolver(options);
  bool called = false;
  resolver_->Resolve("slow.example", [&](const ResolveResult&) { called = true; });
  resolver_->Resolve("slow.example", [&](const ResolveResult&) { called = true; });
  Sleep(50ms);  // the queries are on the wire, c-ares' sockets polled
  resolver_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(called);
  close(silent);
}

TEST_F(ResolverTest, RejectsServerThatIsNotAnIpAddress) {
  Resolver::Options options;
  options.servers = {{"dns.example", 53}};
  EXPECT_THROW(std::make_unique<Resolver>(&loop_, options), std::runtime_error);
}

TEST_F(ResolverTest, UsesSystemConfigurationWithoutServers) {
  // No query: resolv.conf may point nowhere here; only construction and literals are checked.
  MakeResolver(Resolver::Options{});
  ResolveResult r = ResolveAndWait("[2001:db8::5]");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(Strings(r), std::vector<std::string>{"2001:db8::5"});
}

}  // namespace
}  // namespace mintgate::proxy
