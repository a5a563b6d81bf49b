#include "proxy/config/gateway_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace mintgate::proxy {
namespace {

class GatewayConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / "mggwXXXXXX").string();
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  GatewayConfig Load(const std::string& text, bool load_cas = true) {
    std::ofstream(dir_ + "/m.toml") << text;
    GatewayConfigOptions options;
    options.load_cas = load_cas;
    return LoadGatewayConfig(dir_ + "/m.toml", options);
  }
  std::string dir_;
};

TEST_F(GatewayConfigTest, EmptyConfigUsesTheGeneratedDefaultCa) {
  GatewayConfig g = Load("");
  ASSERT_TRUE(g.ok()) << g.errors[0].ToString();
  EXPECT_TRUE(g.uses_generated_ca);
  EXPECT_EQ(g.generated_ca_dir, dir_ + "/mintgate-state/ca");
  ASSERT_TRUE(g.rules.has_value());
  EXPECT_EQ(g.rules->size(), 1u);
  ASSERT_EQ(g.warnings.size(), 1u);
  EXPECT_NE(g.warnings[0].find("generated in " + dir_ + "/mintgate-state/ca"), std::string::npos);
}

TEST_F(GatewayConfigTest, RuleErrorsPointAtTheValue) {
  GatewayConfig g = Load("\n\n[[rule]]\nname = \"x\"\naction = \"decrypt\"\nca = \"nope\"\n");
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_EQ(g.errors[0].line, 6);
  EXPECT_EQ(g.errors[0].column, 6);
  EXPECT_NE(g.errors[0].message.find("unknown CA profile \"nope\""), std::string::npos);
  EXPECT_EQ(g.errors[0].ToString(),
            dir_ + "/m.toml:6:6: rule \"x\" (line 3): unknown CA profile \"nope\"");
}

// Every value a rule can get wrong: the error is at the value itself (in an array, the
// element), as the loader's own errors are.
TEST_F(GatewayConfigTest, RuleErrorsPointAtTheElement) {
  GatewayConfig g = Load(
      "[[rule]]\n"
      "name = \"r\"\n"
      "action = \"decrypt\"\n"
      "hosts = [\"a.example\", \"*.*.example\"]\n"
      "clients = [\"10.0.0.0/8\",\n"
      "           \"192.168.1.1/16\"]\n"
      "categories = [\"finance\"]\n"
      "ca = \"new\"\n",
      false);
  ASSERT_EQ(g.errors.size(), 4u) << g.errors[0].ToString();
  struct Want {
    int line, column;
    std::string text;
  };
  const Want want[] = {
      {4, 23, "host pattern \"*.*.example\""},
      {6, 12, "client \"192.168.1.1/16\""},
      {7, 15, "unknown category \"finance\""},
      {8, 6, "unknown CA profile \"new\""},
  };
  for (std::size_t i = 0; i < 4; ++i) {
    const ConfigError& e = g.errors[i];
    EXPECT_EQ(e.file, dir_ + "/m.toml");
    EXPECT_EQ(e.line, want[i].line) << e.ToString();
    EXPECT_EQ(e.column, want[i].column) << e.ToString();
    EXPECT_NE(e.message.find(want[i].text), std::string::npos) << e.ToString();
  }
}

TEST_F(GatewayConfigTest, CategoryPatternErrorsPointIntoTheCategoryFile) {
  std::ofstream(dir_ + "/finance.txt") << "# banks\n*.bank.example\n\n   pay..example  # typo\n";
  GatewayConfig g = Load("[category.finance]\nfile = \"finance.txt\"\n", false);
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_EQ(g.errors[0].file, dir_ + "/finance.txt");
  EXPECT_EQ(g.errors[0].line, 4);
  EXPECT_EQ(g.errors[0].column, 4);
  EXPECT_NE(g.errors[0].message.find("category \"finance\": pattern \"pay..example\""),
            std::string::npos)
      << g.errors[0].message;
}

TEST_F(GatewayConfigTest, CanaryErrorsPointAtTheValue) {
  GatewayConfig g =
      Load("[[canary]]\nca = \"nowhere\"\nclients = [\"10.0.0.0/8\", \"10.1.0.0/33\"]\n", false);
  ASSERT_EQ(g.errors.size(), 2u);
  EXPECT_EQ(g.errors[0].line, 2);
  EXPECT_EQ(g.errors[0].column, 6);
  EXPECT_EQ(g.errors[0].message, "[[canary]]: ca = \"nowhere\" is not a [ca.NAME] profile");
  EXPECT_EQ(g.errors[1].line, 3);
  EXPECT_EQ(g.errors[1].column, 26);
  EXPECT_NE(g.errors[1].message.find("[[canary]] clients: \"10.1.0.0/33\""), std::string::npos)
      << g.errors[1].message;
}

TEST_F(GatewayConfigTest, DefaultAndLoginCaErrorsPointAtTheirKeys) {
  GatewayConfig g = Load(
      "[inspection]\ndefault_ca = \"ghost\"\n[auth]\nunidentified = \"decrypt-to-login\"\n"
      "htpasswd = \"users\"\nlogin_ca = \"phantom\"\n",
      false);
  ASSERT_EQ(g.errors.size(), 2u) << g.errors[0].ToString();
  EXPECT_EQ(g.errors[0].line, 2);
  EXPECT_EQ(g.errors[0].column, 14);
  EXPECT_NE(g.errors[0].message.find("inspection.default_ca \"ghost\""), std::string::npos);
  EXPECT_EQ(g.errors[1].line, 6);
  EXPECT_EQ(g.errors[1].column, 12);
  EXPECT_NE(g.errors[1].message.find("auth.login_ca \"phantom\""), std::string::npos);
}

TEST_F(GatewayConfigTest, CaLoadErrorsPointAtTheFileKey) {
  GatewayConfig g = Load("[ca.new]\ncert = \"new.pem\"\nkey = \"new.key\"\n");
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_EQ(g.errors[0].line, 2);  // cert = ..., the file that cannot be read
  EXPECT_EQ(g.errors[0].column, 8);
  EXPECT_NE(g.errors[0].message.find("[ca.new]: " + dir_ + "/new.pem: cannot read"),
            std::string::npos)
      << g.errors[0].message;
  // Without loading CA files (rules test), the same config is fine.
  EXPECT_TRUE(Load("[ca.new]\ncert = \"new.pem\"\nkey = \"new.key\"\n", false).ok());
}

TEST_F(GatewayConfigTest, BadAllowClientsAreReported) {
  GatewayConfig g = Load("[server]\nallow_clients = [\"10.0.0.1/8\", \"bogus\"]\n");
  ASSERT_EQ(g.errors.size(), 2u);
  EXPECT_NE(g.errors[0].message.find("10.0.0.1/8"), std::string::npos);
  EXPECT_EQ(g.errors[0].column, 18);
  EXPECT_NE(g.errors[1].message.find("bogus"), std::string::npos);
  EXPECT_EQ(g.errors[1].line, 2);
  EXPECT_EQ(g.errors[1].column, 32);
}

TEST_F(GatewayConfigTest, SuccessorCyclesAreReported) {
  GatewayConfig g = Load(
      "[ca.a]\ncert = \"a.pem\"\nkey = \"a.key\"\nretire_at = 2020-01-01T00:00:00Z\n"
      "successor = \"b\"\n[ca.b]\ncert = \"b.pem\"\nkey = \"b.key\"\n"
      "retire_at = 2020-01-01T00:00:00Z\nsuccessor = \"a\"\n",
      false);
  ASSERT_FALSE(g.ok());
  bool cycle = false;
  for (const ConfigError& e : g.errors) {
    if (e.message.find("cycle") == std::string::npos) continue;
    cycle = true;
    EXPECT_EQ(e.line, 5) << e.ToString();  // [ca.a]'s successor = "b"
    EXPECT_EQ(e.column, 13) << e.ToString();
  }
  EXPECT_TRUE(cycle) << g.errors[0].ToString();
  g = Load("[ca.a]\ncert = \"a.pem\"\nkey = \"a.key\"\nsuccessor = \"zzz\"\n", false);
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_EQ(g.errors[0].line, 4);
  EXPECT_EQ(g.errors[0].column, 13);
  EXPECT_NE(g.errors[0].message.find("unknown successor \"zzz\""), std::string::npos);
}

TEST_F(GatewayConfigTest, WarnsWhenTheAdminListenerIsNotOnLoopback) {
  for (const char* listen : {"0.0.0.0:9090", "[::]:9090", "192.0.2.10:9090"}) {
    GatewayConfig g = Load(std::string("[admin]\nlisten = \"") + listen + "\"\n");
    ASSERT_TRUE(g.ok()) << g.errors[0].ToString();
    bool warned = false;
    for (const std::string& w : g.warnings) {
      warned = warned || w.find("admin.listen " + std::string(listen) +
                                " is not a loopback address") != std::string::npos;
    }
    EXPECT_TRUE(warned) << listen;
  }
  for (const char* listen : {"127.0.0.1:9090", "127.0.0.5:9090", "[::1]:9090", "localhost:9090"}) {
    GatewayConfig g = Load(std::string("[admin]\nlisten = \"") + listen + "\"\n");
    for (const std::string& w : g.warnings) {
      EXPECT_EQ(w.find("loopback"), std::string::npos) << listen << ": " << w;
    }
  }
}

TEST_F(GatewayConfigTest, CheckReadsTheAdminToken) {
  // A configured token file must exist; check never creates one.
  GatewayConfig g = Load("[admin]\ntoken_file = \"token\"\n");
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_NE(g.errors[0].message.find("admin.token_file: " + dir_ +
                                     "/token: cannot read: No such file or directory"),
            std::string::npos)
      << g.errors[0].message;
  EXPECT_EQ(g.errors[0].line, 2);
  EXPECT_EQ(g.errors[0].column, 14);
  std::ofstream(dir_ + "/token") << "operator-token-0123456789abcdef\n";
  ::chmod((dir_ + "/token").c_str(), 0644);
  g = Load("[admin]\ntoken_file = \"token\"\n");
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_NE(g.errors[0].message.find("readable by group or others (mode 0644); run: chmod 600"),
            std::string::npos)
      << g.errors[0].message;
  ::chmod((dir_ + "/token").c_str(), 0600);
  EXPECT_TRUE(Load("[admin]\ntoken_file = \"token\"\n").ok());
  // The generated one is checked once it exists.
  EXPECT_TRUE(Load("").ok());
  ASSERT_EQ(::mkdir((dir_ + "/mintgate-state").c_str(), 0700), 0);
  std::ofstream(dir_ + "/mintgate-state/admin.token") << "generated-token-0123456789abcdef\n";
  ::chmod((dir_ + "/mintgate-state/admin.token").c_str(), 0604);
  g = Load("");
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_NE(g.errors[0].message.find("admin token: " + dir_ + "/mintgate-state/admin.token: "),
            std::string::npos)
      << g.errors[0].message;
}

TEST_F(GatewayConfigTest, StateDirWritableByGroupOrOthersIsRefused) {
  const std::string state = dir_ + "/state";
  const std::string config = "[server]\nstate_dir = \"state\"\n";
  EXPECT_TRUE(Load(config).ok());  // not made yet: created 0700 at start
  ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
  for (mode_t mode : {0777, 0775, 0757, 01777}) {
    ASSERT_EQ(::chmod(state.c_str(), mode), 0);
    GatewayConfig g = Load(config);
    ASSERT_EQ(g.errors.size(), 1u) << std::oct << mode;
    EXPECT_EQ(g.errors[0].line, 2);  // state_dir = ...
    EXPECT_EQ(g.errors[0].column, 13);
    EXPECT_NE(g.errors[0].message.find("server.state_dir: " + state +
                                       " is writable by group or others (mode "),
              std::string::npos)
        << g.errors[0].message;
    EXPECT_NE(g.errors[0].message.find("run: chmod 700 " + state), std::string::npos)
        << g.errors[0].message;
    // Rules alone do not touch state_dir.
    EXPECT_TRUE(Load(config, false).ok());
  }
  for (mode_t mode : {0700, 0750, 0755, 0500}) {
    ASSERT_EQ(::chmod(state.c_str(), mode), 0);
    GatewayConfig g = Load(config);
    EXPECT_TRUE(g.ok()) << std::oct << mode << ": " << g.errors[0].message;
  }
  ASSERT_EQ(::rmdir(state.c_str()), 0);
  std::ofstream(state) << "not a directory\n";
  GatewayConfig g = Load(config);
  ASSERT_EQ(g.errors.size(), 1u);
  EXPECT_NE(g.errors[0].message.find(state + " is not a directory"), std::string::npos);
}

}  // namespace
}  // namespace mintgate::proxy
