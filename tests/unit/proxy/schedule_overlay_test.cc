#include "proxy/config/schedule_overlay.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "proxy/config/config_loader.h"
#include "proxy/config/gateway_config.h"
#include "proxy/config/rfc3339.h"

namespace mintgate::proxy {
namespace {

rules::Instant At(const char* text) { return ParseRfc3339(text).value(); }

// A configuration file's text: "legacy" retires into "new-root", "other" has no successor;
// canaries of new-root, other and new-root again.
constexpr const char* kConfig = R"(
[server]
state_dir = "state"
[inspection]
default_ca = "legacy"
[ca.legacy]
cert = "legacy.pem"
key = "legacy.key"
retire_at = 2026-12-01T00:00:00Z
successor = "new-root"
[ca.new-root]
cert = "new.pem"
key = "new.key"
[ca.other]
cert = "other.pem"
key = "other.key"
[[canary]]
ca = "new-root"
clients = ["10.0.0.0/8"]
percent = 5
[[canary]]
ca = "other"
[[canary]]
ca = "new-root"
clients = ["192.168.0.0/16"]
percent = 50
fallback = false
)";

class ScheduleOverlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / "mgschedXXXXXX").string();
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    state_ = dir_ + "/state";
    path_ = ScheduleOverlayPath(state_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Config FileConfig(const std::string& text = kConfig) {
    ConfigLoadResult loaded = ConfigLoader::Parse(text, dir_ + "/m.toml");
    EXPECT_TRUE(loaded.ok()) << loaded.errors[0].ToString();
    return loaded.config;
  }
  void WriteOverlay(const std::string& text, mode_t mode = 0600) {
    std::filesystem::create_directories(state_);
    std::ofstream(path_, std::ios::trunc) << text;
    ::chmod(path_.c_str(), mode);
  }
  static mode_t Mode(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_mode & 07777;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  static const CaProfileConfig& Profile(const Config& c, const std::string& name) {
    for (const CaProfileConfig& ca : c.cas) {
      if (ca.spec.name == name) return ca;
    }
    ADD_FAILURE() << "no profile " << name;
    return c.cas.front();
  }

  const ScheduleStamp console_{At("2026-12-05T10:00:00Z"), "console 127.0.0.1"};
  std::string dir_, state_, path_;
};

TEST_F(ScheduleOverlayTest, PathsAreInTheStateDir) {
  EXPECT_EQ(ScheduleOverlayPath("/var/lib/mintgate"), "/var/lib/mintgate/schedule.toml");
  EXPECT_EQ(ScheduleAuditPath("/var/lib/mintgate"), "/var/lib/mintgate/schedule-audit.log");
}

TEST_F(ScheduleOverlayTest, AMissingFileIsAnEmptyOverlay) {
  ScheduleOverlayLoad loaded = LoadScheduleOverlay(path_);
  EXPECT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded.overlay.empty());
}

TEST_F(ScheduleOverlayTest, SaveAndLoadRoundTrip) {
  ScheduleOverlay overlay;
  overlay.retire_at["legacy"] = {At("2027-03-01T00:00:00Z"), console_, 0};
  overlay.retire_at["a.b c"] = {std::nullopt, {At("2026-12-06T00:00:00Z"), "cli root"}, 0};
  CanaryChange started;
  started.started = true;
  started.percent = 20;
  started.clients = {"10.0.0.0/8", "2001:db8::/32"};
  started.fallback = false;
  started.changed = {At("2026-12-07T00:00:00Z"), "console \"quoted\" \\ 管理者"};
  overlay.canaries["new-root"] = started;
  CanaryChange stopped;
  stopped.changed = console_;
  overlay.canaries["other"] = stopped;

  ASSERT_EQ(SaveScheduleOverlay(overlay, path_, dir_ + "/m.toml"), "");
  ScheduleOverlayLoad loaded = LoadScheduleOverlay(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.errors[0].ToString();
  const ScheduleOverlay& back = loaded.overlay;
  ASSERT_EQ(back.retire_at.size(), 2u);
  EXPECT_EQ(back.retire_at.at("legacy").retire_at, At("2027-03-01T00:00:00Z"));
  EXPECT_EQ(back.retire_at.at("legacy").changed.at, console_.at);
  EXPECT_EQ(back.retire_at.at("legacy").changed.by, "console 127.0.0.1");
  EXPECT_GT(back.retire_at.at("legacy").line, 0);
  EXPECT_FALSE(back.retire_at.at("a.b c").retire_at.has_value());
  EXPECT_EQ(back.retire_at.at("a.b c").changed.by, "cli root");
  ASSERT_EQ(back.canaries.size(), 2u);
  const CanaryChange& c = back.canaries.at("new-root");
  EXPECT_TRUE(c.started);
  EXPECT_EQ(c.percent, 20);
  EXPECT_EQ(c.clients, started.clients);
  EXPECT_FALSE(c.fallback);
  EXPECT_EQ(c.changed.at, At("2026-12-07T00:00:00Z"));
  EXPECT_EQ(c.changed.by, "console \"quoted\" \\ 管理者");
  EXPECT_FALSE(back.canaries.at("other").started);

  // Saved again, the same text: nothing is lost or reordered.
  const std::string text = Read(path_);
  ASSERT_EQ(SaveScheduleOverlay(back, path_, dir_ + "/m.toml"), "");
  EXPECT_EQ(Read(path_), text);
}

TEST_F(ScheduleOverlayTest, SaveIsAtomicMode0600WithAHeader) {
  const mode_t old_umask = ::umask(0);  // the file must not depend on the caller's umask
  ScheduleOverlay overlay;
  overlay.retire_at["legacy"] = {At("2027-03-01T00:00:00Z"), console_, 0};
  ASSERT_EQ(SaveScheduleOverlay(overlay, path_, "/etc/mintgate/mintgate.toml"), "");
  ::umask(old_umask);
  EXPECT_EQ(Mode(path_), 0600u);
  EXPECT_EQ(Mode(state_), 0700u);  // created for it, like the rest of state_dir
  const std::string text = Read(path_);
  EXPECT_EQ(text.rfind("# Written by mintgate", 0), 0u) << text;
  EXPECT_NE(text.find("never rewritten"), std::string::npos);
  EXPECT_NE(text.find("mintgate ca schedule -c /etc/mintgate/mintgate.toml --profile NAME --reset"),
            std::string::npos);
  EXPECT_NE(text.find("delete this file"), std::string::npos);
  // Only the file itself is left: the temporary file was renamed over it.
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(state_)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1u);
  // Replacing it keeps the mode even when the old file had another.
  ::chmod(path_.c_str(), 0640);
  ASSERT_EQ(SaveScheduleOverlay(overlay, path_, ""), "");
  EXPECT_EQ(Mode(path_), 0600u);
}

TEST_F(ScheduleOverlayTest, SaveReportsWhyItCannotWrite) {
  std::ofstream(dir_ + "/file") << "x";
  const std::string error = SaveScheduleOverlay({}, dir_ + "/file/schedule.toml", "");
  EXPECT_NE(error.find(dir_ + "/file"), std::string::npos) << error;
}

TEST_F(ScheduleOverlayTest, MalformedFilesGiveErrorsWithLineAndColumn) {
  struct Case {
    const char* text;
    int line;
    int column;
    const char* message;
  };
  const Case cases[] = {
      {"[ca.legacy\n", 1, 11, "TOML syntax"},
      {"[ca.legacy]\nretire_at = 2027-01-01\nchanged_at = 2026-01-01T00:00:00Z\n", 2, 13,
       "ca.legacy.retire_at: expected a date and time with a UTC offset, or \"none\""},
      {"[ca.legacy]\nretire_at = \"never\"\nchanged_at = 2026-01-01T00:00:00Z\n", 2, 13,
       "ca.legacy.retire_at"},
      {"[ca.legacy]\nretire_at = \"none\"\n", 1, 1, "[ca.legacy] needs changed_at"},
      {"[ca.legacy]\nchanged_at = 2026-01-01T00:00:00Z\n", 1, 1, "needs retire_at"},
      {"[ca.legacy]\nretire_at = \"none\"\nchanged_at = 2026-01-01T00:00:00Z\nretrie = 1\n", 4, 1,
       "unknown key 'retrie' in [ca.legacy]"},
      {"[canary.new]\nstate = \"running\"\nchanged_at = 2026-01-01T00:00:00Z\n", 2, 9,
       "canary.new.state: expected \"started\" or \"stopped\""},
      {"[canary.new]\nstate = \"started\"\npercent = 0\nchanged_at = 2026-01-01T00:00:00Z\n", 3, 11,
       "canary.new.percent: expected an integer between 1 and 100"},
      {"[canary.new]\nstate = \"started\"\npercent = 101\nchanged_at = 2026-01-01T00:00:00Z\n", 3,
       11, "between 1 and 100"},
      {"[canary.new]\nstate = \"started\"\nclients = [\"10.0.0.1/8\"]\n"
       "changed_at = 2026-01-01T00:00:00Z\n",
       3, 12, "canary.new.clients: \"10.0.0.1/8\": host bits"},
      {"[canary.new]\nstate = \"started\"\nfallback = \"yes\"\nchanged_at = 2026-01-01T00:00:00Z\n",
       3, 12, "canary.new.fallback: expected true or false"},
      {"version = 2\n", 1, 1, "unknown key 'version'"},
      {"ca = 1\n", 1, 6, "ca must hold [ca.NAME] tables"},
  };
  for (const Case& c : cases) {
    ScheduleOverlayLoad loaded = ParseScheduleOverlay(c.text, path_);
    ASSERT_FALSE(loaded.ok()) << c.text;
    const ConfigError& e = loaded.errors[0];
    EXPECT_EQ(e.file, path_);
    EXPECT_EQ(e.line, c.line) << c.text << e.ToString();
    EXPECT_EQ(e.column, c.column) << c.text << e.ToString();
    EXPECT_NE(e.message.find(c.message), std::string::npos) << e.ToString();
    EXPECT_EQ(e.ToString().rfind(path_ + ":" + std::to_string(c.line) + ":", 0), 0u);
  }
  // One bad entry voids the whole overlay: the good half could be without its rollback.
  ScheduleOverlayLoad half = ParseScheduleOverlay(
      "[ca.legacy]\nretire_at = \"none\"\nchanged_at = 2026-01-01T00:00:00Z\n"
      "[canary.new]\nstate = \"on\"\nchanged_at = 2026-01-01T00:00:00Z\n",
      path_);
  EXPECT_EQ(half.errors.size(), 1u);
  EXPECT_TRUE(half.overlay.empty());
}

TEST_F(ScheduleOverlayTest, AFileOthersMayWriteIsRefused) {
  WriteOverlay("", 0620);
  ScheduleOverlayLoad loaded = LoadScheduleOverlay(path_);
  ASSERT_EQ(loaded.errors.size(), 1u);
  EXPECT_NE(loaded.errors[0].message.find("writable by group or others (mode 0620)"),
            std::string::npos);
  EXPECT_NE(loaded.errors[0].message.find("run: chmod 600 " + path_), std::string::npos);
  ::chmod(path_.c_str(), 0644);  // readable is fine: the schedule is no secret
  EXPECT_TRUE(LoadScheduleOverlay(path_).ok());
}

TEST_F(ScheduleOverlayTest, ApplyReplacesAndClearsRetireAt) {
  Config c = FileConfig();
  ScheduleOverlay overlay;
  overlay.retire_at["legacy"] = {At("2027-03-01T00:00:00Z"), console_, 3};
  ScheduleOverlayApplied applied = ApplyScheduleOverlay(overlay, path_, c);
  EXPECT_TRUE(applied.warnings.empty());
  EXPECT_EQ(Profile(c, "legacy").retire_at, At("2027-03-01T00:00:00Z"));
  ASSERT_EQ(applied.lines.size(), 1u);
  EXPECT_EQ(applied.lines[0],
            "ca.legacy.retire_at = 2027-03-01T00:00:00Z (the file says 2026-12-01T00:00:00Z; "
            "console 127.0.0.1 at 2026-12-05T10:00:00Z)");

  c = FileConfig();
  overlay.retire_at["legacy"] = {std::nullopt, {At("2026-12-02T00:00:00Z"), "cli root"}, 3};
  applied = ApplyScheduleOverlay(overlay, path_, c);
  EXPECT_FALSE(Profile(c, "legacy").retire_at.has_value());
  ASSERT_EQ(applied.lines.size(), 1u);
  EXPECT_EQ(applied.lines[0],
            "ca.legacy.retire_at = none (the file says 2026-12-01T00:00:00Z; cli root at "
            "2026-12-02T00:00:00Z)");
  // Clearing a profile that never retires is allowed and says so.
  c = FileConfig();
  overlay.retire_at.clear();
  overlay.retire_at["other"] = {std::nullopt, console_, 3};
  applied = ApplyScheduleOverlay(overlay, path_, c);
  ASSERT_EQ(applied.lines.size(), 1u);
  EXPECT_NE(applied.lines[0].find("= none (the file says the same;"), std::string::npos);
}

TEST_F(ScheduleOverlayTest, ApplyGoesIntoTheRuleSet) {
  // Through LoadGatewayConfig: what `rules test`, `ca audit` and `run` start from.
  std::ofstream(dir_ + "/m.toml") << kConfig;
  ScheduleOverlay overlay;
  overlay.retire_at["legacy"] = {At("2020-01-01T00:00:00Z"), console_, 0};
  ASSERT_EQ(SaveScheduleOverlay(overlay, path_, ""), "");
  GatewayConfigOptions options;
  options.load_cas = false;
  GatewayConfig g = LoadGatewayConfig(dir_ + "/m.toml", options);
  ASSERT_TRUE(g.ok()) << g.errors[0].ToString();
  EXPECT_EQ(g.schedule_overlay_file, path_);
  ASSERT_EQ(g.schedule_overlay.size(), 1u);
  EXPECT_EQ(g.rules->ResolveCa("legacy", At("2025-01-01T00:00:00Z"), nullptr), "new-root");

  options.apply_schedule_overlay = false;
  g = LoadGatewayConfig(dir_ + "/m.toml", options);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g.schedule_overlay.empty());
  EXPECT_EQ(g.rules->ResolveCa("legacy", At("2025-01-01T00:00:00Z"), nullptr), "legacy");

  // A malformed overlay is an error, never silently ignored: it may hold a rollback.
  WriteOverlay("[ca.legacy]\nretire_at = 1\n");
  options.apply_schedule_overlay = true;
  g = LoadGatewayConfig(dir_ + "/m.toml", options);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.errors[0].file, path_);
  EXPECT_EQ(g.errors[0].line, 1);
  EXPECT_NE(g.errors.back().message.find("fix or remove this file"), std::string::npos);
}

TEST_F(ScheduleOverlayTest, CanaryStartTakesThePlaceOfTheFirstOfItsCa) {
  Config c = FileConfig();
  ScheduleOverlay overlay;
  CanaryChange change;
  change.started = true;
  change.percent = 20;
  change.clients = {"172.16.0.0/12"};
  change.changed = console_;
  overlay.canaries["new-root"] = change;
  ScheduleOverlayApplied applied = ApplyScheduleOverlay(overlay, path_, c);
  EXPECT_TRUE(applied.warnings.empty());
  ASSERT_EQ(c.canaries.size(), 2u);
  EXPECT_EQ(c.canaries[0].ca, "new-root");
  EXPECT_EQ(c.canaries[0].percent, 20);
  EXPECT_EQ(c.canaries[0].clients, std::vector<std::string>{"172.16.0.0/12"});
  EXPECT_TRUE(c.canaries[0].fallback);
  EXPECT_EQ(c.canaries[0].line, 0);
  EXPECT_EQ(c.canaries[1].ca, "other");
  ASSERT_EQ(applied.lines.size(), 1u);
  EXPECT_EQ(applied.lines[0],
            "canary.new-root = 20% of 172.16.0.0/12, fallback (the file says 5% of 10.0.0.0/8, "
            "fallback + 50% of 192.168.0.0/16, no fallback; console 127.0.0.1 at "
            "2026-12-05T10:00:00Z)");
}

TEST_F(ScheduleOverlayTest, CanaryStopRemovesEveryOneOfItsCa) {
  Config c = FileConfig();
  ScheduleOverlay overlay;
  CanaryChange change;
  change.changed = console_;
  overlay.canaries["new-root"] = change;
  ScheduleOverlayApplied applied = ApplyScheduleOverlay(overlay, path_, c);
  ASSERT_EQ(c.canaries.size(), 1u);
  EXPECT_EQ(c.canaries[0].ca, "other");
  ASSERT_EQ(applied.lines.size(), 1u);
  EXPECT_EQ(applied.lines[0].rfind("canary.new-root = stopped (the file says 5% of", 0), 0u)
      << applied.lines[0];
}

TEST_F(ScheduleOverlayTest, CanaryStartWithoutOneInTheFileGoesLast) {
  Config c = FileConfig();
  ScheduleOverlay overlay;
  CanaryChange change;
  change.started = true;
  change.percent = 100;
  change.changed = console_;
  overlay.canaries["legacy"] = change;
  ScheduleOverlayApplied applied = ApplyScheduleOverlay(overlay, path_, c);
  ASSERT_EQ(c.canaries.size(), 4u);
  EXPECT_EQ(c.canaries[3].ca, "legacy");
  EXPECT_EQ(c.canaries[3].clients, (std::vector<std::string>{"0.0.0.0/0", "::/0"}));
  ASSERT_EQ(applied.lines.size(), 1u);
  EXPECT_EQ(applied.lines[0].rfind(
                "canary.legacy = 100% of all clients, fallback (the file says none; ", 0),
            0u)
      << applied.lines[0];
}

TEST_F(ScheduleOverlayTest, EntriesThatNoLongerFitAreSkippedWithAWarning) {
  // The file changed after the overlay was written: profiles gone, a successor removed.
  Config c = FileConfig(
      "[inspection]\ndefault_ca = \"legacy\"\n"
      "[ca.legacy]\ncert = \"l.pem\"\nkey = \"l.key\"\n"
      "[[canary]]\nca = \"legacy\"\npercent = 10\n");
  const Config before = c;
  ScheduleOverlay overlay;
  overlay.retire_at["legacy"] = {At("2027-01-01T00:00:00Z"), console_, 8};
  overlay.retire_at["gone"] = {std::nullopt, console_, 12};
  CanaryChange stop;
  stop.changed = console_;
  overlay.canaries["gone"] = stop;
  CanaryChange bad;  // not from a file, so never checked: Apply checks it again
  bad.started = true;
  bad.percent = 0;
  bad.changed = console_;
  overlay.canaries["legacy"] = bad;
  ScheduleOverlayApplied applied = ApplyScheduleOverlay(overlay, path_, c);
  EXPECT_TRUE(applied.lines.empty());
  EXPECT_EQ(c.cas[0].retire_at, before.cas[0].retire_at);
  ASSERT_EQ(c.canaries.size(), 1u);
  EXPECT_EQ(c.canaries[0].percent, 10);
  ASSERT_EQ(applied.warnings.size(), 4u);
  const std::string& gone = applied.warnings[0];  // by name: "gone" before "legacy"
  EXPECT_EQ(gone.rfind("schedule overlay " + path_ +
                           ":12: ca.gone.retire_at: no CA profile "
                           "\"gone\" in " +
                           dir_ + "/m.toml",
                       0),
            0u)
      << gone;
  EXPECT_NE(gone.find("the entry is skipped and the file's value applies"), std::string::npos);
  EXPECT_NE(gone.find("mintgate ca schedule -c " + dir_ + "/m.toml --profile gone --reset"),
            std::string::npos);
  EXPECT_NE(applied.warnings[1].find(":8: ca.legacy.retire_at: CA profile \"legacy\" has no "
                                     "successor"),
            std::string::npos)
      << applied.warnings[1];
  EXPECT_NE(applied.warnings[2].find("canary.gone: no CA profile \"gone\""), std::string::npos);
  EXPECT_NE(applied.warnings[3].find("canary.legacy: canary percent must be between 1 and 100"),
            std::string::npos);

  // Through LoadGatewayConfig the gateway still starts: warnings, not errors.
  std::ofstream(dir_ + "/gone.toml")
      << "[server]\nstate_dir = \"state\"\n[inspection]\ndefault_ca = \"legacy\"\n"
         "[ca.legacy]\ncert = \"l.pem\"\nkey = \"l.key\"\n";
  overlay.canaries.erase("legacy");
  ASSERT_EQ(SaveScheduleOverlay(overlay, path_, ""), "");
  GatewayConfigOptions options;
  options.load_cas = false;
  GatewayConfig g = LoadGatewayConfig(dir_ + "/gone.toml", options);
  ASSERT_TRUE(g.ok()) << g.errors[0].ToString();
  EXPECT_EQ(g.schedule_overlay_warnings.size(), 3u);
  std::size_t in_warnings = 0;
  for (const std::string& w : g.warnings) {
    in_warnings += w.rfind("schedule overlay ", 0) == 0 ? 1 : 0;
  }
  EXPECT_EQ(in_warnings, 3u);
}

TEST_F(ScheduleOverlayTest, EditsAreValidatedAgainstTheFile) {
  const Config file = FileConfig();
  ScheduleOverlay overlay;
  auto error_of = [](const ScheduleEdit& e) { return e.errors.empty() ? "" : e.errors[0]; };

  ScheduleEdit e = SetRetireAt(overlay, file, "nope", At("2027-01-01T00:00:00Z"), console_);
  EXPECT_FALSE(e.ok());
  EXPECT_FALSE(e.changed);
  EXPECT_EQ(error_of(e), "no CA profile \"nope\" in " + dir_ +
                             "/m.toml (its profiles: \"legacy\", \"new-root\", \"other\")");
  e = SetRetireAt(overlay, file, "other", At("2027-01-01T00:00:00Z"), console_);
  EXPECT_NE(error_of(e).find("CA profile \"other\" has no successor in " + dir_ + "/m.toml"),
            std::string::npos)
      << error_of(e);
  e = SetRetireAt(overlay, file, "", At("2027-01-01T00:00:00Z"), console_);
  EXPECT_FALSE(e.ok());
  EXPECT_TRUE(overlay.empty()) << "a refused edit changes nothing";

  e = StartCanary(overlay, file, "new-root", 0, {}, true, console_);
  EXPECT_EQ(error_of(e), "canary percent must be between 1 and 100, got 0");
  e = StartCanary(overlay, file, "new-root", 101, {}, true, console_);
  EXPECT_FALSE(e.ok());
  e = StartCanary(overlay, file, "new-root", 10, {"10.0.0.0/8", "bogus"}, true, console_);
  EXPECT_EQ(error_of(e).rfind("canary clients: \"bogus\": ", 0), 0u) << error_of(e);
  e = StartCanary(overlay, file, "nope", 10, {}, true, console_);
  EXPECT_EQ(error_of(e).rfind("no CA profile \"nope\"", 0), 0u);
  e = StopCanary(overlay, file, "nope", console_);
  EXPECT_FALSE(e.ok());
  e = ResetRetireAt(overlay, file, "nope", console_);
  EXPECT_FALSE(e.ok());
  EXPECT_TRUE(overlay.empty());

  // The generated default may carry a canary, as in a [[canary]].
  e = StartCanary(overlay, file, "default", 10, {}, true, console_);
  EXPECT_TRUE(e.ok()) << error_of(e);
  // Clearing needs no successor.
  e = SetRetireAt(overlay, file, "other", std::nullopt, console_);
  EXPECT_TRUE(e.ok()) << error_of(e);
}

TEST_F(ScheduleOverlayTest, EditsDescribeTheChangeForTheAuditLog) {
  const Config file = FileConfig();
  ScheduleOverlay overlay;
  ScheduleEdit e = SetRetireAt(overlay, file, "legacy", At("2027-03-01T00:00:00Z"), console_);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e.changed);
  EXPECT_EQ(e.description,
            "ca.legacy.retire_at = 2027-03-01T00:00:00Z (the file says 2026-12-01T00:00:00Z; "
            "console 127.0.0.1 at 2026-12-05T10:00:00Z)");
  EXPECT_EQ(e.audit.at, "2026-12-05T10:00:00Z");
  EXPECT_EQ(e.audit.by, "console 127.0.0.1");
  EXPECT_EQ(e.audit.action, "retire_at");
  EXPECT_EQ(e.audit.profile, "legacy");
  EXPECT_EQ(e.audit.old_value, "2026-12-01T00:00:00Z");
  EXPECT_EQ(e.audit.new_value, "2027-03-01T00:00:00Z");

  // The old value is the one in force: the overlay's.
  e = SetRetireAt(overlay, file, "legacy", std::nullopt, console_);
  EXPECT_EQ(e.audit.action, "clear");
  EXPECT_EQ(e.audit.old_value, "2027-03-01T00:00:00Z");
  EXPECT_EQ(e.audit.new_value, "none");
  e = ResetRetireAt(overlay, file, "legacy", console_);
  EXPECT_TRUE(e.changed);
  EXPECT_EQ(e.audit.action, "reset");
  EXPECT_EQ(e.audit.old_value, "none");
  EXPECT_EQ(e.audit.new_value, "2026-12-01T00:00:00Z");
  EXPECT_TRUE(overlay.retire_at.empty());
  e = ResetRetireAt(overlay, file, "legacy", console_);
  EXPECT_TRUE(e.ok());
  EXPECT_FALSE(e.changed) << "nothing to reset";

  e = StartCanary(overlay, file, "new-root", 10, {}, false, console_);
  EXPECT_EQ(e.audit.action, "canary_start");
  EXPECT_EQ(e.audit.old_value, "5% of 10.0.0.0/8, fallback + 50% of 192.168.0.0/16, no fallback");
  EXPECT_EQ(e.audit.new_value, "10% of all clients, no fallback");
  e = StopCanary(overlay, file, "new-root", console_);
  EXPECT_EQ(e.audit.action, "canary_stop");
  EXPECT_EQ(e.audit.new_value, "stopped");
  e = ResetCanary(overlay, file, "new-root", console_);
  EXPECT_EQ(e.audit.action, "canary_reset");
  EXPECT_EQ(e.audit.old_value, "stopped");
  EXPECT_TRUE(overlay.empty());

  // A reset drops an entry whose profile left the file.
  overlay.retire_at["gone"] = {std::nullopt, console_, 0};
  e = ResetRetireAt(overlay, file, "gone", console_);
  EXPECT_TRUE(e.ok()) << e.errors[0];
  EXPECT_TRUE(e.changed);
  EXPECT_TRUE(overlay.empty());
}

TEST_F(ScheduleOverlayTest, AuditLogAppendsAndReadsTheLastEntries) {
  const std::string log = ScheduleAuditPath(state_);
  ScheduleAuditRead none = ReadScheduleAudit(log, 10);
  EXPECT_TRUE(none.entries.empty());
  EXPECT_EQ(none.error, "");

  const mode_t old_umask = ::umask(0);
  ASSERT_EQ(AppendScheduleAudit(log, {"2026-12-05T10:00:00Z", "console 127.0.0.1", "retire_at",
                                      "legacy", "2026-12-01T00:00:00Z", "2027-03-01T00:00:00Z"}),
            "");
  ::umask(old_umask);
  EXPECT_EQ(Mode(log), 0600u);
  // Free text with quotes, a line break, a control character and bytes that are not UTF-8:
  // still one line of valid JSON.
  ASSERT_EQ(AppendScheduleAudit(log, {"2026-12-05T11:00:00Z", "cli \"ro\\ot\"\n\x01 管 \xff",
                                      "clear", "legacy", "2027-03-01T00:00:00Z", "none"}),
            "");
  ASSERT_EQ(AppendScheduleAudit(
                log, {"2026-12-05T12:00:00Z", "cli root", "canary_reset", "new", "stopped", ""}),
            "");
  const std::string text = Read(log);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "{\"at\":\"2026-12-05T10:00:00Z\",\"by\":\"console 127.0.0.1\",\"action\":"
            "\"retire_at\",\"profile\":\"legacy\",\"old\":\"2026-12-01T00:00:00Z\",\"new\":"
            "\"2027-03-01T00:00:00Z\"}");
  EXPECT_NE(text.find("\"new\":null}"), std::string::npos);

  ScheduleAuditRead last = ReadScheduleAudit(log, 2);
  EXPECT_EQ(last.error, "");
  ASSERT_EQ(last.entries.size(), 2u);
  EXPECT_EQ(last.entries[0].action, "clear");
  EXPECT_EQ(last.entries[0].by, "cli \"ro\\ot\"   管 \xEF\xBF\xBD");
  EXPECT_EQ(last.entries[0].old_value, "2027-03-01T00:00:00Z");
  EXPECT_EQ(last.entries[1].action, "canary_reset");
  EXPECT_EQ(last.entries[1].profile, "new");
  EXPECT_EQ(last.entries[1].new_value, "");

  // A line that is not an entry (a hand edit, a torn write) is skipped and counted.
  std::ofstream(log, std::ios::app) << "{\"at\": \"2026-12-06T00:00:00Z\", \"action\": \"reset\", "
                                       "\"by\": \"\\u00e9\\ud83d\\ude00\"}\n"
                                    << "not json\n{\"at\":\"x\",\n";
  ScheduleAuditRead all = ReadScheduleAudit(log, 100);
  ASSERT_EQ(all.entries.size(), 4u);
  EXPECT_EQ(all.skipped, 2u);
  EXPECT_EQ(all.entries[3].by, "\xC3\xA9\xF0\x9F\x98\x80");  // é and U+1F600
}

TEST_F(ScheduleOverlayTest, CommitSavesAndLogsUnderTheStateDir) {
  Config file = FileConfig();
  file.server.state_dir = state_;
  ScheduleEdit e = CommitScheduleEdit(file, [&](ScheduleOverlay& overlay) {
    return SetRetireAt(overlay, file, "legacy", At("2027-03-01T00:00:00Z"), console_);
  });
  ASSERT_TRUE(e.ok()) << e.errors[0];
  EXPECT_TRUE(e.changed);
  ScheduleOverlayLoad loaded = LoadScheduleOverlay(path_);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded.overlay.retire_at.at("legacy").retire_at, At("2027-03-01T00:00:00Z"));
  EXPECT_EQ(ReadScheduleAudit(ScheduleAuditPath(state_), 10).entries.size(), 1u);

  // Refused and empty edits write nothing.
  const std::string text = Read(path_);
  e = CommitScheduleEdit(file, [&](ScheduleOverlay& overlay) {
    return SetRetireAt(overlay, file, "other", At("2027-03-01T00:00:00Z"), console_);
  });
  EXPECT_FALSE(e.ok());
  EXPECT_FALSE(e.write_failed);
  e = CommitScheduleEdit(file, [&](ScheduleOverlay& overlay) {
    return ResetCanary(overlay, file, "other", console_);
  });
  EXPECT_TRUE(e.ok());
  EXPECT_FALSE(e.changed);
  EXPECT_EQ(Read(path_), text);
  EXPECT_EQ(ReadScheduleAudit(ScheduleAuditPath(state_), 10).entries.size(), 1u);

  // A malformed overlay is reported, not overwritten.
  WriteOverlay("[ca.legacy\n");
  e = CommitScheduleEdit(file, [&](ScheduleOverlay& overlay) {
    return SetRetireAt(overlay, file, "legacy", std::nullopt, console_);
  });
  ASSERT_FALSE(e.ok());
  EXPECT_FALSE(e.write_failed);
  EXPECT_EQ(e.errors[0].rfind(path_ + ":1:", 0), 0u) << e.errors[0];
  EXPECT_EQ(Read(path_), "[ca.legacy\n");
}

}  // namespace
}  // namespace mintgate::proxy
