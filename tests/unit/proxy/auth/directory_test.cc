// Negotiate and LDAP against real servers started on loopback by tests/e2e/kdc.sh and
// tests/e2e/slapd.sh (krb5-kdc and slapd from scripts/deps.sh --test; missing ones fail).
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "proxy/auth/ldap_directory.h"
#include "proxy/auth/negotiate.h"

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

std::string Base64(const void* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                static_cast<const unsigned char*>(data), static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

class NegotiateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           ("mintgate-kdc-" + std::to_string(::getpid())));
    env_ = new std::map<std::string, std::string>(Start("kdc.sh", *dir_));
    ::setenv("KRB5_CONFIG", (*env_)["KRB5_CONFIG"].c_str(), 1);
    const std::string ccache = "FILE:" + *dir_ + "/alice.ccache";
    ::setenv("KRB5CCNAME", ccache.c_str(), 1);
    ASSERT_EQ(std::system("echo alice-krb-pw | kinit alice >/dev/null"), 0);
  }
  static void TearDownTestSuite() {
    Stop("kdc.sh", *dir_);
    std::filesystem::remove_all(*dir_);
    delete env_;
    delete dir_;
  }

  // alice's SPNEGO token for HTTP@host, as a browser or curl makes it.
  static std::string Token(const std::string& host) {
    OM_uint32 minor = 0;
    const std::string service = "HTTP@" + host;
    gss_buffer_desc name_text{service.size(), const_cast<char*>(service.data())};
    gss_name_t target = GSS_C_NO_NAME;
    EXPECT_EQ(gss_import_name(&minor, &name_text, GSS_C_NT_HOSTBASED_SERVICE, &target),
              GSS_S_COMPLETE);
    static gss_OID_desc spnego{6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};
    gss_ctx_id_t context = GSS_C_NO_CONTEXT;
    gss_buffer_desc output = GSS_C_EMPTY_BUFFER;
    const OM_uint32 major = gss_init_sec_context(
        &minor, GSS_C_NO_CREDENTIAL, &context, target, &spnego, GSS_C_MUTUAL_FLAG, 0,
        GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, nullptr, &output, nullptr, nullptr);
    EXPECT_FALSE(GSS_ERROR(major)) << "gss_init_sec_context failed";
    std::string token = Base64(output.value, output.length);
    gss_release_buffer(&minor, &output);
    gss_release_name(&minor, &target);
    gss_delete_sec_context(&minor, &context, GSS_C_NO_BUFFER);
    return token;
  }

  static std::string* dir_;
  static std::map<std::string, std::string>* env_;
};
std::string* NegotiateTest::dir_ = nullptr;
std::map<std::string, std::string>* NegotiateTest::env_ = nullptr;

TEST_F(NegotiateTest, AcceptsAKerberosTicketForItsService) {
  NegotiateAcceptor acceptor((*env_)["KEYTAB"], "", true);
  ASSERT_EQ(acceptor.Load(), "");
  NegotiateResult r = acceptor.Accept(Token("gateway.mintgate.test"));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user, "alice");
  EXPECT_EQ(r.principal, "alice@MINTGATE.TEST");
  EXPECT_FALSE(r.reply.empty());  // mutual authentication

  NegotiateAcceptor keep((*env_)["KEYTAB"], "HTTP/gateway.mintgate.test@MINTGATE.TEST", false);
  ASSERT_EQ(keep.Load(), "");
  r = keep.Accept(Token("gateway.mintgate.test"));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user, "alice@MINTGATE.TEST");
}

TEST_F(NegotiateTest, RefusesGarbageAndTicketsForOtherServices) {
  NegotiateAcceptor acceptor((*env_)["KEYTAB"], "", true);
  ASSERT_EQ(acceptor.Load(), "");
  for (const char* bad : {"", "!!!!", "YWJj", "AAAAAAAAAAAAAAAAAAAAAAAA"}) {
    NegotiateResult r = acceptor.Accept(bad);
    EXPECT_FALSE(r.ok) << bad;
    EXPECT_FALSE(r.error.empty()) << bad;
    EXPECT_TRUE(r.reply.empty()) << bad;
  }
  NegotiateResult other = acceptor.Accept(Token("other.mintgate.test"));
  EXPECT_FALSE(other.ok);
  EXPECT_FALSE(other.error.empty());
}

TEST_F(NegotiateTest, LoadNamesWhatIsWrong) {
  NegotiateAcceptor missing(*dir_ + "/nope.keytab", "", true);
  EXPECT_NE(missing.Load().find("nope.keytab"), std::string::npos);
  EXPECT_FALSE(missing.Accept(Token("gateway.mintgate.test")).ok);
  NegotiateAcceptor wrong((*env_)["KEYTAB"], "HTTP/other.mintgate.test@MINTGATE.TEST", true);
  const std::string why = wrong.Load();
  EXPECT_NE(why.find("HTTP/other.mintgate.test"), std::string::npos) << why;
}

TEST_F(NegotiateTest, ConcurrentAccepts) {
  NegotiateAcceptor acceptor((*env_)["KEYTAB"], "", true);
  ASSERT_EQ(acceptor.Load(), "");
  std::vector<std::string> tokens;
  for (int i = 0; i < 8; ++i) tokens.push_back(Token("gateway.mintgate.test"));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 8; i += 4) ok += acceptor.Accept(tokens[i]).ok ? 1 : 0;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
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
