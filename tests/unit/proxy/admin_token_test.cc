#include "proxy/config/admin_token.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "tls/tls_error.h"

namespace mintgate::proxy {
namespace {

class AdminTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / "mgtokXXXXXX").string();
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    config_.server.state_dir = dir_ + "/state";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::trunc) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }
  static mode_t Mode(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_mode & 07777;
  }
  // The message of the LoadError `fn` throws ("" when it throws none).
  template <class Fn>
  static std::string ErrorOf(Fn fn) {
    try {
      fn();
    } catch (const tls::LoadError& e) {
      return e.what();
    }
    return "";
  }

  std::string dir_;
  Config config_;
};

TEST_F(AdminTokenTest, GeneratedTokensAre64HexCharactersAndDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    const std::string token = GenerateAdminToken();
    ASSERT_EQ(token.size(), 64u);
    EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos) << token;
    seen.insert(token);
  }
  EXPECT_EQ(seen.size(), 20u);
}

TEST_F(AdminTokenTest, TheDefaultIsGeneratedOnce0600InStateDirAndReused) {
  EXPECT_EQ(AdminTokenPath(config_), dir_ + "/state/admin.token");
  // state_dir does not exist yet: it is made 0700.
  const AdminToken first = EnsureAdminToken(config_);
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.path, dir_ + "/state/admin.token");
  EXPECT_EQ(first.token.size(), 64u);
  EXPECT_EQ(Mode(first.path), 0600u);
  EXPECT_EQ(Mode(dir_ + "/state"), 0700u);
  std::ifstream in(first.path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, first.token);

  const AdminToken again = EnsureAdminToken(config_);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.token, first.token);
}

TEST_F(AdminTokenTest, AGeneratedTokenIsCreated0600WhateverTheUmask) {
  const mode_t old = ::umask(0);
  const AdminToken token = EnsureAdminToken(config_);
  ::umask(old);
  EXPECT_EQ(Mode(token.path), 0600u);
}

TEST_F(AdminTokenTest, AnExistingGeneratedTokenWithAWideModeIsRefused) {
  const AdminToken first = EnsureAdminToken(config_);
  ::chmod(first.path.c_str(), 0644);
  const std::string error = ErrorOf([&] { EnsureAdminToken(config_); });
  EXPECT_NE(error.find("admin token file is readable by group or others (mode 0644); run: "
                       "chmod 600 " +
                       first.path),
            std::string::npos)
      << error;
}

TEST_F(AdminTokenTest, AConfiguredTokenFileIsReadNeverCreated) {
  config_.admin.token_file = dir_ + "/token";
  EXPECT_EQ(AdminTokenPath(config_), dir_ + "/token");
  std::string error = ErrorOf([&] { EnsureAdminToken(config_); });
  EXPECT_NE(error.find(dir_ + "/token: cannot read: No such file or directory"), std::string::npos)
      << error;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/token"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state"));

  Write("token", "  my-operator-chosen-token-1234 \r\nsecond line ignored\n", 0600);
  const AdminToken token = EnsureAdminToken(config_);
  EXPECT_FALSE(token.created);
  EXPECT_EQ(token.token, "my-operator-chosen-token-1234");
  ::chmod((dir_ + "/token").c_str(), 0400);
  EXPECT_EQ(EnsureAdminToken(config_).token, "my-operator-chosen-token-1234");
}

TEST_F(AdminTokenTest, AConfiguredTokenFileOthersCanReadIsRefused) {
  config_.admin.token_file = Write("token", "my-operator-chosen-token-1234\n", 0644);
  std::string error = ErrorOf([&] { EnsureAdminToken(config_); });
  EXPECT_NE(error.find("admin token file is readable by group or others (mode 0644); run: chmod "
                       "600 " +
                       config_.admin.token_file),
            std::string::npos)
      << error;
  ::chmod(config_.admin.token_file.c_str(), 0640);
  error = ErrorOf([&] { EnsureAdminToken(config_); });
  EXPECT_NE(error.find("(mode 0640)"), std::string::npos) << error;
  // A client reading its own copy does not judge the mode.
  EXPECT_EQ(ReadAdminToken(config_.admin.token_file, false), "my-operator-chosen-token-1234");
}

TEST_F(AdminTokenTest, EmptyShortOrStrangeTokensAreRefused) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c :
       {Case{"", "the admin token file is empty"}, Case{"\n\n", "the admin token file is empty"},
        Case{"   \n", "the admin token file is empty"},
        Case{"short\n", "must have 16 to 1024 characters"},
        Case{"a token with spaces inside\n", "visible ASCII"},
        Case{"t\xc3\xb6ken-0123456789abcdef\n", "visible ASCII"}}) {
    const std::string path = Write("token", c.text, 0600);
    const std::string error = ErrorOf([&] { ReadAdminToken(path); });
    EXPECT_NE(error.find(path + ": "), std::string::npos) << error;
    EXPECT_NE(error.find(c.error), std::string::npos) << c.text << ": " << error;
  }
  const std::string error = ErrorOf([&] { ReadAdminToken(dir_); });
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
}

TEST_F(AdminTokenTest, BearerMatching) {
  const std::string token = GenerateAdminToken();
  EXPECT_TRUE(BearerTokenMatches("Bearer " + token, token));
  EXPECT_TRUE(BearerTokenMatches("bearer " + token, token));
  EXPECT_TRUE(BearerTokenMatches("BEARER \t" + token + " ", token));
  EXPECT_FALSE(BearerTokenMatches("", token));
  EXPECT_FALSE(BearerTokenMatches("Bearer", token));
  EXPECT_FALSE(BearerTokenMatches("Bearer ", token));
  EXPECT_FALSE(BearerTokenMatches(token, token));
  EXPECT_FALSE(BearerTokenMatches("Bearer" + token, token));
  EXPECT_FALSE(BearerTokenMatches("Basic " + token, token));
  EXPECT_FALSE(BearerTokenMatches("Bearer " + token.substr(1), token));
  EXPECT_FALSE(BearerTokenMatches("Bearer " + token + "x", token));
  EXPECT_FALSE(BearerTokenMatches("Bearer " + GenerateAdminToken(), token));
  EXPECT_FALSE(BearerTokenMatches("Bearer ", ""));  // no token: nothing matches
  EXPECT_FALSE(BearerTokenMatches("Bearer x", ""));
}

}  // namespace
}  // namespace mintgate::proxy
