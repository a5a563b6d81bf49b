// The schedule overlay: changes to the CA migration schedule (a profile's retire_at, the
// canaries) made from the console or `mintgate ca schedule`, kept in state_dir/schedule.toml
// and applied on top of the configuration file, which is never rewritten (its comments and
// layout are the administrator's). Every change is also appended to
// state_dir/schedule-audit.log, one JSON object per line.
//
// An entry is validated twice: when it is written, against the configuration file (an unknown
// profile, a retire_at without a successor, bad CIDRs are refused), and when it is applied,
// because the file may have changed since: an entry that no longer fits is skipped with a
// warning and the file's value applies, so a change of the file never stops the gateway from
// starting. A malformed overlay file is an error, though: ignored, it could lose a rollback.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "rules/rule.h"

namespace mintgate::proxy {

// Who made a change, and when.
struct ScheduleStamp {
  rules::Instant at{};
  std::string by;  // free text: "console 127.0.0.1", "cli root"
};

// A CA profile's retire_at as the overlay sets it.
struct RetireAtChange {
  std::optional<rules::Instant> retire_at;  // nullopt: cleared, no retirement (a rollback)
  ScheduleStamp changed;
  int line = 0;  // of its table in the overlay file; 0 when not read from a file
};

// Every [[canary]] of one CA as the overlay sets them: stopped (none), or one canary.
struct CanaryChange {
  bool started = false;
  int percent = 100;  // 1..100 when started
  std::vector<std::string> clients{"0.0.0.0/0", "::/0"};
  bool fallback = true;
  ScheduleStamp changed;
  int line = 0;
};

struct ScheduleOverlay {
  std::map<std::string, RetireAtChange> retire_at;  // by CA profile
  std::map<std::string, CanaryChange> canaries;     // by the canary's CA profile
  bool empty() const { return retire_at.empty() && canaries.empty(); }
};

// state_dir + "/schedule.toml".
std::string ScheduleOverlayPath(const std::string& state_dir);
// state_dir + "/schedule-audit.log".
std::string ScheduleAuditPath(const std::string& state_dir);

struct ScheduleOverlayLoad {
  ScheduleOverlay overlay;
  std::vector<ConfigError> errors;  // with the overlay file's line and column
  bool ok() const { return errors.empty(); }
};

// Reads an overlay file. A missing file is an empty overlay. A malformed one (TOML syntax,
// unknown keys, wrong types, bad instants or CIDRs, percent outside 1..100), or one that group
// or others may write (they could move a cutover), gives errors and an empty overlay.
ScheduleOverlayLoad LoadScheduleOverlay(const std::string& path);
// The same from text, as if read from `path` (tests).
ScheduleOverlayLoad ParseScheduleOverlay(const std::string& text, const std::string& path);

// The file's text: a header saying mintgate wrote it and how to undo it, then one table per
// entry. `config_file` is named in the header ("" to leave it out).
std::string FormatScheduleOverlay(const ScheduleOverlay& overlay, const std::string& config_file);

// Writes `overlay` to `path` atomically: a temporary file (mode 0600) in the same folder,
// synced, then renamed over `path`; the folder is created (0700) when missing. Returns "" or
// why it could not.
std::string SaveScheduleOverlay(const ScheduleOverlay& overlay, const std::string& path,
                                const std::string& config_file);

// What applying an overlay did.
struct ScheduleOverlayApplied {
  // One line per entry applied, e.g. "ca.new-root.retire_at = 2027-03-01T00:00:00Z (the file
  // says 2026-12-01T00:00:00Z; console 127.0.0.1 at 2026-12-05T10:00:00Z)".
  std::vector<std::string> lines;
  // One per entry skipped because it no longer fits the configuration, naming the entry, why,
  // and how to drop it.
  std::vector<std::string> warnings;
};

// Applies `overlay` to `config`, the configuration as its file says: a retire_at change
// replaces the profile's retire_at (cleared: none); a canary change for CA X replaces every
// [[canary]] whose ca is X (stopped: they are removed; started: one canary in the position of
// the first of them, or at the end). `overlay_file` names the entries in warnings.
ScheduleOverlayApplied ApplyScheduleOverlay(const ScheduleOverlay& overlay,
                                            const std::string& overlay_file, Config& config);

// One line of the audit log.
struct ScheduleAuditEntry {
  std::string at;       // RFC 3339
  std::string by;       // as ScheduleStamp::by
  std::string action;   // retire_at | clear | reset | canary_start | canary_stop | canary_reset
  std::string profile;  // the CA profile (for canary actions, the canary's CA)
  // The values in force before and after, as the gateway reads them: "2027-03-01T00:00:00Z",
  // "none", "10% of 10.0.0.0/8, fallback", "stopped". "" when unknown (JSON null).
  std::string old_value;
  std::string new_value;
};

// Appends one JSON line to `path` (created 0600; each line is written with a single write()
// on a file opened O_APPEND, so concurrent writers do not interleave). Returns "" or why not.
std::string AppendScheduleAudit(const std::string& path, const ScheduleAuditEntry& entry);

struct ScheduleAuditRead {
  std::vector<ScheduleAuditEntry> entries;  // oldest first
  std::size_t skipped = 0;                  // lines that were not an entry
  std::string error;                        // "" when read (a missing file is no entry)
};
// The last `max_entries` entries of the audit log at `path`.
ScheduleAuditRead ReadScheduleAudit(const std::string& path, std::size_t max_entries);

// One change to the overlay, checked against the configuration file.
struct ScheduleEdit {
  std::vector<std::string> errors;  // why it was refused; empty when applied to the overlay
  // The errors are the machine's (the overlay or its audit log could not be written), not the
  // request's: a runtime failure rather than bad input.
  bool write_failed = false;
  bool changed = false;      // false: refused, or a reset with nothing to reset
  std::string description;   // what the change does, as one line for the operator
  ScheduleAuditEntry audit;  // for AppendScheduleAudit when changed
  bool ok() const { return errors.empty(); }
};

// Each validates against `file_config` (ConfigLoader's result for the configuration file,
// without any overlay) and changes `overlay` only when valid. `retire_at` nullopt clears it
// (no retirement). A reset drops the entry, back to the file's value; it needs no valid
// profile, so that an entry the file no longer fits can be removed.
ScheduleEdit SetRetireAt(ScheduleOverlay& overlay, const Config& file_config,
                         const std::string& profile, std::optional<rules::Instant> retire_at,
                         const ScheduleStamp& stamp);
ScheduleEdit ResetRetireAt(ScheduleOverlay& overlay, const Config& file_config,
                           const std::string& profile, const ScheduleStamp& stamp);
// `clients` empty: every client (0.0.0.0/0 and ::/0), as a [[canary]] without clients.
ScheduleEdit StartCanary(ScheduleOverlay& overlay, const Config& file_config, const std::string& ca,
                         int percent, std::vector<std::string> clients, bool fallback,
                         const ScheduleStamp& stamp);
ScheduleEdit StopCanary(ScheduleOverlay& overlay, const Config& file_config, const std::string& ca,
                        const ScheduleStamp& stamp);
ScheduleEdit ResetCanary(ScheduleOverlay& overlay, const Config& file_config, const std::string& ca,
                         const ScheduleStamp& stamp);

// The whole transaction, for the console and the CLI: under an exclusive lock
// (state_dir/schedule.lock, so that two writers do not lose each other's change), loads the
// overlay of `file_config`'s state_dir, runs `edit` on it and, when it changed something,
// saves it and appends edit.audit to the audit log. A malformed overlay file, or one that
// cannot be written, comes back in errors (and nothing is changed).
ScheduleEdit CommitScheduleEdit(const Config& file_config,
                                const std::function<ScheduleEdit(ScheduleOverlay&)>& edit);

}  // namespace mintgate::proxy
