#include "proxy/auth/htpasswd.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "proxy/auth/groups_file.h"

namespace mintgate::proxy::auth {
namespace {

// A line made by the real tool: `htpasswd -nb<flag> user password` ("user:hash").
std::string Htpasswd(const std::string& flag, const std::string& user,
                     const std::string& password) {
  const std::string command = "htpasswd -nb" + flag + " '" + user + "' '" + password + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) out += buf.data();
  const int status = ::pclose(pipe);
  EXPECT_EQ(status, 0) << "htpasswd (apache2-utils) is needed: " << out;
  return out.substr(0, out.find('\n'));
}

std::string Openssl(const std::string& flag, const std::string& password) {
  FILE* pipe = ::popen(("openssl passwd " + flag + " '" + password + "'").c_str(), "r");
  std::string out;
  std::array<char, 256> buf{};
  while (pipe != nullptr && std::fgets(buf.data(), buf.size(), pipe) != nullptr) out += buf.data();
  if (pipe != nullptr) ::pclose(pipe);
  return out.substr(0, out.find('\n'));
}

class HtpasswdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mintgate-htpasswd-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "users").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& text) {
    const std::string tmp = path_ + ".new";
    std::ofstream(tmp) << text;
    ::chmod(tmp.c_str(), 0600);
    std::filesystem::rename(tmp, path_);  // a new inode: seen as a change at once
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(HtpasswdTest, StrongSchemesFromTheRealTools) {
  Write(Htpasswd("B", "alice", "alice pw!") + "\n" + "bob:" + Openssl("-6", "bob-pw") + "\n" +
        "carol:" + Openssl("-5", "carol-pw") + "\n# a comment\n\n");
  HtpasswdFile file(path_, false);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  EXPECT_EQ(file.Verify("alice", "alice pw!"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("alice", "alice pw"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("bob", "bob-pw"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("bob", ""), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("carol", "carol-pw"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("dave", "x"), CheckResult::kUnknownUser);
  EXPECT_EQ(file.Verify("Alice", "alice pw!"), CheckResult::kUnknownUser);  // exact names
}

TEST_F(HtpasswdTest, WeakSchemesOnlyWhenAllowedAndPlainTextNever) {
  Write(Htpasswd("m", "md5", "pw-md5") + "\n" + Htpasswd("s", "sha", "pw-sha") + "\n" +
        "crypt1:" + Openssl("-1", "pw-crypt1") + "\nplain:pw-plain\n");
  HtpasswdFile strict(path_, false);
  std::vector<std::string> warnings;
  ASSERT_EQ(strict.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 4u);
  EXPECT_NE(warnings[0].find("line 1 (md5): Apache MD5"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[3].find("plain text is never accepted"), std::string::npos) << warnings[3];
  for (std::string warning : warnings) {
    EXPECT_EQ(warning.find("pw-"), std::string::npos) << "a warning shows a password: " << warning;
  }
  EXPECT_EQ(strict.Verify("md5", "pw-md5"), CheckResult::kRefusedScheme);
  EXPECT_EQ(strict.Verify("sha", "pw-sha"), CheckResult::kRefusedScheme);
  EXPECT_EQ(strict.Verify("crypt1", "pw-crypt1"), CheckResult::kRefusedScheme);
  EXPECT_EQ(strict.Verify("plain", "pw-plain"), CheckResult::kRefusedScheme);

  HtpasswdFile weak(path_, true);
  ASSERT_EQ(weak.Load(nullptr), "");
  EXPECT_EQ(weak.Verify("md5", "pw-md5"), CheckResult::kOk);  // Apache's $apr1$, computed here
  EXPECT_EQ(weak.Verify("md5", "pw-md6"), CheckResult::kWrongPassword);
  EXPECT_EQ(weak.Verify("sha", "pw-sha"), CheckResult::kOk);
  EXPECT_EQ(weak.Verify("sha", "pw-shb"), CheckResult::kWrongPassword);
  EXPECT_EQ(weak.Verify("crypt1", "pw-crypt1"), CheckResult::kOk);
  EXPECT_EQ(weak.Verify("plain", "pw-plain"), CheckResult::kRefusedScheme);
}

TEST_F(HtpasswdTest, ChangesAreReadAndABrokenFileKeepsTheLastGoodOne) {
  Write("alice:" + Openssl("-6", "one") + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_EQ(file.Verify("alice", "one"), CheckResult::kOk);
  Write("alice:" + Openssl("-6", "two") + "\nbob:" + Openssl("-6", "three") + "\n");
  // Checked at most once a second.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(file.Verify("alice", "two"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("bob", "three"), CheckResult::kOk);
  std::filesystem::remove(path_);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(file.Verify("alice", "two"), CheckResult::kOk);  // the last good contents
  EXPECT_NE(file.Load(nullptr).find("cannot read"), std::string::npos);
}

TEST_F(HtpasswdTest, MissingFilesAndReadableFilesAreReported) {
  HtpasswdFile missing((dir_ / "nope").string(), false);
  const std::string why = missing.Load(nullptr);
  EXPECT_NE(why.find("auth.htpasswd"), std::string::npos) << why;
  EXPECT_NE(why.find("nope"), std::string::npos) << why;
  EXPECT_EQ(missing.Verify("alice", "x"), CheckResult::kUnavailable);
  Write("alice:" + Openssl("-6", "one") + "\nno colon here\n");
  ::chmod(path_.c_str(), 0644);
  HtpasswdFile file(path_, false);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("chmod 600"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("line 2"), std::string::npos) << warnings[1];
}

TEST_F(HtpasswdTest, ConcurrentChecksWhileTheFileChanges) {
  Write("alice:" + Openssl("-5", "pw") + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (file.Verify("alice", "pw") != CheckResult::kOk) ++wrong;
      }
    });
  }
  for (int i = 0; i < 3; ++i) {
    Write("alice:" + Openssl("-5", "pw") + "\n# rewritten " + std::to_string(i) + "\n");
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(GroupsFile, ParsesMergesAndFollowsChanges) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("mintgate-groups-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "groups").string();
  std::ofstream(path) << "finance: alice, bob\n# comment\n  staff :alice,,carol  \n"
                      << "no colon\n: nobody\nfinance: dave, alice\n";
  GroupsFile file(path);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("line 4"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("line 5"), std::string::npos) << warnings[1];
  EXPECT_EQ(file.GroupsOf("alice"), (std::vector<std::string>{"finance", "staff"}));
  EXPECT_EQ(file.GroupsOf("dave"), std::vector<std::string>{"finance"});
  EXPECT_EQ(file.GroupsOf("carol"), std::vector<std::string>{"staff"});
  EXPECT_TRUE(file.GroupsOf("mallory").empty());
  std::ofstream(path + ".new") << "admins: mallory\n";
  std::filesystem::rename(path + ".new", path);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(file.GroupsOf("mallory"), std::vector<std::string>{"admins"});
  EXPECT_TRUE(file.GroupsOf("alice").empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mintgate::proxy::auth
