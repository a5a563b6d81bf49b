#include "proxy/auth/htpasswd.h"

#include <crypt.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "proxy/auth/watched_file.h"

namespace mintgate::proxy::auth {
namespace {

using namespace std::chrono_literals;

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The first line a command prints; the test fails when the command does.
std::string FirstLine(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return "";
  }
  std::string out;
  std::array<char, 512> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) out += buffer.data();
  EXPECT_EQ(::pclose(pipe), 0) << command << " failed (apache2-utils and openssl are needed)";
  return out.substr(0, out.find('\n'));
}

// "user:hash" from the real tool: `htpasswd -nb<flag> user password`.
std::string Htpasswd(const std::string& flag, const std::string& user,
                     const std::string& password) {
  const std::string line =
      FirstLine("htpasswd -nb" + flag + " " + ShellQuote(user) + " " + ShellQuote(password));
  EXPECT_EQ(line.substr(0, user.size() + 1), user + ":") << line;
  return line;
}

// `openssl passwd <flag> password`: $1$, $5$ and $6$ hashes.
std::string Openssl(const std::string& flag, const std::string& password) {
  return FirstLine("openssl passwd " + flag + " " + ShellQuote(password));
}

// A hash from libcrypt itself, with a fresh salt ("$6$", "$2b$", "$y$", ...; 0 = its default
// cost).
std::string Libcrypt(const char* prefix, const std::string& password, unsigned long cost = 0) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn(prefix, cost, nullptr, 0, salt, sizeof salt) == nullptr) {
    ADD_FAILURE() << "libcrypt has no " << prefix;
    return "";
  }
  crypt_data data{};
  const char* hash = crypt_rn(password.c_str(), salt, &data, sizeof data);
  EXPECT_TRUE(hash != nullptr && hash[0] != '*') << prefix;
  return hash != nullptr ? hash : "";
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class HtpasswdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "mintgate-htpasswd-XXXXXX");
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "users").string();
  }
  void TearDown() override {
    SetWatchedFileIntervalForTesting(kWatchedFileInterval);
    std::filesystem::remove_all(dir_);
  }

  // Replaces the file as editors and htpasswd do (a new file renamed over it). Each version
  // gets its own modification time, so a change is seen whatever the clock's granularity.
  void Write(const std::string& text, mode_t mode = 0600) {
    static int version = 0;
    const std::string tmp = path_ + ".new";
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << text;
    ASSERT_EQ(::chmod(tmp.c_str(), mode), 0);
    const timespec times[2] = {{1'600'000'000 + ++version, 0}, {1'600'000'000 + version, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, tmp.c_str(), times, 0), 0);
    std::filesystem::rename(tmp, path_);
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST(HtpasswdToStringTest, NamesEveryResult) {
  EXPECT_STREQ(ToString(CheckResult::kOk), "ok");
  EXPECT_STREQ(ToString(CheckResult::kUnknownUser), "unknown_user");
  EXPECT_STREQ(ToString(CheckResult::kWrongPassword), "wrong_password");
  EXPECT_STREQ(ToString(CheckResult::kRefusedScheme), "refused_scheme");
  EXPECT_STREQ(ToString(CheckResult::kUnavailable), "unavailable");
}

TEST_F(HtpasswdTest, Bcrypt) {
  Write(Htpasswd("B", "alice", "alice pw!") + "\n" +         // $2y$
        "bob:" + Libcrypt("$2b$", "bob pw", 4) + "\n" +      //
        "carol:" + Libcrypt("$2a$", "carol pw", 4) + "\n");  //
  HtpasswdFile file(path_, false);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  EXPECT_EQ(file.Verify("alice", "alice pw!"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("alice", "alice pw"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("alice", ""), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("bob", "bob pw"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("bob", "carol pw"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("carol", "carol pw"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("carol", "bob pw"), CheckResult::kWrongPassword);
}

TEST_F(HtpasswdTest, ShaCrypt) {
  Write("s512:" + Openssl("-6", "pw 512") + "\n" +              //
        "s256:" + Openssl("-5", "pw 256") + "\n" +              //
        "r512:" + Libcrypt("$6$", "rounds 512", 1000) + "\n" +  // $6$rounds=1000$
        "r256:" + Libcrypt("$5$", "rounds 256", 1000) + "\n");  // $5$rounds=1000$
  HtpasswdFile file(path_, false);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  EXPECT_EQ(file.Verify("s512", "pw 512"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("s512", "pw 256"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("s256", "pw 256"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("s256", "pw 512"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("r512", "rounds 512"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("r512", "rounds 51"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("r256", "rounds 256"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("r256", "rounds 2566"), CheckResult::kWrongPassword);
}

TEST_F(HtpasswdTest, APasswordMayHoldAnythingButNul) {
  const std::string odd = "p:w \"d\" \xE2\x82\xAC 'q' \\ $x";
  Write(Htpasswd("B", "odd", odd) + "\n" + Htpasswd("B", "empty", "") + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_EQ(file.Verify("odd", odd), CheckResult::kOk);
  EXPECT_EQ(file.Verify("odd", "p"), CheckResult::kWrongPassword);  // not cut at the ':'
  EXPECT_EQ(file.Verify("empty", ""), CheckResult::kOk);
  EXPECT_EQ(file.Verify("empty", " "), CheckResult::kWrongPassword);
  // crypt(3) stops at a NUL: what follows it must not be ignored.
  EXPECT_EQ(file.Verify("odd", odd + std::string("\0tail", 5)), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("empty", std::string("\0", 1)), CheckResult::kWrongPassword);
}

TEST_F(HtpasswdTest, WeakSchemesAreRefusedByDefault) {
  Write(Htpasswd("m", "apr", "pw-apr") + "\n" +    // $apr1$
        Htpasswd("s", "sha", "pw-sha") + "\n" +    // {SHA}
        Htpasswd("d", "des", "pw-des") + "\n" +    // DES crypt
        "md5:" + Openssl("-1", "pw-md5") + "\n");  // $1$
  HtpasswdFile file(path_, false);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 4u);
  const char* names[] = {"line 1 (apr): Apache MD5 ($apr1$)", "line 2 (sha): unsalted SHA-1",
                         "line 3 (des): DES crypt", "line 4 (md5): MD5-crypt ($1$)"};
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(Contains(warnings[i], names[i])) << warnings[i];
    EXPECT_TRUE(Contains(warnings[i], "refused unless auth.allow_weak_hashes")) << warnings[i];
    EXPECT_TRUE(Contains(warnings[i], "auth.htpasswd \"" + path_ + "\"")) << warnings[i];
    EXPECT_FALSE(Contains(warnings[i], "pw-")) << warnings[i];
  }
  EXPECT_EQ(file.Verify("apr", "pw-apr"), CheckResult::kRefusedScheme);
  EXPECT_EQ(file.Verify("sha", "pw-sha"), CheckResult::kRefusedScheme);
  EXPECT_EQ(file.Verify("des", "pw-des"), CheckResult::kRefusedScheme);
  EXPECT_EQ(file.Verify("md5", "pw-md5"), CheckResult::kRefusedScheme);
  EXPECT_EQ(file.Verify("md5", "wrong"), CheckResult::kRefusedScheme);
}

TEST_F(HtpasswdTest, WeakSchemesWhenAllowed) {
  Write(Htpasswd("m", "apr", "pw-apr") + "\n" + Htpasswd("s", "sha", "pw-sha") + "\n" +
        Htpasswd("d", "des", "pw-des") + "\n" + "md5:" + Openssl("-1", "pw-md5") + "\n");
  HtpasswdFile file(path_, true);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 4u);  // still weak, and said so
  EXPECT_TRUE(Contains(warnings[0], "accepted as auth.allow_weak_hashes = true")) << warnings[0];
  EXPECT_EQ(file.Verify("apr", "pw-apr"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("apr", "pw-apR"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("sha", "pw-sha"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("sha", "pw-shaa"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("des", "pw-des"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("des", "pw-dez"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("md5", "pw-md5"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("md5", "pw-md"), CheckResult::kWrongPassword);
}

// $apr1$ is computed here (libcrypt has no $apr1$): against htpasswd -m for passwords around
// MD5-crypt's 16-byte steps, with an empty one and odd characters.
TEST_F(HtpasswdTest, Apr1MatchesHtpasswd) {
  const std::vector<std::string> passwords = {"",
                                              "a",
                                              "seven77",
                                              "exactly8",
                                              "fifteen chars!!",
                                              "sixteen  chars!!",
                                              "seventeen chars!!",
                                              "a much longer password, thirty-three+ bytes",
                                              "\xC3\xA9t\xC3\xA9 : '\"$apr1$"};
  std::string text;
  for (std::size_t i = 0; i < passwords.size(); ++i) {
    text += Htpasswd("m", "u" + std::to_string(i), passwords[i]) + "\n";
  }
  Write(text);
  HtpasswdFile file(path_, true);
  ASSERT_EQ(file.Load(nullptr), "");
  for (std::size_t i = 0; i < passwords.size(); ++i) {
    const std::string user = "u" + std::to_string(i);
    EXPECT_EQ(file.Verify(user, passwords[i]), CheckResult::kOk) << user;
    EXPECT_EQ(file.Verify(user, passwords[i] + "x"), CheckResult::kWrongPassword) << user;
  }
}

TEST_F(HtpasswdTest, PlainTextIsNeverAccepted) {
  Write(Htpasswd("p", "plain", "pw-plain") + "\nempty:\n");
  for (bool allow_weak : {false, true}) {
    HtpasswdFile file(path_, allow_weak);
    std::vector<std::string> warnings;
    ASSERT_EQ(file.Load(&warnings), "");
    ASSERT_EQ(warnings.size(), 2u);
    EXPECT_TRUE(Contains(warnings[0], "line 1 (plain): not a password hash")) << warnings[0];
    EXPECT_FALSE(Contains(warnings[0], "pw-plain")) << warnings[0];
    EXPECT_TRUE(Contains(warnings[1], "line 2 (empty): no password hash")) << warnings[1];
    EXPECT_EQ(file.Verify("plain", "pw-plain"), CheckResult::kRefusedScheme);
    EXPECT_EQ(file.Verify("empty", ""), CheckResult::kRefusedScheme);
  }
}

TEST_F(HtpasswdTest, UnsupportedSchemesAreRefused) {
  Write("yes:" + Libcrypt("$y$", "pw-yes") + "\n");  // yescrypt: strong, but not offered here
  HtpasswdFile file(path_, true);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(Contains(warnings[0], "line 1 (yes): a hash scheme not supported")) << warnings[0];
  EXPECT_EQ(file.Verify("yes", "pw-yes"), CheckResult::kRefusedScheme);
}

// A stored hash of another length never matches (and is not read past; see ASan).
TEST_F(HtpasswdTest, AHashOfAnotherLengthNeverMatches) {
  const std::string hash = Libcrypt("$5$", "pw", 1000);
  Write("longer:" + hash + "extra\nshorter:" + hash.substr(0, hash.size() - 1) + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_EQ(file.Verify("longer", "pw"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("shorter", "pw"), CheckResult::kWrongPassword);
}

TEST_F(HtpasswdTest, UnknownUsers) {
  Write("alice:" + Libcrypt("$5$", "pw", 1000) + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_EQ(file.Verify("alice", "pw"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("dave", "pw"), CheckResult::kUnknownUser);
  EXPECT_EQ(file.Verify("Alice", "pw"), CheckResult::kUnknownUser);  // names are exact
  EXPECT_EQ(file.Verify("alice ", "pw"), CheckResult::kUnknownUser);
  EXPECT_EQ(file.Verify("", "pw"), CheckResult::kUnknownUser);
  EXPECT_EQ(file.Verify("alice:pw", "pw"), CheckResult::kUnknownUser);  // ':' is in no name
}

TEST_F(HtpasswdTest, CommentsBlankLinesAndBrokenLines) {
  const std::string alice = Libcrypt("$5$", "alice pw", 1000);
  Write(
      "# users\n"                  // 1
      "\n"                         // 2
      "   \t\n"                    // 3
      "  # an indented comment\n"  // 4
      "alice:" +
      alice + "\r\n" +            // 5 (CRLF)
      "secret-without-a-colon\n"  // 6
      ":" +
      Libcrypt("$5$", "x", 1000) + "\n" +                       // 7 (no user)
      "bob:" + Libcrypt("$5$", "bob pw", 1000) + ":Bob B.\n" +  // 8 (Apache's comment field)
      "alice:" + Libcrypt("$5$", "other pw", 1000) +            // 9 (again)
      "\n");
  HtpasswdFile file(path_, false);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_TRUE(Contains(warnings[0], "line 6: not a \"user:hash\" line; skipped")) << warnings[0];
  EXPECT_FALSE(Contains(warnings[0], "secret")) << warnings[0];
  EXPECT_TRUE(Contains(warnings[1], "line 7: ")) << warnings[1];
  EXPECT_TRUE(Contains(warnings[2], "line 9 (alice): listed again; the entry on line 5 counts"))
      << warnings[2];
  for (const std::string& warning : warnings) EXPECT_FALSE(Contains(warning, "$5$")) << warning;
  EXPECT_EQ(file.Verify("alice", "alice pw"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("alice", "other pw"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("bob", "bob pw"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("# users", ""), CheckResult::kUnknownUser);
}

TEST_F(HtpasswdTest, AMissingFileIsReportedWithItsPath) {
  SetWatchedFileIntervalForTesting(0ms);
  HtpasswdFile file(path_, false);
  EXPECT_EQ(file.Load(nullptr),
            "auth.htpasswd \"" + path_ + "\": cannot read: No such file or directory");
  EXPECT_EQ(file.Verify("alice", "pw"), CheckResult::kUnavailable);
  Write("alice:" + Libcrypt("$5$", "pw", 1000) + "\n");  // appears later: used without a Load
  EXPECT_EQ(file.Verify("alice", "pw"), CheckResult::kOk);
}

TEST_F(HtpasswdTest, ADirectoryIsNotAFile) {
  HtpasswdFile file(dir_.string(), false);
  EXPECT_EQ(file.Load(nullptr),
            "auth.htpasswd \"" + dir_.string() + "\": cannot read: not a regular file");
  EXPECT_EQ(file.Verify("alice", "pw"), CheckResult::kUnavailable);
}

TEST_F(HtpasswdTest, AFileOthersCanReadIsWarnedAbout) {
  const std::string line = "alice:" + Libcrypt("$5$", "pw", 1000) + "\n";
  HtpasswdFile file(path_, false);
  std::vector<std::string> warnings;
  Write(line, 0600);
  ASSERT_EQ(file.Load(&warnings), "");
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  Write(line, 0640);
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "auth.htpasswd \"" + path_ +
                             "\" is readable by group or others (mode 0640) and holds password "
                             "hashes; run: chmod 600 " +
                             path_);
  warnings.clear();
  Write(line, 0602);
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(Contains(warnings[0], "writable by others (mode 0602)")) << warnings[0];
  EXPECT_EQ(file.Verify("alice", "pw"), CheckResult::kOk);  // a warning, not a refusal
}

TEST_F(HtpasswdTest, AnEditIsPickedUpWithoutALoad) {
  SetWatchedFileIntervalForTesting(0ms);  // look on every check
  Write("alice:" + Libcrypt("$5$", "one", 1000) + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_EQ(file.Verify("alice", "one"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("bob", "three"), CheckResult::kUnknownUser);
  Write("alice:" + Libcrypt("$5$", "two", 1000) + "\nbob:" + Libcrypt("$5$", "three", 1000) + "\n");
  EXPECT_EQ(file.Verify("alice", "one"), CheckResult::kWrongPassword);
  EXPECT_EQ(file.Verify("alice", "two"), CheckResult::kOk);
  EXPECT_EQ(file.Verify("bob", "three"), CheckResult::kOk);
}

TEST_F(HtpasswdTest, TheFileIsLookedAtOncePerInterval) {
  SetWatchedFileIntervalForTesting(1h);  // never passes during the test
  Write("alice:" + Libcrypt("$5$", "one", 1000) + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  Write("alice:" + Libcrypt("$5$", "two", 1000) + "\n");
  EXPECT_EQ(file.Verify("alice", "one"), CheckResult::kOk);  // not looked at again yet
  ASSERT_EQ(file.Load(nullptr), "");                         // Load always reads
  EXPECT_EQ(file.Verify("alice", "two"), CheckResult::kOk);
}

TEST_F(HtpasswdTest, ADeletedFileKeepsTheLastGoodContents) {
  SetWatchedFileIntervalForTesting(0ms);
  Write("alice:" + Libcrypt("$5$", "one", 1000) + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  std::filesystem::remove(path_);
  EXPECT_EQ(file.Verify("alice", "one"), CheckResult::kOk);
  const std::string why = file.Load(nullptr);
  EXPECT_TRUE(Contains(why, "auth.htpasswd \"" + path_ + "\": cannot read: No such file")) << why;
  EXPECT_TRUE(Contains(why, "stays in use")) << why;
  EXPECT_EQ(file.Verify("alice", "one"), CheckResult::kOk);
  std::filesystem::create_directory(path_);  // something unreadable in its place
  EXPECT_EQ(file.Verify("alice", "one"), CheckResult::kOk);
  EXPECT_TRUE(Contains(file.Load(nullptr), "not a regular file"));
  std::filesystem::remove(path_);
  Write("alice:" + Libcrypt("$5$", "two", 1000) + "\n");  // back: read again
  EXPECT_EQ(file.Verify("alice", "two"), CheckResult::kOk);
  EXPECT_EQ(file.Load(nullptr), "");
}

// Run under ThreadSanitizer too: checks and Loads while the file is replaced again and again.
TEST_F(HtpasswdTest, ConcurrentChecksWhileTheFileIsRewritten) {
  SetWatchedFileIntervalForTesting(0ms);  // every check looks at the file
  const std::string hashes[2] = {Libcrypt("$5$", "pw", 1000), Libcrypt("$5$", "pw", 1000)};
  Write("alice:" + hashes[0] + "\n");
  HtpasswdFile file(path_, false);
  ASSERT_EQ(file.Load(nullptr), "");
  std::atomic<int> running{4};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 30; ++i) {
        if (file.Verify("alice", "pw") != CheckResult::kOk) ++unexpected;
        if (file.Verify("alice", "wrong") != CheckResult::kWrongPassword) ++unexpected;
        if (file.Verify("nobody", "pw") != CheckResult::kUnknownUser) ++unexpected;
      }
      --running;
    });
  }
  int rewrites = 0;
  while (running.load() > 0 || rewrites < 5) {
    std::string text = "alice:" + hashes[rewrites % 2] + "\n";
    for (int i = 0; i < rewrites % 7; ++i) text += "# padding " + std::to_string(i) + "\n";
    Write(text);
    if (rewrites % 3 == 0) {
      EXPECT_EQ(file.Load(nullptr), "");
    }
    ++rewrites;
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
}

}  // namespace
}  // namespace mintgate::proxy::auth
