// LDAP against a real slapd started on loopback by tests/e2e/slapd.sh (slapd from
// scripts/deps.sh --test; a missing one fails). Negotiate has negotiate_test.cc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "proxy/auth/ldap_directory.h"

namespace mintgate::proxy::auth {
namespace {

const std::string kSource = std::filesystem::path(__FILE__)
                                .parent_path()
                                .parent_path()
                                .parent_path()
                                .parent_path()
                                .parent_path()
                                .string();

// Runs a harness (`start DIR`) and returns its KEY=value lines.
std::map<std::string, std::string> Start(const std::string& script, const std::string& dir) {
  std::map<std::string, std::string> env;
  FILE* pipe = ::popen(("bash " + kSource + "/tests/e2e/" + script + " start " + dir).c_str(), "r");
  if (pipe == nullptr) return env;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) {
    std::string line = buf.data();
    if (!line.empty() && line.back() == '\n') line.pop_back();
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  EXPECT_EQ(::pclose(pipe), 0) << script << " failed: is its server installed?";
  return env;
}

void Stop(const std::string& script, const std::string& dir) {
  std::system(("bash " + kSource + "/tests/e2e/" + script + " stop " + dir).c_str());
}

class LdapTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           ("mintgate-ldap-" + std::to_string(::getpid())));
    env_ = new std::map<std::string, std::string>(Start("slapd.sh", *dir_));
  }
  static void TearDownTestSuite() {
    Stop("slapd.sh", *dir_);
    std::filesystem::remove_all(*dir_);
    delete env_;
    delete dir_;
  }
  static LdapConfig Config() {
    LdapConfig c;
    c.url = (*env_)["LDAPS_URL"];
    c.user_dn = "uid={user},ou=people," + (*env_)["LDAP_BASE"];
    c.group_base = "ou=groups," + (*env_)["LDAP_BASE"];
    c.ca_file = (*env_)["LDAP_CA"];
    c.timeout_ms = 3000;
    return c;
  }
  static std::string* dir_;
  static std::map<std::string, std::string>* env_;
};
std::string* LdapTest::dir_ = nullptr;
std::map<std::string, std::string>* LdapTest::env_ = nullptr;

TEST_F(LdapTest, BindsAsTheUserOverLdapsAndStartTls) {
  LdapDirectory ldaps(Config());
  ASSERT_EQ(ldaps.Check(), "");
  LdapBind b = ldaps.Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, "uid=alice,ou=people," + (*env_)["LDAP_BASE"]);
  EXPECT_EQ(ldaps.Bind("alice", "wrong").result, CheckResult::kWrongPassword);
  EXPECT_EQ(ldaps.Bind("nobody", "x").result, CheckResult::kWrongPassword);  // template DN
  EXPECT_EQ(ldaps.Bind("alice", "").result, CheckResult::kWrongPassword);    // never asked
  EXPECT_EQ(ldaps.Bind("carol smith", "carol-ldap-pw").result, CheckResult::kOk);

  LdapConfig starttls = Config();
  starttls.url = (*env_)["LDAP_URL"];
  starttls.starttls = true;
  EXPECT_EQ(LdapDirectory(starttls).Bind("bob", "bob-ldap-pw").result, CheckResult::kOk);
}

TEST_F(LdapTest, AnUntrustedServerIsUnavailableNeverBound) {
  LdapConfig c = Config();
  c.ca_file = "";  // the system store does not know the test CA
  LdapBind b = LdapDirectory(c).Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kUnavailable);
  EXPECT_FALSE(b.error.empty());
}

TEST_F(LdapTest, SearchModeEscapesTheName) {
  LdapConfig c = Config();
  c.user_dn = "";
  c.search_base = "ou=people," + (*env_)["LDAP_BASE"];
  c.search_filter = "(uid={user})";
  LdapDirectory anonymous(c);
  ASSERT_EQ(anonymous.Check(), "");
  EXPECT_EQ(anonymous.Bind("bob", "bob-ldap-pw").result, CheckResult::kOk);
  EXPECT_EQ(anonymous.Bind("b*", "bob-ldap-pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(anonymous.Bind("*", "bob-ldap-pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(anonymous.Bind("bob)(uid=*", "bob-ldap-pw").result, CheckResult::kUnknownUser);
  c.bind_dn = (*env_)["LDAP_ROOT_DN"];
  c.bind_password_file = (*env_)["LDAP_ROOT_PW_FILE"];
  LdapDirectory bound(c);
  ASSERT_EQ(bound.Check(), "");
  EXPECT_EQ(bound.Bind("alice", "alice-ldap-pw").result, CheckResult::kOk);
}

TEST_F(LdapTest, TemplateModeEscapesTheName) {
  LdapDirectory ldap(Config());
  // "bob,ou=people" would otherwise make the DN uid=bob,ou=people,ou=people,... or worse.
  EXPECT_NE(ldap.Bind("bob,ou=people", "bob-ldap-pw").result, CheckResult::kOk);
  EXPECT_NE(ldap.Bind("bob\n", "bob-ldap-pw").result, CheckResult::kOk);
}

TEST_F(LdapTest, GroupsOfAUser) {
  LdapDirectory ldap(Config());
  std::string error;
  EXPECT_EQ(ldap.Groups("alice", "", &error), (std::vector<std::string>{"finance", "staff"}))
      << error;
  EXPECT_EQ(ldap.Groups("bob", "", &error), std::vector<std::string>{"staff"}) << error;
  EXPECT_EQ(ldap.Groups("nobody", "", &error), std::vector<std::string>{}) << error;
}

TEST_F(LdapTest, ConcurrentBinds) {
  LdapDirectory ldap(Config());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        ok += ldap.Bind("alice", "alice-ldap-pw").result == CheckResult::kOk ? 1 : 0;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 12);
}

TEST(LdapCheck, NamesTheKey) {
  LdapConfig c;
  c.url = "ldap://dc.example.com";
  c.user_dn = "uid={user}";
  EXPECT_NE(LdapDirectory(c).Check().find("starttls"), std::string::npos);
  c.url = "ldaps://dc.example.com";
  c.user_dn = "uid=x";
  EXPECT_NE(LdapDirectory(c).Check().find("{user}"), std::string::npos);
  c.user_dn = "uid={user}";
  c.ca_file = "/nonexistent/ca.pem";
  EXPECT_NE(LdapDirectory(c).Check().find("auth.ldap.ca_file"), std::string::npos);
}

}  // namespace
}  // namespace mintgate::proxy::auth
