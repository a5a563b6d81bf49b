#include "proxy/auth/groups_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "proxy/auth/watched_file.h"

namespace mintgate::proxy::auth {
namespace {

using namespace std::chrono_literals;
using Groups = std::vector<std::string>;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class GroupsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "mintgate-groups-XXXXXX");
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "groups").string();
  }
  void TearDown() override {
    SetWatchedFileIntervalForTesting(kWatchedFileInterval);
    std::filesystem::remove_all(dir_);
  }

  // Replaces the file (a new file renamed over it), each version with its own modification
  // time so that a change is seen whatever the clock's granularity.
  void Write(const std::string& text, mode_t mode = 0644) {
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

TEST_F(GroupsFileTest, MembersWithWhitespaceCommentsAndEmptyEntries) {
  Write(
      "# groups\n"
      "\n"
      "finance: alice, bob\n"
      "  staff\t:alice,,carol ,  \r\n"
      "admins: dave # the on-call admin\n"
      "empty:\n"
      "domain users: erin\n");
  GroupsFile file(path_);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  EXPECT_TRUE(warnings.empty()) << warnings[0];  // 0644 is fine: no secrets here
  EXPECT_EQ(file.GroupsOf("alice"), (Groups{"finance", "staff"}));
  EXPECT_EQ(file.GroupsOf("bob"), Groups{"finance"});
  EXPECT_EQ(file.GroupsOf("carol"), Groups{"staff"});
  EXPECT_EQ(file.GroupsOf("dave"), Groups{"admins"});
  EXPECT_EQ(file.GroupsOf("erin"), Groups{"domain users"});
  EXPECT_TRUE(file.GroupsOf("").empty());
}

TEST_F(GroupsFileTest, AGroupListedTwiceMerges) {
  Write("finance: alice\nstaff: alice, bob\nfinance: bob, alice, carol\n");
  GroupsFile file(path_);
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_EQ(file.GroupsOf("alice"), (Groups{"finance", "staff"}));  // once each, file order
  EXPECT_EQ(file.GroupsOf("bob"), (Groups{"staff", "finance"}));
  EXPECT_EQ(file.GroupsOf("carol"), Groups{"finance"});
}

TEST_F(GroupsFileTest, MalformedLinesAreWarnedAboutAndSkipped) {
  Write(
      "finance: alice\n"       // 1
      "alice bob\n"            // 2: no ':'
      " : mallory\n"           // 3: no group
      "staff: alice\n"         // 4
      "apache: bob carol\n");  // 5: Apache's separator
  GroupsFile file(path_);
  std::vector<std::string> warnings;
  ASSERT_EQ(file.Load(&warnings), "");
  ASSERT_EQ(warnings.size(), 3u);
  const std::string where = "auth.groups_file \"" + path_ + "\": ";
  EXPECT_EQ(warnings[0], where + "line 2: expected \"group: user, user\"; skipped");
  EXPECT_EQ(warnings[1], where + "line 3: expected \"group: user, user\"; skipped");
  EXPECT_TRUE(Contains(warnings[2], "line 5 (apache): the member \"bob carol\" has a space"))
      << warnings[2];
  EXPECT_EQ(file.GroupsOf("alice"), (Groups{"finance", "staff"}));
  EXPECT_TRUE(file.GroupsOf("mallory").empty());
  EXPECT_TRUE(file.GroupsOf("bob").empty());
}

TEST_F(GroupsFileTest, AnUnknownUserHasNoGroups) {
  Write("finance: alice\n");
  GroupsFile file(path_);
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_TRUE(file.GroupsOf("mallory").empty());
  EXPECT_TRUE(file.GroupsOf("Alice").empty());  // names are exact
  EXPECT_TRUE(file.GroupsOf("finance").empty());
}

TEST_F(GroupsFileTest, AMissingFileIsReportedAndHasNoGroups) {
  SetWatchedFileIntervalForTesting(0ms);
  GroupsFile file(path_);
  EXPECT_EQ(file.Load(nullptr),
            "auth.groups_file \"" + path_ + "\": cannot read: No such file or directory");
  EXPECT_TRUE(file.GroupsOf("alice").empty());
  Write("finance: alice\n");
  EXPECT_EQ(file.GroupsOf("alice"), Groups{"finance"});
}

TEST_F(GroupsFileTest, AnEditIsPickedUpWithoutALoad) {
  SetWatchedFileIntervalForTesting(0ms);
  Write("finance: alice\n");
  GroupsFile file(path_);
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_EQ(file.GroupsOf("alice"), Groups{"finance"});
  Write("admins: mallory\n");
  EXPECT_EQ(file.GroupsOf("mallory"), Groups{"admins"});
  EXPECT_TRUE(file.GroupsOf("alice").empty());
}

TEST_F(GroupsFileTest, TheFileIsLookedAtOncePerInterval) {
  SetWatchedFileIntervalForTesting(1h);
  Write("finance: alice\n");
  GroupsFile file(path_);
  ASSERT_EQ(file.Load(nullptr), "");
  Write("admins: alice\n");
  EXPECT_EQ(file.GroupsOf("alice"), Groups{"finance"});
  ASSERT_EQ(file.Load(nullptr), "");
  EXPECT_EQ(file.GroupsOf("alice"), Groups{"admins"});
}

TEST_F(GroupsFileTest, ADeletedFileKeepsTheLastGoodContents) {
  SetWatchedFileIntervalForTesting(0ms);
  Write("finance: alice\n");
  GroupsFile file(path_);
  ASSERT_EQ(file.Load(nullptr), "");
  std::filesystem::remove(path_);
  EXPECT_EQ(file.GroupsOf("alice"), Groups{"finance"});
  const std::string why = file.Load(nullptr);
  EXPECT_TRUE(Contains(why, "auth.groups_file \"" + path_ + "\": cannot read")) << why;
  EXPECT_EQ(file.GroupsOf("alice"), Groups{"finance"});
}

TEST_F(GroupsFileTest, ConcurrentLookupsWhileTheFileIsRewritten) {
  SetWatchedFileIntervalForTesting(0ms);
  Write("finance: alice\n");
  GroupsFile file(path_);
  ASSERT_EQ(file.Load(nullptr), "");
  std::atomic<int> running{4};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 300; ++i) {
        if (file.GroupsOf("alice") != Groups{"finance"}) ++unexpected;
      }
      --running;
    });
  }
  for (int rewrites = 0; running.load() > 0 || rewrites < 5; ++rewrites) {
    Write("finance: alice\n" + std::string(rewrites % 5, '\n') + "x: y\n");
    if (rewrites % 3 == 0) {
      EXPECT_EQ(file.Load(nullptr), "");
    }
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
}

}  // namespace
}  // namespace mintgate::proxy::auth
