#include "proxy/auth/authenticator.h"

#include <crypt.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

namespace mintgate::proxy::auth {
namespace {

// What the loop would run: closures posted by the authenticator's threads.
class FakeLoop {
 public:
  Authenticator::Post post() {
    return [this](std::function<void()> fn) {
      std::lock_guard lock(mu_);
      posted_.push_back(std::move(fn));
      cv_.notify_all();
    };
  }
  // Runs posted closures until `done` holds (at most 10 s).
  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      std::vector<std::function<void()>> batch;
      {
        std::unique_lock lock(mu_);
        if (!cv_.wait_until(lock, deadline, [&] { return !posted_.empty(); })) return false;
        batch.swap(posted_);
      }
      for (auto& fn : batch) fn();
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> posted_;
};

std::string Hash(const std::string& password, const char* prefix) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn(prefix, 0, nullptr, 0, salt, sizeof salt), nullptr);
  crypt_data data{};
  const char* hashed = crypt_rn(password.c_str(), salt, &data, sizeof data);
  EXPECT_NE(hashed, nullptr);
  return hashed;
}

std::string Base64(const std::string& text) {
  static constexpr char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < text.size(); i += 3) {
    const unsigned v =
        (unsigned char)text[i] << 16 | (unsigned char)text[i + 1] << 8 | (unsigned char)text[i + 2];
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
  }
  if (i + 1 == text.size()) {
    const unsigned v = (unsigned char)text[i] << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == text.size()) {
    const unsigned v = (unsigned char)text[i] << 16 | (unsigned char)text[i + 1] << 8;
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mintgate-auth-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    htpasswd_ = (dir_ / "users").string();
    std::ofstream(htpasswd_) << "alice:" << Hash("alice pw", "$6$") << "\n"
                             << "bob:" << Hash("bob-pw", "$2b$") << "\n";
    ::chmod(htpasswd_.c_str(), 0600);
    groups_ = (dir_ / "groups").string();
    std::ofstream(groups_) << "finance: alice\nstaff: alice, bob\n";
    config_.schemes = {AuthScheme::kBasic};
    config_.unidentified = Unidentified::kChallenge;
    config_.htpasswd = htpasswd_;
    config_.groups_file = groups_;
    config_.static_users = {{{"10.9.0.0/24"}, "kiosk", 0}};
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Identify, waiting for the answer; *at_once says whether it came inside the call.
  AuthResult Identify(Authenticator& a, const std::string& client,
                      std::optional<std::string> header, bool* at_once = nullptr) {
    std::optional<AuthResult> result;
    bool inside = true;
    a.Identify(client, *rules::IpAddress::Parse(client), std::move(header), loop_.post(),
               [&](const AuthResult& r) { result = r; });
    inside = result.has_value();
    EXPECT_TRUE(loop_.RunUntil([&] { return result.has_value(); }));
    if (at_once) *at_once = inside;
    return result.value_or(AuthResult{});
  }

  std::filesystem::path dir_;
  std::string htpasswd_;
  std::string groups_;
  AuthConfig config_;
  FakeLoop loop_;
};

TEST_F(AuthenticatorTest, BasicVerifiesOnAThreadThenFromTheCache) {
  Authenticator a(config_, nullptr);
  std::vector<std::string> warnings;
  ASSERT_TRUE(a.Load(&warnings).empty());
  const std::string header = "Basic " + Base64("alice:alice pw");
  bool at_once = true;
  AuthResult r = Identify(a, "127.0.0.1", header, &at_once);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_FALSE(at_once);  // crypt ran on the authenticator's thread
  EXPECT_EQ(r.identity.user, "alice");
  EXPECT_EQ(r.identity.source, "basic");
  EXPECT_EQ(r.identity.groups, (std::vector<std::string>{"finance", "staff"}));
  r = Identify(a, "127.0.0.1", header, &at_once);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(at_once);  // the cached credential answers inside the call
  EXPECT_EQ(r.identity.user, "alice");
  // The scheme is case-insensitive; bcrypt works too.
  r = Identify(a, "127.0.0.1", "basic " + Base64("bob:bob-pw"));
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.identity.groups, std::vector<std::string>{"staff"});
  EXPECT_EQ((a.Counts()[{"basic", "ok"}]), 3u);
}

TEST_F(AuthenticatorTest, WrongPasswordsUnknownUsersAndGarbageFail) {
  Authenticator a(config_, nullptr);
  ASSERT_TRUE(a.Load(nullptr).empty());
  AuthResult wrong = Identify(a, "127.0.0.1", "Basic " + Base64("alice:nope"));
  EXPECT_EQ(wrong.status, AuthResult::Status::kFailed);
  AuthResult unknown = Identify(a, "127.0.0.1", "Basic " + Base64("mallory:x"));
  EXPECT_EQ(unknown.status, AuthResult::Status::kFailed);
  EXPECT_EQ(wrong.error, unknown.error);  // the answer does not tell which users exist
  for (const char* bad : {"Basic !!!!", "Basic " /*empty*/, "Basic YWxpY2U=" /*no colon*/,
                          "Basic Og==" /*":" empty user*/}) {
    EXPECT_EQ(Identify(a, "127.0.0.1", std::string(bad)).status, AuthResult::Status::kFailed)
        << bad;
  }
  AuthResult negotiate = Identify(a, "127.0.0.1", "Negotiate YIIB");
  EXPECT_EQ(negotiate.status, AuthResult::Status::kFailed);
  EXPECT_NE(negotiate.error.find("not offered"), std::string::npos) << negotiate.error;
  // A failure is never cached: the right password works right after.
  EXPECT_TRUE(Identify(a, "127.0.0.1", "Basic " + Base64("alice:alice pw")).ok());
}

TEST_F(AuthenticatorTest, AddressesAreStaticUsersThenPortalLogins) {
  auto logins = std::make_shared<LoginSessions>();
  Authenticator a(config_, logins);
  ASSERT_TRUE(a.Load(nullptr).empty());
  bool at_once = false;
  AuthResult r = Identify(a, "10.9.0.7", std::nullopt, &at_once);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(at_once);
  EXPECT_EQ(r.identity.user, "kiosk");
  EXPECT_EQ(r.scheme, "static");
  EXPECT_EQ(Identify(a, "10.9.1.7", std::nullopt).status, AuthResult::Status::kNoCredential);

  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  logins->Bind("10.9.1.7", "alice", now + 60'000);
  r = Identify(a, "10.9.1.7", std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.identity.user, "alice");
  EXPECT_EQ(r.identity.source, "login");
  EXPECT_EQ(r.identity.groups, (std::vector<std::string>{"finance", "staff"}));
  EXPECT_TRUE(logins->Unbind("10.9.1.7"));
  EXPECT_EQ(Identify(a, "10.9.1.7", std::nullopt).status, AuthResult::Status::kNoCredential);
  logins->Bind("10.9.1.8", "bob", now - 1);  // already expired
  EXPECT_EQ(Identify(a, "10.9.1.8", std::nullopt).status, AuthResult::Status::kNoCredential);
  EXPECT_EQ(logins->size(), 0u);
}

TEST_F(AuthenticatorTest, ChallengesInTheConfiguredOrder) {
  config_.schemes = {AuthScheme::kNegotiate, AuthScheme::kBasic};
  config_.realm = "Corp";
  Authenticator::Options options;
  options.threads = 0;
  Authenticator a(config_, nullptr, options);
  EXPECT_EQ(a.ChallengeHeaders(),
            "Proxy-Authenticate: Negotiate\r\n"
            "Proxy-Authenticate: Basic realm=\"Corp\", charset=\"UTF-8\"\r\n");
}

TEST_F(AuthenticatorTest, TooManyChecksQueuedAreBusy) {
  Authenticator::Options options;
  options.threads = 0;  // nothing runs the queue
  options.max_pending = 2;
  Authenticator a(config_, nullptr, options);
  ASSERT_TRUE(a.Load(nullptr).empty());
  int answered = 0;
  AuthResult last;
  for (int i = 0; i < 3; ++i) {
    a.Identify("127.0.0.1", *rules::IpAddress::Parse("127.0.0.1"),
               "Basic " + Base64("alice:try" + std::to_string(i)), loop_.post(),
               [&](const AuthResult& r) {
                 ++answered;
                 last = r;
               });
  }
  ASSERT_TRUE(loop_.RunUntil([&] { return answered == 1; }));
  EXPECT_EQ(last.status, AuthResult::Status::kBusy);
  EXPECT_EQ(a.pending(), 2u);
}

TEST_F(AuthenticatorTest, LoadReportsMissingFiles) {
  config_.htpasswd = (dir_ / "missing").string();
  Authenticator a(config_, nullptr);
  const std::vector<std::string> errors = a.Load(nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("missing"), std::string::npos) << errors[0];
}

TEST_F(AuthenticatorTest, PortalPasswordCheckDoesNotCache) {
  Authenticator a(config_, nullptr);
  ASSERT_TRUE(a.Load(nullptr).empty());
  std::optional<AuthResult> result;
  a.CheckPassword("alice", "alice pw", loop_.post(), [&](const AuthResult& r) { result = r; });
  EXPECT_FALSE(result.has_value());
  ASSERT_TRUE(loop_.RunUntil([&] { return result.has_value(); }));
  EXPECT_TRUE(result->ok());
  EXPECT_EQ(result->identity.source, "login");
  EXPECT_EQ(result->identity.groups, (std::vector<std::string>{"finance", "staff"}));
  result.reset();
  a.CheckPassword("alice", "wrong", loop_.post(), [&](const AuthResult& r) { result = r; });
  ASSERT_TRUE(loop_.RunUntil([&] { return result.has_value(); }));
  EXPECT_EQ(result->status, AuthResult::Status::kFailed);
}

TEST(LoginThrottle, BacksOffAfterFreeFailuresAndClearsOnSuccess) {
  LoginThrottle t;
  const std::int64_t t0 = 1'000'000;
  for (int i = 0; i < LoginThrottle::kFree - 1; ++i) t.Failed("client 10.0.0.1", t0 + i);
  EXPECT_EQ(t.WaitMs("client 10.0.0.1", t0 + 10), 0);
  t.Failed("client 10.0.0.1", t0 + 10);  // the kFree-th
  EXPECT_EQ(t.WaitMs("client 10.0.0.1", t0 + 10), LoginThrottle::kFirstWaitMs);
  t.Failed("client 10.0.0.1", t0 + 20);  // doubles
  EXPECT_EQ(t.WaitMs("client 10.0.0.1", t0 + 20), 2 * LoginThrottle::kFirstWaitMs);
  for (int i = 0; i < 20; ++i) t.Failed("client 10.0.0.1", t0 + 30);
  EXPECT_EQ(t.WaitMs("client 10.0.0.1", t0 + 30), LoginThrottle::kMaxWaitMs);
  EXPECT_EQ(t.WaitMs("client 10.0.0.2", t0 + 30), 0);  // per key
  t.Succeeded("client 10.0.0.1");
  EXPECT_EQ(t.WaitMs("client 10.0.0.1", t0 + 40), 0);
}

}  // namespace
}  // namespace mintgate::proxy::auth
