#include "proxy/control/runtime_builder.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tls/ca_generator.h"

namespace mintgate::proxy {
namespace {

class RuntimeBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / "mgrbXXXXXX").string();
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A new root CA in dir_/NAME (ca.pem, ca.key), replacing any earlier one.
  void MakeCa(const std::string& name) {
    std::filesystem::remove_all(dir_ + "/" + name);
    tls::WriteCaFiles(dir_ + "/" + name, tls::GenerateRootCa({}));
  }
  std::string Profile(const std::string& name, const std::string& extra = "") {
    return "[ca." + name + "]\ncert = \"" + name + "/ca.pem\"\nkey = \"" + name + "/ca.key\"\n" +
           extra;
  }
  RuntimeBuild Build(const std::string& text, RuntimePtr previous = nullptr) {
    std::ofstream(dir_ + "/m.toml", std::ios::trunc) << text;
    RuntimeBuildOptions options;
    options.previous = std::move(previous);
    options.adopt_mint = [this](std::unique_ptr<MintService> mint) {
      ++adopted_;
      return std::shared_ptr<MintService>(std::move(mint));
    };
    out_.str("");
    return BuildRuntime(dir_ + "/m.toml", options, out_);
  }

  std::string dir_;
  std::ostringstream out_;
  int adopted_ = 0;
};

constexpr const char* kBase = "[inspection]\ndefault_ca = \"a\"\n";

TEST_F(RuntimeBuilderTest, ConfigErrorsAreListedAsCheckPrintsThem) {
  RuntimeBuild b = Build("[server]\nworkers = 1\nbogus = 1\n");
  EXPECT_EQ(b.runtime, nullptr);
  EXPECT_EQ(b.exit_code, 2);
  ASSERT_EQ(b.errors.size(), 1u);
  EXPECT_EQ(b.errors[0].rfind(dir_ + "/m.toml:3:", 0), 0u) << b.errors[0];
  EXPECT_NE(b.errors[0].find("bogus"), std::string::npos) << b.errors[0];
  EXPECT_EQ(adopted_, 0);
}

TEST_F(RuntimeBuilderTest, GeneratesTheDefaultCaOnce) {
  RuntimeBuild b = Build("[server]\nstate_dir = \"state\"\n");
  ASSERT_NE(b.runtime, nullptr) << b.errors[0];
  EXPECT_EQ(b.ca_file, dir_ + "/state/ca/ca.pem");
  EXPECT_NE(out_.str().find("created a new CA in " + dir_ + "/state/ca"), std::string::npos);
  EXPECT_TRUE(b.warnings.empty()) << b.warnings[0];
  EXPECT_EQ(b.rule_count, 1u);
  EXPECT_EQ(b.ca_profiles, 1u);
  ASSERT_NE(b.runtime->mint, nullptr);
  EXPECT_NE(b.runtime->mint->Find("default"), nullptr);
  EXPECT_NE(b.runtime->readiness, nullptr);
  EXPECT_EQ(adopted_, 1);

  // Reloading the same file keeps the generated CA and the mint service with its cache.
  RuntimeBuild again = Build("[server]\nstate_dir = \"state\"\n", b.runtime);
  ASSERT_NE(again.runtime, nullptr) << again.errors[0];
  EXPECT_EQ(out_.str(), "");
  EXPECT_TRUE(again.mint_kept);
  EXPECT_EQ(again.runtime->mint, b.runtime->mint);
  EXPECT_EQ(adopted_, 1);
}

TEST_F(RuntimeBuilderTest, KeepsTheMintServiceWhenOnlyRulesChange) {
  MakeCa("a");
  RuntimeBuild first = Build(std::string(kBase) + Profile("a"));
  ASSERT_NE(first.runtime, nullptr) << first.errors[0];
  RuntimeBuild second = Build(std::string(kBase) + Profile("a") +
                                  "[[rule]]\nname = \"b\"\naction = \"block\"\n"
                                  "hosts = [\"blocked.example\"]\n",
                              first.runtime);
  ASSERT_NE(second.runtime, nullptr) << second.errors[0];
  EXPECT_TRUE(second.mint_kept);
  EXPECT_EQ(second.runtime->mint, first.runtime->mint);
  EXPECT_EQ(second.runtime->readiness, first.runtime->readiness);
  EXPECT_EQ(second.rule_count, 2u);
  EXPECT_EQ(first.rule_count, 1u);
  EXPECT_TRUE(second.restart_needed.empty());
}

TEST_F(RuntimeBuilderTest, ANewMintServiceWhenWhatItSignsWithChanges) {
  MakeCa("a");
  MakeCa("b");
  const std::string base = std::string(kBase) + Profile("a");
  RuntimeBuild first = Build(base);
  ASSERT_NE(first.runtime, nullptr) << first.errors[0];

  struct Case {
    const char* what;
    std::string config;
  };
  const Case cases[] = {
      {"[mint] leaf_days", base + "[mint]\nleaf_days = 20\n"},
      {"[mint] cache_entries", base + "[mint]\ncache_entries = 10\n"},
      {"[mint] leaf_key", base + "[mint]\nleaf_key = \"rsa-2048\"\n"},
      {"a new profile", base + Profile("b")},
      {"a retirement schedule",
       std::string(kBase) + Profile("a", "retire_at = 2099-01-01T00:00:00Z\nsuccessor = \"b\"\n") +
           Profile("b")},
  };
  for (const Case& c : cases) {
    RuntimeBuild next = Build(c.config, first.runtime);
    ASSERT_NE(next.runtime, nullptr) << c.what << ": " << next.errors[0];
    EXPECT_FALSE(next.mint_kept) << c.what;
    EXPECT_NE(next.runtime->mint, first.runtime->mint) << c.what;
  }

  // The same file name with another CA in it: the cache must not serve leaves of the old one.
  MakeCa("a");
  RuntimeBuild reissued = Build(base, first.runtime);
  ASSERT_NE(reissued.runtime, nullptr) << reissued.errors[0];
  EXPECT_FALSE(reissued.mint_kept);
}

TEST_F(RuntimeBuilderTest, RewritingTheSameCaFilesKeepsTheCache) {
  MakeCa("a");
  const std::string base = std::string(kBase) + Profile("a");
  RuntimeBuild first = Build(base);
  ASSERT_NE(first.runtime, nullptr) << first.errors[0];
  // Same bytes, new mtime (a configuration management run that rewrites files).
  std::filesystem::copy_file(dir_ + "/a/ca.pem", dir_ + "/copy.pem");
  std::filesystem::remove(dir_ + "/a/ca.pem");
  std::filesystem::copy_file(dir_ + "/copy.pem", dir_ + "/a/ca.pem");
  RuntimeBuild second = Build(base, first.runtime);
  ASSERT_NE(second.runtime, nullptr) << second.errors[0];
  EXPECT_TRUE(second.mint_kept);
}

TEST_F(RuntimeBuilderTest, SameMintInputsComparesSettingsAndMaterial) {
  MakeCa("a");
  RuntimeBuild first = Build(std::string(kBase) + Profile("a"));
  ASSERT_NE(first.runtime, nullptr) << first.errors[0];
  const Config& config = first.runtime->config;
  const MintService& running = *first.runtime->mint;
  auto load = [this](const std::string& name) {
    tls::CaProfileSpec spec;
    spec.name = name;
    spec.cert_file = dir_ + "/a/ca.pem";
    spec.key_file = dir_ + "/a/ca.key";
    std::vector<std::unique_ptr<tls::CertAuthority>> cas;
    cas.push_back(tls::CertAuthority::Load(spec, {}, std::time(nullptr)));
    return cas;
  };
  EXPECT_TRUE(SameMintInputs(config, running, config, load("a")));
  EXPECT_FALSE(SameMintInputs(config, running, config, load("other")));
  EXPECT_FALSE(SameMintInputs(config, running, config, {}));
  Config changed = config;
  changed.mint.signing_intermediate = true;
  EXPECT_FALSE(SameMintInputs(config, running, changed, load("a")));
  changed = config;
  changed.cas[0].spec.passphrase.env = "CA_PASS";
  EXPECT_FALSE(SameMintInputs(config, running, changed, load("a")));
}

TEST_F(RuntimeBuilderTest, RestartOnlySettingsKeepTheirRunningValues) {
  MakeCa("a");
  const std::string head = std::string(kBase) + Profile("a");
  RuntimeBuild first = Build(head +
                             "[server]\nlisten = [\"127.0.0.1:3128\"]\nworkers = 1\n"
                             "allow_clients = [\"127.0.0.0/8\"]\n"
                             "[admin]\nlisten = \"127.0.0.1:9090\"\n");
  ASSERT_NE(first.runtime, nullptr) << first.errors[0];
  RuntimeBuild second = Build(head +
                                  "[server]\nlisten = [\"127.0.0.1:3129\"]\nworkers = 2\n"
                                  "allow_clients = [\"10.0.0.0/8\"]\n"
                                  "[admin]\nlisten = \"127.0.0.1:9091\"\n"
                                  "[dns]\nservers = [\"127.0.0.1:5353\"]\n",
                              first.runtime);
  ASSERT_NE(second.runtime, nullptr) << second.errors[0];
  EXPECT_EQ(second.restart_needed, (std::vector<std::string>{"server.listen", "server.workers",
                                                             "admin.listen", "dns.servers"}));
  const Config& c = second.runtime->config;
  EXPECT_EQ(c.server.listen.at(0).port, 3128);
  EXPECT_EQ(c.server.workers, 1);
  EXPECT_EQ(c.admin.listen.port, 9090);
  EXPECT_TRUE(c.dns.servers.empty());
  // What a new connection reads applies at once.
  EXPECT_EQ(c.server.allow_clients, std::vector<std::string>{"10.0.0.0/8"});
  EXPECT_FALSE(second.runtime->ClientAllowed(*rules::IpAddress::Parse("127.0.0.1")));
  EXPECT_TRUE(second.runtime->ClientAllowed(*rules::IpAddress::Parse("10.1.2.3")));
}

TEST_F(RuntimeBuilderTest, AReloadReopensTheAccessLogFile) {
  MakeCa("a");
  const std::string config = std::string(kBase) + Profile("a") + "[log]\naccess = \"access.log\"\n";
  RuntimeBuild first = Build(config);
  ASSERT_NE(first.runtime, nullptr) << first.errors[0];
  // logrotate moves the file away, then signals.
  std::filesystem::rename(dir_ + "/access.log", dir_ + "/access.log.1");
  RuntimeBuild second = Build(config, first.runtime);
  ASSERT_NE(second.runtime, nullptr) << second.errors[0];
  EXPECT_NE(second.runtime->access_log, first.runtime->access_log);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/access.log"));

  // Standard output has nothing to reopen.
  const std::string to_stdout = std::string(kBase) + Profile("a");
  RuntimeBuild third = Build(to_stdout, second.runtime);
  RuntimeBuild fourth = Build(to_stdout, third.runtime);
  ASSERT_NE(fourth.runtime, nullptr);
  EXPECT_EQ(fourth.runtime->access_log, third.runtime->access_log);
}

TEST_F(RuntimeBuilderTest, UnreadableExtraTrustIsAConfigError) {
  RuntimeBuild b = Build("[inspection]\nextra_trust = [\"missing.pem\"]\n");
  EXPECT_EQ(b.runtime, nullptr);
  EXPECT_EQ(b.exit_code, 2);
  ASSERT_EQ(b.errors.size(), 1u);
  EXPECT_NE(b.errors[0].find("inspection.extra_trust: " + dir_ + "/missing.pem"), std::string::npos)
      << b.errors[0];
}

TEST_F(RuntimeBuilderTest, TheAdminTokenIsGeneratedAtStartAndReadAgainOnReload) {
  const std::string config = "[server]\nstate_dir = \"state\"\n";
  RuntimeBuild b = Build(config);
  ASSERT_NE(b.runtime, nullptr) << b.errors[0];
  const std::string path = dir_ + "/state/admin.token";
  EXPECT_EQ(b.runtime->admin_token.size(), 64u);
  EXPECT_NE(out_.str().find("created the admin token in " + path + " (mode 0600)"),
            std::string::npos)
      << out_.str();
  EXPECT_EQ(out_.str().find(b.runtime->admin_token), std::string::npos) << "the token was logged";

  // A reload reads the file again: a new token applies from then on.
  std::ofstream(path, std::ios::trunc) << "a-new-token-0123456789abcdef\n";
  RuntimeBuild again = Build(config, b.runtime);
  ASSERT_NE(again.runtime, nullptr) << again.errors[0];
  EXPECT_EQ(again.runtime->admin_token, "a-new-token-0123456789abcdef");
  EXPECT_EQ(out_.str().find("created the admin token"), std::string::npos);

  // A reload with an unusable token is rejected (the running one keeps its token).
  std::ofstream(path, std::ios::trunc) << "\n";
  RuntimeBuild broken = Build(config, again.runtime);
  EXPECT_EQ(broken.runtime, nullptr);
  EXPECT_EQ(broken.exit_code, 2);
  ASSERT_EQ(broken.errors.size(), 1u);
  EXPECT_NE(broken.errors[0].find("admin token: " + path + ": the admin token file is empty"),
            std::string::npos)
      << broken.errors[0];
}

TEST_F(RuntimeBuilderTest, AnAdminListenerOffLoopbackIsWarnedAboutAtStart) {
  RuntimeBuild b = Build("[admin]\nlisten = \"0.0.0.0:9090\"\n");
  ASSERT_NE(b.runtime, nullptr) << b.errors[0];
  ASSERT_EQ(b.warnings.size(), 1u);
  EXPECT_NE(b.warnings[0].find("admin.listen 0.0.0.0:9090 is not a loopback address"),
            std::string::npos)
      << b.warnings[0];
}

TEST_F(RuntimeBuilderTest, AConfiguredTokenFileOthersCanReadIsAConfigError) {
  std::ofstream(dir_ + "/token") << "operator-token-0123456789abcdef\n";
  ASSERT_EQ(::chmod((dir_ + "/token").c_str(), 0644), 0);
  RuntimeBuild b = Build("[admin]\ntoken_file = \"token\"\n");
  EXPECT_EQ(b.runtime, nullptr);
  EXPECT_EQ(b.exit_code, 2);
  ASSERT_EQ(b.errors.size(), 1u);
  EXPECT_NE(b.errors[0].find("admin.token_file: " + dir_ +
                             "/token: admin token file is readable by group or others (mode "
                             "0644); run: chmod 600 " +
                             dir_ + "/token"),
            std::string::npos)
      << b.errors[0];
  ASSERT_EQ(::chmod((dir_ + "/token").c_str(), 0600), 0);
  b = Build("[admin]\ntoken_file = \"token\"\n");
  ASSERT_NE(b.runtime, nullptr) << b.errors[0];
  EXPECT_EQ(b.runtime->admin_token, "operator-token-0123456789abcdef");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/mintgate-state/admin.token"));
}

TEST_F(RuntimeBuilderTest, AWorldWritableStateDirIsAConfigError) {
  ASSERT_EQ(::mkdir((dir_ + "/state").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((dir_ + "/state").c_str(), 0777), 0);
  RuntimeBuild b = Build("[server]\nstate_dir = \"state\"\n");
  EXPECT_EQ(b.runtime, nullptr);
  EXPECT_EQ(b.exit_code, 2);
  ASSERT_EQ(b.errors.size(), 1u);
  EXPECT_NE(b.errors[0].find(dir_ + "/state is writable by group or others (mode 0777)"),
            std::string::npos)
      << b.errors[0];
  // Nothing was generated in it.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state/ca"));
}

TEST_F(RuntimeBuilderTest, TheEmbeddedDefaultChecksItsStateDirToo) {
  // The embedded default's state_dir is ./mintgate-state.
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  ASSERT_EQ(::mkdir("mintgate-state", 0700), 0);
  ASSERT_EQ(::chmod("mintgate-state", 0757), 0);
  std::ostringstream out;
  RuntimeBuild b = BuildRuntime("", {}, out);
  std::filesystem::current_path(cwd);
  EXPECT_EQ(b.runtime, nullptr);
  EXPECT_EQ(b.exit_code, 2);
  ASSERT_EQ(b.errors.size(), 1u);
  EXPECT_EQ(b.errors[0],
            "server.state_dir: mintgate-state is writable by group or others (mode 0757), who "
            "could replace the generated CA key and the admin token; run: chmod 700 "
            "mintgate-state");
}

}  // namespace
}  // namespace mintgate::proxy
