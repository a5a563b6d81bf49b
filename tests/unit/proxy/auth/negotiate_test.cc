// The Negotiate (SPNEGO/Kerberos) acceptor against a real MIT KDC started on loopback by
// tests/e2e/kdc.sh (krb5-kdc, krb5-admin-server and krb5-user from scripts/deps.sh --test:
// when they are missing the tests fail, they are not skipped). The client side is what a
// browser or curl does: a ticket from kinit in a FILE: ccache, gss_init_sec_context with
// SPNEGO for HTTP@gateway.mintgate.test, and the acceptor's reply fed back to check mutual
// authentication.
#include "proxy/auth/negotiate.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace mintgate::proxy::auth {
namespace {

// The repository: this file is <root>/tests/unit/proxy/auth/negotiate_test.cc (a relative
// __FILE__ is taken from the working directory; SOURCE_DIR, as the e2e tests have it, wins).
std::filesystem::path SourceRoot() {
  if (const char* source = std::getenv("SOURCE_DIR"); source != nullptr && *source != '\0') {
    return source;
  }
  std::filesystem::path file = std::filesystem::absolute(__FILE__).lexically_normal();
  for (int i = 0; i < 5; ++i) file = file.parent_path();
  return file;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs a command, returns its stdout, or nullopt (with `why`) when it fails.
std::optional<std::string> RunCommand(const std::string& command, std::string* why) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *why = "cannot run " + command;
    return std::nullopt;
  }
  std::string out;
  std::array<char, 1024> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  if (status != 0) {
    *why = command + (WIFEXITED(status) ? " exited with " + std::to_string(WEXITSTATUS(status))
                                        : " ended with status " + std::to_string(status));
    return std::nullopt;
  }
  return out;
}

// "KEY=value" lines as printed by kdc.sh (printf %q: backslashes quote).
std::map<std::string, std::string> ParseAssignments(const std::string& text) {
  std::map<std::string, std::string> env;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string value;
    for (std::size_t i = eq + 1; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) ++i;
      value += line[i];
    }
    env[line.substr(0, eq)] = value;
  }
  return env;
}

std::string Base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string Unbase64(const std::string& text) {
  if (text.empty() || text.size() % 4 != 0) return "";
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return "";
  std::size_t size = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes.
  if (text.back() == '=') --size;
  if (text[text.size() - 2] == '=') --size;
  out.resize(size);
  return out;
}

// A DER TLV with a short-form length (everything built here is under 128 bytes).
std::string Der(unsigned char tag, const std::string& content) {
  EXPECT_LT(content.size(), 128u);
  return std::string(1, static_cast<char>(tag)) +
         std::string(1, static_cast<char>(content.size())) + content;
}

gss_OID_desc kSpnego{6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};

// What gss_init_sec_context makes, kept for the second step (the acceptor's reply).
class ClientContext {
 public:
  ClientContext() = default;
  ~ClientContext() {
    OM_uint32 minor = 0;
    if (context_ != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &context_, GSS_C_NO_BUFFER);
    if (target_ != GSS_C_NO_NAME) gss_release_name(&minor, &target_);
  }
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // The first token for HTTP@host with `mech`, from `cred` (the default ccache when none);
  // "" and a test failure when the GSS-API cannot make one.
  std::string Start(const std::string& host, gss_OID mech = &kSpnego,
                    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL) {
    EXPECT_EQ(target_, GSS_C_NO_NAME) << "one Start per ClientContext";
    if (target_ != GSS_C_NO_NAME) return "";
    OM_uint32 minor = 0;
    const std::string service = "HTTP@" + host;
    gss_buffer_desc text{service.size(), const_cast<char*>(service.data())};
    EXPECT_EQ(gss_import_name(&minor, &text, GSS_C_NT_HOSTBASED_SERVICE, &target_), GSS_S_COMPLETE);
    return Step(mech, cred, GSS_C_NO_BUFFER, nullptr);
  }

  // Feeds the acceptor's reply: GSS_S_COMPLETE when it proves the service (mutual auth).
  OM_uint32 Finish(const std::string& reply_base64, std::string* error) {
    const std::string reply = Unbase64(reply_base64);
    gss_buffer_desc input{reply.size(), const_cast<char*>(reply.data())};
    OM_uint32 major = 0;
    Step(mech_, GSS_C_NO_CREDENTIAL, &input, &major);
    if (GSS_ERROR(major)) *error = "gss_init_sec_context refused the reply";
    return major;
  }

 private:
  std::string Step(gss_OID mech, gss_cred_id_t cred, gss_buffer_t input, OM_uint32* status) {
    mech_ = mech;
    OM_uint32 minor = 0;
    gss_buffer_desc output = GSS_C_EMPTY_BUFFER;
    const OM_uint32 major =
        gss_init_sec_context(&minor, cred, &context_, target_, mech, GSS_C_MUTUAL_FLAG, 0,
                             GSS_C_NO_CHANNEL_BINDINGS, input, nullptr, &output, nullptr, nullptr);
    if (status != nullptr) {
      *status = major;
    } else {
      EXPECT_FALSE(GSS_ERROR(major)) << "gss_init_sec_context failed: " << Describe(major, minor);
    }
    std::string token = output.length == 0
                            ? std::string()
                            : Base64(std::string(static_cast<char*>(output.value), output.length));
    gss_release_buffer(&minor, &output);
    return token;
  }

  static std::string Describe(OM_uint32 major, OM_uint32 minor) {
    std::string out;
    for (auto [code, type] :
         {std::pair{major, GSS_C_GSS_CODE}, std::pair{minor, GSS_C_MECH_CODE}}) {
      OM_uint32 more = 0;
      do {
        OM_uint32 ignored = 0;
        gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
        if (GSS_ERROR(gss_display_status(&ignored, code, type, GSS_C_NO_OID, &more, &text))) break;
        out += std::string(static_cast<char*>(text.value), text.length) + "; ";
        gss_release_buffer(&ignored, &text);
      } while (more != 0);
    }
    return out;
  }

  gss_ctx_id_t context_ = GSS_C_NO_CONTEXT;
  gss_name_t target_ = GSS_C_NO_NAME;
  gss_OID mech_ = &kSpnego;
};

class NegotiateAcceptorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    state_ = new State;
    std::string dir_template =
        (std::filesystem::temp_directory_path() / "mintgate-negotiate-XXXXXX").string();
    if (::mkdtemp(dir_template.data()) == nullptr) {
      state_->error = "mkdtemp failed";
      return;
    }
    state_->dir = dir_template;
    const std::filesystem::path script = SourceRoot() / "tests/e2e/kdc.sh";
    if (!std::filesystem::exists(script)) {
      state_->error = "the KDC harness is not at " + script.string() +
                      " (run from the repository, or set SOURCE_DIR to it)";
      return;
    }
    const std::filesystem::path err = state_->dir / "kdc.sh.err";
    std::string why;
    const std::optional<std::string> out =
        RunCommand("KDC_OWNER_PID=" + std::to_string(::getpid()) + " bash " + ShellQuote(script) +
                       " start " + ShellQuote(state_->dir / "kdc") + " 2>" + ShellQuote(err),
                   &why);
    if (!out) {
      state_->error =
          "could not start a KDC (are krb5-kdc, krb5-admin-server and krb5-user "
          "installed? scripts/deps.sh --test): " +
          why + ": " + ReadFile(err);
      return;
    }
    state_->kdc_started = true;
    state_->env = ParseAssignments(*out);
    for (const char* key : {"KRB5_CONFIG", "KEYTAB", "OTHER_KEYTAB", "REALM"}) {
      if (state_->env[key].empty()) {
        state_->error = std::string("kdc.sh printed no ") + key + ": " + *out;
        return;
      }
    }
    // The client side's environment, before any GSS-API call. The replay cache (MIT's
    // default, which the acceptor keeps) goes to the test's directory rather than /var/tmp.
    // KRB5_KTNAME names a keytab that does not exist: the acceptor must use its own.
    SaveAndSet("KRB5_CONFIG", state_->env["KRB5_CONFIG"]);
    SaveAndSet("KRB5CCNAME", "FILE:" + (state_->dir / "alice.ccache").string());
    SaveAndSet("KRB5RCACHEDIR", state_->dir.string());
    SaveAndSet("KRB5_KTNAME", "FILE:" + (state_->dir / "no-such.keytab").string());
    if (!Kinit("alice", "alice-krb-pw", state_->dir / "alice.ccache", &why) ||
        !Kinit("bob", "bob-krb-pw", state_->dir / "bob.ccache", &why)) {
      state_->error = why;
    }
  }

  static void TearDownTestSuite() {
    if (state_->kdc_started) {
      std::string why;
      RunCommand("bash " + ShellQuote(SourceRoot() / "tests/e2e/kdc.sh") + " stop " +
                     ShellQuote(state_->dir / "kdc"),
                 &why);
    }
    // Later suites in this binary (another KDC of their own) get the environment back.
    for (const auto& [key, value] : state_->saved_env) {
      if (value) {
        ::setenv(key.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(key.c_str());
      }
    }
    std::error_code ignored;
    if (!state_->dir.empty()) std::filesystem::remove_all(state_->dir, ignored);
    delete state_;
    state_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(state_->error.empty()) << state_->error;
    // Another suite may have pointed these elsewhere since this one started.
    for (const auto& [key, value] : state_->set_env) ::setenv(key.c_str(), value.c_str(), 1);
  }

  static std::string Env(const std::string& key) { return state_->env[key]; }
  static std::string Keytab() { return Env("KEYTAB"); }
  static std::string Dir() { return state_->dir.string(); }

  // bob's initiator credential, from his own ccache (alice's is KRB5CCNAME's).
  static gss_cred_id_t BobCred() {
    const std::string ccache = "FILE:" + (state_->dir / "bob.ccache").string();
    gss_key_value_element_desc element{"ccache", ccache.c_str()};
    gss_key_value_set_desc store{1, &element};
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    OM_uint32 minor = 0;
    EXPECT_EQ(gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                    GSS_C_INITIATE, &store, &cred, nullptr, nullptr),
              GSS_S_COMPLETE);
    return cred;
  }

 private:
  struct State {
    std::filesystem::path dir;
    bool kdc_started = false;
    std::string error;
    std::map<std::string, std::string> env;
    std::map<std::string, std::optional<std::string>> saved_env;
    std::map<std::string, std::string> set_env;
  };

  static void SaveAndSet(const std::string& key, const std::string& value) {
    const char* old = std::getenv(key.c_str());
    state_->saved_env[key] = old ? std::optional<std::string>(old) : std::nullopt;
    state_->set_env[key] = value;
    ::setenv(key.c_str(), value.c_str(), 1);
  }

  static bool Kinit(const std::string& user, const std::string& password,
                    const std::filesystem::path& ccache, std::string* why) {
    const std::filesystem::path log = state_->dir / ("kinit-" + user + ".log");
    const std::string command = "KRB5CCNAME=" + ShellQuote("FILE:" + ccache.string()) + " kinit " +
                                user + " >" + ShellQuote(log) + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "w");
    if (pipe == nullptr) {
      *why = "cannot run kinit";
      return false;
    }
    std::fputs((password + "\n").c_str(), pipe);
    if (::pclose(pipe) != 0) {
      *why = "kinit " + user + " failed: " + ReadFile(log);
      return false;
    }
    return true;
  }

  static State* state_;
};
NegotiateAcceptorTest::State* NegotiateAcceptorTest::state_ = nullptr;

TEST_F(NegotiateAcceptorTest, AcceptsAliceWithMutualAuthentication) {
  NegotiateAcceptor acceptor(Keytab(), "", true);
  ASSERT_EQ(acceptor.Load(), "");
  ClientContext client;
  const std::string token = client.Start("gateway.mintgate.test");
  ASSERT_FALSE(token.empty());
  const NegotiateResult r = acceptor.Accept(token);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user, "alice");
  EXPECT_EQ(r.principal, "alice@MINTGATE.TEST");
  EXPECT_EQ(r.error, "");
  ASSERT_FALSE(r.reply.empty());
  // The reply proves the gateway to the client.
  std::string error;
  EXPECT_EQ(client.Finish(r.reply, &error), GSS_S_COMPLETE) << error;
}

TEST_F(NegotiateAcceptorTest, KeepsTheRealmWhenAskedAndNamesTheService) {
  for (const std::string& principal :
       {std::string(), std::string("HTTP/gateway.mintgate.test@MINTGATE.TEST"),
        std::string("HTTP/gateway.mintgate.test")}) {
    NegotiateAcceptor acceptor(Keytab(), principal, false);
    ASSERT_EQ(acceptor.Load(), "") << principal;
    ClientContext client;
    const NegotiateResult r = acceptor.Accept(client.Start("gateway.mintgate.test"));
    ASSERT_TRUE(r.ok) << principal << ": " << r.error;
    EXPECT_EQ(r.user, "alice@MINTGATE.TEST");
    EXPECT_EQ(r.principal, "alice@MINTGATE.TEST");
    std::string error;
    EXPECT_EQ(client.Finish(r.reply, &error), GSS_S_COMPLETE) << error;
  }
}

TEST_F(NegotiateAcceptorTest, TellsUsersApart) {
  NegotiateAcceptor acceptor(Keytab(), "", true);
  ASSERT_EQ(acceptor.Load(), "");
  gss_cred_id_t bob = BobCred();
  ClientContext client;
  const NegotiateResult r = acceptor.Accept(client.Start("gateway.mintgate.test", &kSpnego, bob));
  OM_uint32 minor = 0;
  gss_release_cred(&minor, &bob);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user, "bob");
  EXPECT_EQ(r.principal, "bob@MINTGATE.TEST");
}

TEST_F(NegotiateAcceptorTest, RefusesWhatIsNotBase64) {
  NegotiateAcceptor acceptor(Keytab(), "", true);
  ASSERT_EQ(acceptor.Load(), "");
  for (const std::string& bad :
       {std::string(), std::string("!!!!"), std::string("YII"), std::string("YIIB=A=="),
        std::string("YII\nB"), std::string("YI B"), std::string("====")}) {
    const NegotiateResult r = acceptor.Accept(bad);
    EXPECT_FALSE(r.ok) << bad;
    EXPECT_NE(r.error.find("base64"), std::string::npos) << bad << ": " << r.error;
    EXPECT_TRUE(r.reply.empty());
    EXPECT_TRUE(r.user.empty());
  }
  const NegotiateResult huge = acceptor.Accept(std::string(200 << 10, 'A'));
  EXPECT_FALSE(huge.ok);
  EXPECT_NE(huge.error.find("too large"), std::string::npos) << huge.error;
}

TEST_F(NegotiateAcceptorTest, RefusesGarbageTokensWithTheGssReason) {
  NegotiateAcceptor acceptor(Keytab(), "", true);
  ASSERT_EQ(acceptor.Load(), "");
  ClientContext client;
  const std::string good = Unbase64(client.Start("gateway.mintgate.test"));
  ASSERT_GT(good.size(), 64u);
  std::string flipped = good;
  flipped[flipped.size() - 20] = static_cast<char>(flipped[flipped.size() - 20] ^ 0x55);
  const std::string secret = "not a token: s3cr3t-payload";
  for (const std::string& bytes :
       {secret, std::string("\x60\x00", 2), good.substr(0, good.size() / 2), good.substr(0, 17),
        flipped, std::string(300, '\0'), std::string(5000, '\xff')}) {
    const NegotiateResult r = acceptor.Accept(Base64(bytes));
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.error.empty());
    EXPECT_EQ(r.error.find("s3cr3t"), std::string::npos) << r.error;  // never the token
    EXPECT_TRUE(r.reply.empty());
    EXPECT_TRUE(r.user.empty());
    EXPECT_TRUE(r.principal.empty());
  }
  // The untouched token still works: the refusals above were about the bytes.
  EXPECT_TRUE(acceptor.Accept(Base64(good)).ok);
}

TEST_F(NegotiateAcceptorTest, RefusesATicketForAnotherService) {
  ClientContext for_other;
  const std::string token = for_other.Start("other.mintgate.test");
  ASSERT_FALSE(token.empty());
  for (const std::string& principal :
       {std::string(), std::string("HTTP/gateway.mintgate.test@MINTGATE.TEST")}) {
    NegotiateAcceptor acceptor(Keytab(), principal, true);
    ASSERT_EQ(acceptor.Load(), "");
    const NegotiateResult r = acceptor.Accept(token);
    EXPECT_FALSE(r.ok) << principal;
    EXPECT_FALSE(r.error.empty());
    EXPECT_TRUE(r.user.empty());
    EXPECT_TRUE(r.reply.empty());
  }
  // The token itself is good: the other service's keytab takes it.
  NegotiateAcceptor other(Env("OTHER_KEYTAB"), "", true);
  ASSERT_EQ(other.Load(), "");
  const NegotiateResult r = other.Accept(token);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user, "alice");
}

TEST_F(NegotiateAcceptorTest, RefusesAReplayedToken) {
  NegotiateAcceptor acceptor(Keytab(), "", true);
  ASSERT_EQ(acceptor.Load(), "");
  NegotiateAcceptor named(Keytab(), "HTTP/gateway.mintgate.test@MINTGATE.TEST", true);
  ASSERT_EQ(named.Load(), "");
  ClientContext client;
  const std::string token = client.Start("gateway.mintgate.test");
  ASSERT_TRUE(acceptor.Accept(token).ok);
  // MIT's replay cache is per user of the host, not per acceptor: both refuse it.
  for (const NegotiateAcceptor* a : {&acceptor, &named}) {
    const NegotiateResult again = a->Accept(token);
    EXPECT_FALSE(again.ok);
    EXPECT_NE(again.error.find("replay"), std::string::npos) << again.error;
  }
}

TEST_F(NegotiateAcceptorTest, RefusesWhatNeedsAnotherRoundTrip) {
  NegotiateAcceptor acceptor(Keytab(), "", true);
  ASSERT_EQ(acceptor.Load(), "");
  // A NegTokenInit offering NTLM, then Kerberos, without a mechanism token: the acceptor
  // picks Kerberos and asks for its token, a second round trip.
  const std::string ntlm = Der(0x06, "\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a");
  const std::string krb5 = Der(0x06, "\x2a\x86\x48\x86\xf7\x12\x01\x02\x02");
  const std::string init = Der(0x30, Der(0xa0, Der(0x30, ntlm + krb5)));
  const std::string token = Der(0x60, Der(0x06, "\x2b\x06\x01\x05\x05\x02") + Der(0xa0, init));
  const NegotiateResult r = acceptor.Accept(Base64(token));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "needs another round trip (NTLM inside SPNEGO is not supported)");
  EXPECT_TRUE(r.reply.empty());
}

TEST_F(NegotiateAcceptorTest, TakesSpnegoOnly) {
  NegotiateAcceptor acceptor(Keytab(), "", true);
  ASSERT_EQ(acceptor.Load(), "");
  // A bare Kerberos token (no SPNEGO wrapper) has no credential of its mechanism here.
  ClientContext client;
  const std::string token = client.Start("gateway.mintgate.test", gss_mech_krb5);
  ASSERT_FALSE(token.empty());
  const NegotiateResult r = acceptor.Accept(token);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.error.empty());
}

TEST_F(NegotiateAcceptorTest, LoadNamesTheKeytabAndTheReason) {
  const std::string missing = Dir() + "/missing.keytab";
  NegotiateAcceptor absent(missing, "", true);
  std::string why = absent.Load();
  EXPECT_NE(why.find(missing), std::string::npos) << why;
  EXPECT_NE(why.find("No such file"), std::string::npos) << why;
  ClientContext client;
  const NegotiateResult r = absent.Accept(client.Start("gateway.mintgate.test"));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.error.empty());

  NegotiateAcceptor not_there(Keytab(), "HTTP/nothere.mintgate.test@MINTGATE.TEST", true);
  why = not_there.Load();
  EXPECT_NE(why.find(Keytab()), std::string::npos) << why;
  EXPECT_NE(why.find("HTTP/nothere.mintgate.test"), std::string::npos) << why;

  NegotiateAcceptor wrong_keytab(Env("OTHER_KEYTAB"), "HTTP/gateway.mintgate.test", true);
  why = wrong_keytab.Load();
  EXPECT_NE(why.find(Env("OTHER_KEYTAB")), std::string::npos) << why;

  const std::string garbage = Dir() + "/garbage.keytab";
  std::ofstream(garbage) << "this is not a keytab\n";
  for (const std::string& principal : {std::string(), std::string("HTTP/gateway.mintgate.test")}) {
    NegotiateAcceptor bad(garbage, principal, true);
    why = bad.Load();
    EXPECT_NE(why.find(garbage), std::string::npos) << why;
  }

  const std::string empty = Dir() + "/empty.keytab";
  std::ofstream{empty};
  NegotiateAcceptor nothing(empty, "", true);
  why = nothing.Load();
  EXPECT_NE(why.find(empty), std::string::npos) << why;

  NegotiateAcceptor unloaded(Keytab(), "", true);
  ClientContext another;
  EXPECT_FALSE(unloaded.Accept(another.Start("gateway.mintgate.test")).ok);
}

TEST_F(NegotiateAcceptorTest, ReloadKeepsWorking) {
  NegotiateAcceptor acceptor(Keytab(), "", true);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(acceptor.Load(), "");
    ClientContext client;
    EXPECT_TRUE(acceptor.Accept(client.Start("gateway.mintgate.test")).ok);
  }
}

TEST_F(NegotiateAcceptorTest, AFailedReloadKeepsTheCredential) {
  const std::string keytab = Dir() + "/rotating.keytab";
  std::filesystem::copy_file(Keytab(), keytab, std::filesystem::copy_options::overwrite_existing);
  NegotiateAcceptor acceptor(keytab, "HTTP/gateway.mintgate.test@MINTGATE.TEST", true);
  ASSERT_EQ(acceptor.Load(), "");
  std::filesystem::remove(keytab);
  const std::string why = acceptor.Load();
  EXPECT_NE(why.find(keytab), std::string::npos) << why;
  // The keytab file is read when a ticket is checked: back in place, the kept credential
  // works without another Load().
  std::filesystem::copy_file(Keytab(), keytab);
  ClientContext client;
  const NegotiateResult r = acceptor.Accept(client.Start("gateway.mintgate.test"));
  EXPECT_TRUE(r.ok) << r.error;
}

TEST_F(NegotiateAcceptorTest, ReloadsWhileAccepting) {
  constexpr int kThreads = 3;
  constexpr int kPerThread = 4;
  NegotiateAcceptor acceptor(Keytab(), "", true);
  ASSERT_EQ(acceptor.Load(), "");
  std::vector<std::unique_ptr<ClientContext>> clients;
  std::vector<std::string> tokens;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    clients.push_back(std::make_unique<ClientContext>());
    tokens.push_back(clients.back()->Start("gateway.mintgate.test"));
    ASSERT_FALSE(tokens.back().empty());
  }
  std::vector<NegotiateResult> results(tokens.size());
  std::latch go(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.arrive_and_wait();
      for (int k = 0; k < kPerThread; ++k) {
        const std::size_t i = static_cast<std::size_t>(t * kPerThread + k);
        results[i] = acceptor.Accept(tokens[i]);
      }
    });
  }
  go.arrive_and_wait();
  std::vector<std::string> loads;
  for (int i = 0; i < 5; ++i) loads.push_back(acceptor.Load());
  for (std::thread& thread : threads) thread.join();
  for (const std::string& why : loads) EXPECT_EQ(why, "");
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].ok) << i << ": " << results[i].error;
  }
}

TEST_F(NegotiateAcceptorTest, AcceptsConcurrently) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 3;
  NegotiateAcceptor acceptor(Keytab(), "HTTP/gateway.mintgate.test@MINTGATE.TEST", true);
  ASSERT_EQ(acceptor.Load(), "");
  gss_cred_id_t bob = BobCred();
  // Each thread its own tokens, made beforehand (alice's and bob's in turn).
  std::vector<std::unique_ptr<ClientContext>> clients;
  std::vector<std::string> tokens;
  for (int i = 0; i < kThreads * kRounds; ++i) {
    clients.push_back(std::make_unique<ClientContext>());
    tokens.push_back(clients.back()->Start("gateway.mintgate.test", &kSpnego,
                                           i % 2 == 0 ? GSS_C_NO_CREDENTIAL : bob));
    ASSERT_FALSE(tokens.back().empty());
  }
  OM_uint32 minor = 0;
  gss_release_cred(&minor, &bob);
  std::vector<NegotiateResult> results(tokens.size());
  std::vector<NegotiateResult> replays(tokens.size());
  std::latch go(kThreads);
  std::latch done(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        const std::size_t i = static_cast<std::size_t>(round * kThreads + t);
        results[i] = acceptor.Accept(tokens[i]);
      }
      done.arrive_and_wait();
      // Then, all at once, each thread replays another thread's first token.
      const std::size_t other = static_cast<std::size_t>((t + 1) % kThreads);
      replays[other] = acceptor.Accept(tokens[other]);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    ASSERT_TRUE(results[i].ok) << i << ": " << results[i].error;
    EXPECT_EQ(results[i].user, i % 2 == 0 ? "alice" : "bob");
    std::string error;
    EXPECT_EQ(clients[i]->Finish(results[i].reply, &error), GSS_S_COMPLETE) << error;
  }
  for (std::size_t i = 0; i < static_cast<std::size_t>(kThreads); ++i) {
    EXPECT_FALSE(replays[i].ok) << i;
    EXPECT_NE(replays[i].error.find("replay"), std::string::npos) << replays[i].error;
  }
}

}  // namespace
}  // namespace mintgate::proxy::auth
