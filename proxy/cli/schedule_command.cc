#include "proxy/cli/schedule_command.h"

#include <pwd.h>
#include <unistd.h>

#include "proxy/config/gateway_config.h"
#include "proxy/config/rfc3339.h"
#include "proxy/config/schedule_overlay.h"
#include "proxy/control/text_table.h"
#include "rules/ca_resolver.h"

namespace mintgate::proxy {
namespace {

constexpr int kOk = 0;
constexpr int kUsageError = 2;
constexpr int kRuntimeFailure = 3;
constexpr std::size_t kRecentActions = 10;

// Who the audit log names: the effective user, as `sudo` leaves it.
std::string CliUser() {
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    return std::string("cli ") + pw->pw_name;
  }
  return "cli uid " + std::to_string(::geteuid());
}

// Why the options do not make one change (or --show), or "".
std::string OptionProblem(const CaScheduleArgs& a) {
  const bool profile_option = !a.retire_at.empty() || a.clear;
  const bool canary_option = a.percent.has_value() || !a.clients.empty() || a.no_fallback || a.stop;
  if (!a.profile.empty() && !a.canary.empty()) {
    return "one change at a time: --profile or --canary, not both";
  }
  if (a.show && (!a.profile.empty() || !a.canary.empty())) {
    return "--show prints the overlay; it takes no --profile or --canary";
  }
  if (a.profile.empty() && a.canary.empty()) {
    if (profile_option || canary_option || a.reset) {
      return "--retire-at, --clear and --reset need --profile P; --percent, --clients, "
             "--no-fallback, --stop and --reset need --canary CA";
    }
    return "";
  }
  if (!a.profile.empty()) {
    if (canary_option) return "--percent, --clients, --no-fallback and --stop go with --canary";
    if (int(!a.retire_at.empty()) + int(a.clear) + int(a.reset) != 1) {
      return "--profile " + a.profile + " needs one of --retire-at TIME, --clear or --reset";
    }
    return "";
  }
  if (profile_option) return "--retire-at and --clear go with --profile";
  if (int(a.percent.has_value()) + int(a.stop) + int(a.reset) != 1) {
    return "--canary " + a.canary + " needs one of --percent N (starts it), --stop or --reset";
  }
  if (!a.percent.has_value() && (!a.clients.empty() || a.no_fallback)) {
    return "--clients and --no-fallback go with --percent";
  }
  return "";
}

int Show(const GatewayConfig& g, std::ostream& out, std::ostream& err) {
  const std::string& state_dir = g.config.server.state_dir;
  const std::string path = ScheduleOverlayPath(state_dir);
  ScheduleOverlayLoad loaded = LoadScheduleOverlay(path);
  if (!loaded.ok()) {
    for (const ConfigError& e : loaded.errors) err << "error: " << e.ToString() << "\n";
    return kUsageError;
  }
  Config effective = g.config;
  ScheduleOverlayApplied applied = ApplyScheduleOverlay(loaded.overlay, path, effective);
  for (const std::string& w : applied.warnings) err << "warning: " << w << "\n";
  if (loaded.overlay.empty()) {
    out << "schedule overlay " << path << ": no changes (the schedule is the one in "
        << g.config.file << ")\n";
  } else {
    out << "schedule overlay " << path << ":\n";
    for (const std::string& line : applied.lines) out << "  " << line << "\n";
  }
  const std::string log = ScheduleAuditPath(state_dir);
  ScheduleAuditRead recent = ReadScheduleAudit(log, kRecentActions);
  if (!recent.error.empty()) err << "warning: " << recent.error << "\n";
  if (!recent.entries.empty()) {
    out << "\nrecent changes (" << log << "):\n";
    std::vector<std::vector<std::string>> table = {{"AT", "BY", "ACTION", "PROFILE", "FROM", "TO"}};
    for (const ScheduleAuditEntry& e : recent.entries) {
      table.push_back(
          {e.at, Cell(e.by), e.action, Cell(e.profile), Cell(e.old_value), Cell(e.new_value)});
    }
    PrintTable(out, table, "  ");
  }
  return kOk;
}

}  // namespace

int RunCaSchedule(const CaScheduleArgs& args, std::ostream& out, std::ostream& err) {
  if (std::string problem = OptionProblem(args); !problem.empty()) {
    err << "mintgate ca schedule: " << problem << "\n";
    return kUsageError;
  }
  std::optional<rules::Instant> retire_at;
  if (!args.retire_at.empty()) {
    retire_at = ParseRfc3339(args.retire_at);
    if (!retire_at) {
      err << "mintgate ca schedule: --retire-at \"" << args.retire_at
          << "\" is not an RFC 3339 time such as 2026-06-30T00:00:00+09:00\n";
      return kUsageError;
    }
  }
  // Changes are checked against the file as it is, without the overlay they replace; CA files
  // need not be readable by whoever schedules.
  GatewayConfigOptions options;
  options.load_cas = false;
  options.apply_schedule_overlay = false;
  GatewayConfig g = LoadGatewayConfig(args.config, options);
  if (!g.ok()) {
    for (const ConfigError& e : g.errors) err << "error: " << e.ToString() << "\n";
    return kUsageError;
  }
  if (args.profile.empty() && args.canary.empty()) return Show(g, out, err);

  const ScheduleStamp stamp{rules::Now(), CliUser()};
  const Config& file = g.config;
  ScheduleEdit edit = CommitScheduleEdit(file, [&](ScheduleOverlay& overlay) {
    if (!args.profile.empty()) {
      if (args.reset) return ResetRetireAt(overlay, file, args.profile, stamp);
      return SetRetireAt(overlay, file, args.profile, retire_at, stamp);
    }
    if (args.reset) return ResetCanary(overlay, file, args.canary, stamp);
    if (args.stop) return StopCanary(overlay, file, args.canary, stamp);
    return StartCanary(overlay, file, args.canary, *args.percent, args.clients, !args.no_fallback,
                       stamp);
  });
  for (const std::string& e : edit.errors) err << "mintgate ca schedule: " << e << "\n";
  if (!edit.changed) {
    if (!edit.ok()) return edit.write_failed ? kRuntimeFailure : kUsageError;
    out << edit.description << "\nnothing changed\n";
    return kOk;
  }
  const std::string& state_dir = file.server.state_dir;
  out << "schedule overlay " << ScheduleOverlayPath(state_dir) << ":\n  " << edit.description
      << "\n";
  if (edit.ok()) out << "recorded in " << ScheduleAuditPath(state_dir) << "\n";
  if (retire_at && *retire_at <= stamp.at) {
    out << "note: " << rules::FormatInstant(*retire_at) << " has passed: rules naming \""
        << args.profile << "\" sign with its successor from the reload on\n";
  }
  out << "A running gateway applies it on its next reload: kill -HUP <its pid>, or POST /reload "
         "to its admin listener (http://"
      << file.admin.listen.ToString() << "/reload, with the admin token).\n";
  return edit.write_failed ? kRuntimeFailure : kOk;
}

}  // namespace mintgate::proxy
