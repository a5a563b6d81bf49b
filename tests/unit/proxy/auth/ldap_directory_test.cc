// LdapDirectory against a real OpenLDAP slapd on loopback, started once for the suite by
// tests/e2e/slapd.sh (slapd and ldap-utils from scripts/deps.sh --test: when they are missing
// the tests fail, they are not skipped), and against sockets of the test's own that stand for
// servers that never answer.
#include "proxy/auth/ldap_directory.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ldap.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace mintgate::proxy::auth {
namespace {

using namespace std::chrono_literals;
using Groups = std::vector<std::string>;

// The source tree: this file is tests/unit/proxy/auth/ldap_directory_test.cc in it.
std::filesystem::path SourceRoot() {
  std::filesystem::path file = std::filesystem::absolute(__FILE__).lexically_normal();
  for (int i = 0; i < 5; ++i) file = file.parent_path();
  return file;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A value as slapd.sh prints it: 'single-quoted', or plain with printf %q's backslashes.
std::string Unquote(const std::string& v) {
  if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') return v.substr(1, v.size() - 2);
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) ++i;
    out += v[i];
  }
  return out;
}

void WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path, std::ios::trunc) << content;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

// A TCP listener on 127.0.0.1 that never answers: with `starttls_ok`, each connection gets a
// successful StartTLS response and then silence (the TLS handshake never completes);
// otherwise connections are left in the kernel's backlog (TCP up, not a byte back). It also
// tells how many connections were made.
class SilentServer {
 public:
  explicit SilentServer(bool starttls_ok = false) : starttls_ok_(starttls_ok) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(addr.sin_port);
    if (starttls_ok_) thread_ = std::thread([this] { Serve(); });
  }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  ~SilentServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : accepted_) ::close(fd);
    if (fd_ >= 0) ::close(fd_);
  }
  std::string Url(const char* scheme) const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port_);
  }
  // Connections made so far (for a server without StartTLS).
  int Connections() {
    int n = 0;
    for (;;) {
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      ::close(fd);
      ++n;
    }
    return n;
  }

 private:
  void Serve() {
    // An ExtendedResponse to message 1 (libldap's StartTLS request on a new connection):
    // success, no matched DN, no diagnostic message.
    static constexpr std::array<unsigned char, 14> kStartTlsOk = {
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00};
    while (!stop_) {
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        std::this_thread::sleep_for(10ms);
        continue;
      }
      accepted_.push_back(fd);
      std::array<char, 512> request{};
      for (int i = 0; i < 200 && !stop_; ++i) {
        if (::recv(fd, request.data(), request.size(), 0) > 0) {
          (void)!::send(fd, kStartTlsOk.data(), kStartTlsOk.size(), MSG_NOSIGNAL);
          break;
        }
        std::this_thread::sleep_for(10ms);
      }
    }
  }

  bool starttls_ok_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> accepted_;  // owned by thread_ until it is joined
  std::thread thread_;
};

class LdapDirectoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // SIGPIPE is left at its default (the process dies of it): LdapDirectory keeps libldap's
    // writes to connections the server closed from raising it, where the gateway would
    // ignore it (proxy/control/gateway.cc).
    problem_ = new std::string;
    env_ = new std::map<std::string, std::string>;
    std::array<char, 64> dir{};
    std::snprintf(dir.data(), dir.size(), "%s", "/tmp/mintgate-ldap-test-XXXXXX");
    if (::mkdtemp(dir.data()) == nullptr) {
      *problem_ = "cannot make a temporary directory";
      return;
    }
    dir_ = new std::string(dir.data());
    const std::filesystem::path script = SourceRoot() / "tests/e2e/slapd.sh";
    if (!std::filesystem::exists(script)) {
      *problem_ = "the harness " + script.string() +
                  " is missing: the source tree is found from this file's path, \"" __FILE__
                  "\" (compile it with an absolute path, or run from the source tree)";
      return;
    }
    harness_ran_ = true;
    // SLAPD_OWNER_PID: slapd stops by itself should this process die before TearDownTestSuite.
    const std::string command = "SLAPD_OWNER_PID=" + std::to_string(::getpid()) + " bash " +
                                ShellQuote(script.string()) + " start " + ShellQuote(*dir_) +
                                " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
      *problem_ = "cannot run " + command;
      return;
    }
    std::string output;
    std::array<char, 1024> line{};
    while (std::fgets(line.data(), line.size(), pipe) != nullptr) {
      std::string text = line.data();
      if (!text.empty() && text.back() == '\n') text.pop_back();
      const std::size_t eq = text.find('=');
      if (eq != std::string::npos && eq > 0 &&
          text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == eq) {
        (*env_)[text.substr(0, eq)] = Unquote(text.substr(eq + 1));
      } else {
        output += text + "\n";
      }
    }
    const int status = ::pclose(pipe);
    if (status != 0) {
      *problem_ =
          "tests/e2e/slapd.sh could not start slapd; OpenLDAP's slapd and ldap-utils are needed "
          "(scripts/deps.sh --test). It said:\n" +
          output;
      return;
    }
    for (const char* key :
         {"LDAP_URL", "LDAPS_URL", "LDAPS_WRONG_NAME_URL", "LDAP_CA", "LDAP_OTHER_CA", "LDAP_BASE",
          "LDAP_ROOT_DN", "LDAP_ROOT_PW_FILE", "SPECIAL_USER", "SPECIAL_DN"}) {
      if (env_->count(key) == 0) *problem_ += std::string("slapd.sh printed no ") + key + "\n";
    }
  }

  static void TearDownTestSuite() {
    if (harness_ran_) {
      const std::filesystem::path script = SourceRoot() / "tests/e2e/slapd.sh";
      const std::string command =
          "bash " + ShellQuote(script.string()) + " stop " + ShellQuote(*dir_);
      EXPECT_EQ(std::system(command.c_str()), 0) << command;
    }
    if (dir_ != nullptr) {
      std::error_code ignored;
      std::filesystem::remove_all(*dir_, ignored);
    }
    delete dir_;
    delete env_;
    delete problem_;
    harness_ran_ = false;
    dir_ = nullptr;
    env_ = nullptr;
    problem_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(problem_->empty()) << *problem_; }

  static const std::string& Env(const std::string& key) { return env_->at(key); }
  static std::string Base() { return Env("LDAP_BASE"); }
  static std::string People() { return "ou=people," + Base(); }
  static std::string Dn(const std::string& uid) { return "uid=" + uid + "," + People(); }

  // ldaps:// with the test CA, the DN from a template, groups under ou=groups.
  static LdapConfig TemplateConfig() {
    LdapConfig c;
    c.url = Env("LDAPS_URL");
    c.user_dn = "uid={user}," + People();
    c.group_base = "ou=groups," + Base();
    c.ca_file = Env("LDAP_CA");
    c.timeout_ms = 5000;
    return c;
  }
  // The same, the DN found by an anonymous search.
  static LdapConfig SearchConfig() {
    LdapConfig c = TemplateConfig();
    c.user_dn = "";
    c.search_base = People();
    c.search_filter = "(uid={user})";
    return c;
  }
  static LdapConfig StartTlsConfig() {
    LdapConfig c = TemplateConfig();
    c.url = Env("LDAP_URL");
    c.starttls = true;
    return c;
  }

  static inline std::string* dir_ = nullptr;
  static inline bool harness_ran_ = false;
  static inline std::string* problem_ = nullptr;
  static inline std::map<std::string, std::string>* env_ = nullptr;
};

// First in the file, so that (run alone) it is also the process's first use of libldap's TLS:
// four threads make their first TLS contexts at once.
TEST_F(LdapDirectoryTest, ConcurrentBindsWithDifferentConfigurations) {
  const LdapDirectory ldaps(TemplateConfig());
  const LdapDirectory starttls(StartTlsConfig());
  const LdapDirectory search(SearchConfig());
  LdapConfig untrusted_config = TemplateConfig();
  untrusted_config.ca_file = "";
  const LdapDirectory untrusted(untrusted_config);
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  constexpr int kRounds = 6;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        LdapBind b;
        if (t == 0) b = ldaps.Bind("alice", "alice-ldap-pw");
        if (t == 1) b = starttls.Bind("bob", "bob-ldap-pw");
        if (t == 2) b = search.Bind("a*", "astar-ldap-pw");
        if (t == 3) b = untrusted.Bind("alice", "alice-ldap-pw");
        if (t < 3 && b.result == CheckResult::kOk) ++ok;
        if (t == 3 && b.result == CheckResult::kUnavailable) ++refused;
        if ((t < 3) != (b.result == CheckResult::kOk)) errors[t] = b.error;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 3 * kRounds) << errors[0] << errors[1] << errors[2];
  // The test CA of the other directories never reaches this one's TLS context.
  EXPECT_EQ(refused.load(), kRounds) << errors[3];
}

TEST_F(LdapDirectoryTest, LdapsBindAsTheUser) {
  const LdapDirectory ldap(TemplateConfig());
  ASSERT_EQ(ldap.Check(), "");
  LdapBind b = ldap.Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, Dn("alice"));
  b = ldap.Bind("alice", "bob-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kWrongPassword) << b.error;
  EXPECT_EQ(b.dn, "");
  // With a template, a DN that names no entry gets "invalid credentials" from the server too.
  EXPECT_EQ(ldap.Bind("nobody", "x").result, CheckResult::kWrongPassword);
  b = ldap.Bind("carol smith", "carol-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, Dn("carol smith"));
  // 256 bytes is still a name (the server then finds no such entry).
  EXPECT_EQ(ldap.Bind(std::string(256, 'a'), "x").result, CheckResult::kWrongPassword);
  // LDAP matches names without case or outer spaces; the entry's own spelling is what the
  // rules then see.
  b = ldap.Bind("ALICE", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.user, "alice");
  EXPECT_EQ(ldap.Bind("alice", "alice-ldap-pw").user, "alice");
}

TEST_F(LdapDirectoryTest, RefusedWithoutAskingTheServer) {
  SilentServer server;
  LdapConfig c = TemplateConfig();
  c.url = server.Url("ldaps");
  c.timeout_ms = 500;
  const LdapDirectory ldap(c);
  LdapBind b = ldap.Bind("alice", "");
  EXPECT_EQ(b.result, CheckResult::kWrongPassword);  // an unauthenticated bind would succeed
  EXPECT_EQ(ldap.Bind("al\nice", "pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind(std::string("al\0ice", 6), "pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind("al\x7f", "pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind(std::string(257, 'a'), "pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind("", "pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind("\xff\xfe", "pw").result, CheckResult::kUnknownUser);  // not UTF-8
  std::string error;
  EXPECT_EQ(ldap.Groups("al\nice", "", &error), Groups{}) << error;
  EXPECT_EQ(server.Connections(), 0);

  LdapConfig no_groups = TemplateConfig();
  no_groups.url = server.Url("ldaps");
  no_groups.group_base = "";
  EXPECT_EQ(LdapDirectory(no_groups).Groups("alice", "", &error), Groups{}) << error;
  EXPECT_EQ(server.Connections(), 0);
}

TEST_F(LdapDirectoryTest, ClearTextLdapIsNeverAttempted) {
  SilentServer server;
  LdapConfig c = TemplateConfig();
  c.url = server.Url("ldap");
  c.starttls = false;
  const LdapDirectory ldap(c);
  EXPECT_NE(ldap.Check().find("auth.ldap.starttls"), std::string::npos) << ldap.Check();
  const LdapBind b = ldap.Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kUnavailable);
  EXPECT_NE(b.error.find("starttls"), std::string::npos) << b.error;
  std::string error;
  EXPECT_EQ(ldap.Groups("alice", "", &error), std::nullopt);
  EXPECT_NE(error.find("starttls"), std::string::npos) << error;
  EXPECT_EQ(server.Connections(), 0);
}

TEST_F(LdapDirectoryTest, StartTlsOnLdapUrl) {
  const LdapDirectory ldap(StartTlsConfig());
  ASSERT_EQ(ldap.Check(), "");
  LdapBind b = ldap.Bind("bob", "bob-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, Dn("bob"));
  EXPECT_EQ(ldap.Bind("bob", "alice-ldap-pw").result, CheckResult::kWrongPassword);
  std::string error;
  EXPECT_EQ(ldap.Groups("alice", "", &error), (Groups{"finance", "staff"})) << error;
}

TEST_F(LdapDirectoryTest, UntrustedCertificateIsUnavailable) {
  for (const std::string& url : {Env("LDAPS_URL"), Env("LDAP_URL")}) {
    SCOPED_TRACE(url);
    LdapConfig c = TemplateConfig();
    c.url = url;
    c.starttls = url.starts_with("ldap://");
    c.ca_file = "";  // the system's CA store, which does not know the test CA
    LdapBind b = LdapDirectory(c).Bind("alice", "alice-ldap-pw");
    EXPECT_EQ(b.result, CheckResult::kUnavailable);
    EXPECT_NE(b.error.find("certificate was refused"), std::string::npos) << b.error;
    EXPECT_NE(b.error.find("the system's CA certificates"), std::string::npos) << b.error;
    EXPECT_EQ(b.error.find("alice-ldap-pw"), std::string::npos) << b.error;
    std::string error;
    EXPECT_EQ(LdapDirectory(c).Groups("alice", "", &error), std::nullopt);
    EXPECT_NE(error.find("certificate was refused"), std::string::npos) << error;

    c.ca_file = Env("LDAP_OTHER_CA");  // a CA, but not the server's issuer
    b = LdapDirectory(c).Bind("alice", "alice-ldap-pw");
    EXPECT_EQ(b.result, CheckResult::kUnavailable);
    EXPECT_NE(b.error.find("certificate was refused"), std::string::npos) << b.error;
    EXPECT_NE(b.error.find(Env("LDAP_OTHER_CA")), std::string::npos) << b.error;
  }
}

TEST_F(LdapDirectoryTest, ServerNameMustMatchTheCertificate) {
  // The same server, CA and certificate (DNS:localhost, IP:127.0.0.1), reached as 127.0.0.2.
  LdapConfig c = TemplateConfig();
  c.url = Env("LDAPS_WRONG_NAME_URL");
  const LdapBind b = LdapDirectory(c).Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kUnavailable);
  EXPECT_NE(b.error.find("certificate was refused"), std::string::npos) << b.error;
  c.url = Env("LDAPS_URL");
  EXPECT_EQ(LdapDirectory(c).Bind("alice", "alice-ldap-pw").result, CheckResult::kOk);
}

TEST_F(LdapDirectoryTest, GlobalLibldapTlsSettingsDoNotApply) {
  // Process-wide libldap settings (as ldap.conf or another library could make them) that would
  // trust the test CA, or trust anything, do not reach a directory's connections.
  int old_require = LDAP_OPT_X_TLS_DEMAND;
  ASSERT_EQ(ldap_get_option(nullptr, LDAP_OPT_X_TLS_REQUIRE_CERT, &old_require), LDAP_OPT_SUCCESS);
  const int never = LDAP_OPT_X_TLS_NEVER;
  ASSERT_EQ(ldap_set_option(nullptr, LDAP_OPT_X_TLS_CACERTFILE, Env("LDAP_CA").c_str()),
            LDAP_OPT_SUCCESS);
  LdapConfig c = TemplateConfig();
  c.ca_file = "";
  const LdapBind with_ca = LdapDirectory(c).Bind("alice", "alice-ldap-pw");
  ASSERT_EQ(ldap_set_option(nullptr, LDAP_OPT_X_TLS_REQUIRE_CERT, &never), LDAP_OPT_SUCCESS);
  const LdapBind never_verify = LdapDirectory(c).Bind("alice", "alice-ldap-pw");
  ldap_set_option(nullptr, LDAP_OPT_X_TLS_REQUIRE_CERT, &old_require);
  ldap_set_option(nullptr, LDAP_OPT_X_TLS_CACERTFILE, nullptr);
  EXPECT_EQ(with_ca.result, CheckResult::kUnavailable) << with_ca.error;
  EXPECT_EQ(never_verify.result, CheckResult::kUnavailable) << never_verify.error;
}

TEST_F(LdapDirectoryTest, SearchModeAnonymous) {
  const LdapDirectory ldap(SearchConfig());
  ASSERT_EQ(ldap.Check(), "");
  LdapBind b = ldap.Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, Dn("alice"));
  EXPECT_EQ(ldap.Bind("alice", "wrong").result, CheckResult::kWrongPassword);
  EXPECT_EQ(ldap.Bind("nobody", "x").result, CheckResult::kUnknownUser);
  // The found entry, wherever it is under search_base.
  b = ldap.Bind("x", "x-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, "uid=x,ou=people," + People());

  LdapConfig two = SearchConfig();
  two.search_filter = "(|(uid={user})(uid=bob))";
  b = LdapDirectory(two).Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kUnavailable);
  EXPECT_NE(b.error.find("ambiguous"), std::string::npos) << b.error;
}

TEST_F(LdapDirectoryTest, SearchModeBoundWithThePasswordFile) {
  LdapConfig c = SearchConfig();
  c.bind_dn = Env("LDAP_ROOT_DN");
  c.bind_password_file = Env("LDAP_ROOT_PW_FILE");  // 0600, with a trailing newline
  const LdapDirectory ldap(c);
  ASSERT_EQ(ldap.Check(), "");
  LdapBind b = ldap.Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, Dn("alice"));
  EXPECT_EQ(ldap.Bind("alice", "wrong").result, CheckResult::kWrongPassword);
  std::string error;
  EXPECT_EQ(ldap.Groups("bob", "", &error), Groups{"staff"}) << error;

  const std::string wrong = *dir_ + "/wrong-pw";
  WriteFile(wrong, "not-the-password\r\n", 0600);
  c.bind_password_file = wrong;
  const LdapDirectory refused(c);
  EXPECT_EQ(refused.Check(), "");  // readable and private; the server decides the rest
  b = refused.Bind("alice", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kUnavailable);
  EXPECT_NE(b.error.find("auth.ldap.bind_dn"), std::string::npos) << b.error;
  EXPECT_EQ(b.error.find("not-the-password"), std::string::npos) << b.error;
  EXPECT_EQ(refused.Groups("bob", "", &error), std::nullopt);
  EXPECT_NE(error.find("Invalid credentials"), std::string::npos) << error;
}

TEST_F(LdapDirectoryTest, TemplateEscapesTheNameAsADnValue) {
  const LdapDirectory ldap(TemplateConfig());
  // Every character RFC 4514 escapes, a leading '#' and a trailing space.
  LdapBind b = ldap.Bind(Env("SPECIAL_USER"), "special-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, Env("SPECIAL_DN"));
  std::string error;
  EXPECT_EQ(ldap.Groups(Env("SPECIAL_USER"), "", &error), Groups{"special"}) << error;
  EXPECT_EQ(ldap.Groups(Env("SPECIAL_USER"), b.dn, &error), Groups{"special"}) << error;

  // Unescaped, "x,ou=people" would make uid=x,ou=people,ou=people,<base>: x's entry.
  b = ldap.Bind("x,ou=people", "x-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kWrongPassword) << b.error;
  EXPECT_EQ(b.dn, "");
  EXPECT_EQ(ldap.Bind("bob,ou=people", "bob-ldap-pw").result, CheckResult::kWrongPassword);
  EXPECT_EQ(ldap.Bind("alice+cn=Alice", "alice-ldap-pw").result, CheckResult::kWrongPassword);
}

TEST_F(LdapDirectoryTest, SearchEscapesTheNameAsAFilterValue) {
  const LdapDirectory ldap(SearchConfig());
  // Unescaped, "a*" would match alice and a* (ambiguous), or alice alone with her password.
  LdapBind b = ldap.Bind("a*", "alice-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kWrongPassword) << b.error;
  b = ldap.Bind("a*", "astar-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_EQ(b.dn, Dn("a*"));
  EXPECT_EQ(ldap.Bind("*", "alice-ldap-pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind("al*", "alice-ldap-pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind("alice)(uid=*", "alice-ldap-pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind("*)(|(uid=*", "alice-ldap-pw").result, CheckResult::kUnknownUser);
  EXPECT_EQ(ldap.Bind("alice\\2a", "alice-ldap-pw").result, CheckResult::kUnknownUser);

  // Parentheses, star and backslash in the name, and in the DN for {dn} (as slapd writes it:
  // with hex escapes).
  b = ldap.Bind(Env("SPECIAL_USER"), "special-ldap-pw");
  EXPECT_EQ(b.result, CheckResult::kOk) << b.error;
  EXPECT_TRUE(b.dn.starts_with("uid=") && b.dn.ends_with("," + People())) << b.dn;
  std::string error;
  EXPECT_EQ(ldap.Groups(Env("SPECIAL_USER"), b.dn, &error), Groups{"special"}) << error;
  EXPECT_EQ(ldap.Groups(Env("SPECIAL_USER"), "", &error), Groups{"special"}) << error;
}

TEST_F(LdapDirectoryTest, GroupsOfAUser) {
  std::string error;
  for (const LdapConfig& c : {TemplateConfig(), SearchConfig()}) {
    const LdapDirectory ldap(c);
    SCOPED_TRACE(c.search_base.empty() ? "template" : "search");
    EXPECT_EQ(ldap.Groups("alice", "", &error), (Groups{"finance", "staff"})) << error;
    EXPECT_EQ(ldap.Groups("bob", "", &error), Groups{"staff"}) << error;
    EXPECT_EQ(ldap.Groups("nobody", "", &error), Groups{}) << error;
    const LdapBind b = ldap.Bind("alice", "alice-ldap-pw");
    ASSERT_EQ(b.result, CheckResult::kOk) << b.error;
    EXPECT_EQ(ldap.Groups("alice", b.dn, &error), (Groups{"finance", "staff"})) << error;
    // The DN from Bind is what counts.
    EXPECT_EQ(ldap.Groups("whoever", Dn("bob"), &error), Groups{"staff"}) << error;
  }

  LdapConfig by_user = TemplateConfig();
  by_user.group_filter = "(&(objectClass=groupOfNames)(cn={user}))";  // {user} alone
  by_user.group_attribute = "member";
  EXPECT_EQ(LdapDirectory(by_user).Groups("finance", "", &error), Groups{Dn("alice")}) << error;

  LdapConfig missing = TemplateConfig();
  missing.group_base = "ou=nowhere," + Base();
  error.clear();
  EXPECT_EQ(LdapDirectory(missing).Groups("alice", "", &error), std::nullopt);
  EXPECT_NE(error.find("No such object"), std::string::npos) << error;
}

TEST_F(LdapDirectoryTest, TimeoutsBoundEveryStage) {
  const auto unavailable_within = [](const LdapConfig& c, std::chrono::milliseconds limit) {
    const auto start = std::chrono::steady_clock::now();
    const LdapBind b = LdapDirectory(c).Bind("alice", "alice-ldap-pw");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(b.result, CheckResult::kUnavailable) << c.url;
    EXPECT_FALSE(b.error.empty());
    EXPECT_LT(took, limit) << c.url << ": " << b.error;
  };
  LdapConfig c = TemplateConfig();
  c.timeout_ms = 300;
  {
    SilentServer silent;  // TCP up, then nothing: the TLS handshake of ldaps:// waits
    c.url = silent.Url("ldaps");
    unavailable_within(c, 3s);
    c.url = silent.Url("ldap");  // the StartTLS request waits
    c.starttls = true;
    unavailable_within(c, 3s);
  }
  {
    SilentServer starttls_then_silent(true);  // StartTLS accepted, then no handshake
    c.url = starttls_then_silent.Url("ldap");
    c.starttls = true;
    unavailable_within(c, 3s);
  }
  c.url = "ldaps://127.0.0.1:1";  // refused
  c.starttls = false;
  unavailable_within(c, 3s);
}

// Check() needs no server.
class LdapCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::array<char, 64> dir{};
    std::snprintf(dir.data(), dir.size(), "%s", "/tmp/mintgate-ldap-check-XXXXXX");
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    dir_ = dir.data();
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  static LdapConfig Valid() {
    LdapConfig c;
    c.url = "ldaps://dc1.example.com";
    c.user_dn = "uid={user},ou=people,dc=example,dc=com";
    return c;
  }
  // Check()'s message, which must name `key`.
  static std::string CheckNames(const LdapConfig& c, const std::string& key) {
    const std::string message = LdapDirectory(c).Check();
    EXPECT_NE(message.find(key), std::string::npos) << "\"" << message << "\" names no " << key;
    return message;
  }
  std::string dir_;
};

TEST_F(LdapCheckTest, AcceptsWorkableSettings) {
  EXPECT_EQ(LdapDirectory(Valid()).Check(), "");
  LdapConfig c = Valid();
  c.url = "ldap://dc1.example.com:389 ldap://dc2.example.com";
  c.starttls = true;
  EXPECT_EQ(LdapDirectory(c).Check(), "");
  c = Valid();
  c.url = "ldapi://%2Frun%2Fslapd%2Fldapi";
  c.user_dn = "";
  c.search_base = "dc=example,dc=com";
  c.group_base = "ou=groups,dc=example,dc=com";
  c.group_filter = "(memberUid={user})";
  EXPECT_EQ(LdapDirectory(c).Check(), "");
  c.bind_dn = "cn=reader,dc=example,dc=com";
  c.bind_password_file = dir_ + "/pw";
  WriteFile(c.bind_password_file, "secret\n", 0400);
  EXPECT_EQ(LdapDirectory(c).Check(), "");
}

TEST_F(LdapCheckTest, UrlMessagesNameTheKey) {
  LdapConfig c = Valid();
  c.url = "";
  CheckNames(c, "auth.ldap.url");
  c.url = "https://dc1.example.com";
  CheckNames(c, "auth.ldap.url must be");
  c.url = "dc1.example.com";
  CheckNames(c, "auth.ldap.url must be");
  c.url = "cldap://dc1.example.com";
  CheckNames(c, "auth.ldap.url must be");
  c.url = "ldap://dc1.example.com";
  c.starttls = false;
  CheckNames(c, "auth.ldap.starttls = true");
  c.url = "ldaps://dc1.example.com ldap://dc2.example.com";
  c.starttls = true;
  CheckNames(c, "auth.ldap.url mixes");
  c.url = "ldaps:///";
  CheckNames(c, "names no host");
}

TEST_F(LdapCheckTest, EntryMessagesNameTheKey) {
  LdapConfig c = Valid();
  c.user_dn = "uid=alice,dc=example,dc=com";
  EXPECT_EQ(LdapDirectory(c).Check(), "auth.ldap.user_dn must contain {user}");
  c.user_dn = "{user}";
  CheckNames(c, "auth.ldap.user_dn");
  c.user_dn = "";
  CheckNames(c, "auth.ldap.user_dn");
  c.user_dn = "uid={user},dc=example,dc=com";
  c.search_base = "dc=example,dc=com";
  CheckNames(c, "exactly one of auth.ldap.user_dn");
  c.user_dn = "";
  c.search_base = "not a DN";
  CheckNames(c, "auth.ldap.search_base");
  c.search_base = "dc=example,dc=com";
  c.search_filter = "(uid=alice)";
  CheckNames(c, "auth.ldap.search_filter must contain {user}");
  c = Valid();
  c.group_base = "ou=groups,dc=example,dc=com";
  c.group_filter = "(objectClass=groupOfNames)";
  CheckNames(c, "auth.ldap.group_filter");
  c.group_filter = "(member={dn})";
  c.group_attribute = "";
  CheckNames(c, "auth.ldap.group_attribute");
  c = Valid();
  c.timeout_ms = 0;
  CheckNames(c, "auth.ldap.timeout");
}

TEST_F(LdapCheckTest, FileMessagesNameTheKey) {
  LdapConfig c = Valid();
  c.bind_dn = "cn=reader,dc=example,dc=com";
  CheckNames(c, "auth.ldap.bind_password_file");
  c.bind_password_file = dir_ + "/missing";
  EXPECT_NE(CheckNames(c, "auth.ldap.bind_password_file").find("cannot read"), std::string::npos);
  c.bind_password_file = dir_ + "/pw";
  WriteFile(c.bind_password_file, "secret\n", 0644);
  EXPECT_NE(CheckNames(c, "auth.ldap.bind_password_file").find("chmod 600"), std::string::npos);
  WriteFile(c.bind_password_file, "secret\n", 0640);
  CheckNames(c, "auth.ldap.bind_password_file");
  WriteFile(c.bind_password_file, "\n", 0600);
  EXPECT_NE(CheckNames(c, "auth.ldap.bind_password_file").find("empty"), std::string::npos);
  WriteFile(c.bind_password_file, "secret\n", 0600);
  EXPECT_EQ(LdapDirectory(c).Check(), "");
  c.bind_dn = "";
  CheckNames(c, "auth.ldap.bind_dn");

  c = Valid();
  c.ca_file = dir_ + "/missing.pem";
  EXPECT_NE(CheckNames(c, "auth.ldap.ca_file").find("cannot read"), std::string::npos);
  c.ca_file = dir_ + "/garbage.pem";
  WriteFile(c.ca_file, "not a certificate\n", 0644);
  EXPECT_NE(CheckNames(c, "auth.ldap.ca_file").find("PEM"), std::string::npos);
}

}  // namespace
}  // namespace mintgate::proxy::auth
