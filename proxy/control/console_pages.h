// The migration console's pages and exports (SPEC §7, the console issue), rendered on the
// server from the documents the gateway already serves: the `ca audit` report (/audit), the
// readiness document (/readiness), the canaries in force and the schedule overlay's recent
// actions. Pure functions of those, so that what the console shows is what the JSON says.
// HTML without external assets, readable without JavaScript; every value from a file or the
// network is escaped.
#pragma once

#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "proxy/config/config.h"

namespace mintgate::proxy {

// A client that would break when a profile retires: seen recently with the profile, never
// seen trusting the profile that takes over.
struct AtRiskClient {
  std::string client;
  std::string last_seen;       // with the retiring profile, RFC 3339
  std::string successor_seen;  // "rejects (alert:unknown_ca)" or "never connected"
};

// What happens when one profile retires, and who would break.
struct Projection {
  std::string profile;
  std::string successor;  // the profile that signs after retire_at
  std::string retire_at;  // RFC 3339
  std::time_t retire_time = 0;
  std::vector<std::string> rules;  // rules that switch
  std::vector<AtRiskClient> at_risk;
  std::size_t ready = 0;  // clients seen recently with the profile that trust the successor
};

// Seen "recently": the window the projection looks back over.
inline constexpr std::time_t kRecentSeconds = 7 * 24 * 3600;

// The projections for every profile with a retire_at still ahead of `now`, by retire_at.
std::vector<Projection> ProjectCutovers(const nlohmann::json& audit,
                                        const nlohmann::json& readiness, std::time_t now);

struct ConsoleView {
  std::time_t now = 0;
  std::string gateway;      // the admin listener, "127.0.0.1:9090"
  nlohmann::json audit;     // the /audit report; null when there is none
  std::string audit_error;  // why there is no report (no configuration file, ...)
  nlohmann::json readiness;
  std::vector<CanaryConfig> canaries;                // in force, the overlay applied
  nlohmann::json actions = nlohmann::json::array();  // recent schedule actions, newest first
  std::string csrf;
  std::string flash;  // the outcome of the last action
  bool flash_error = false;
};

std::string RenderConsolePage(const ConsoleView& view);
// `message` (escaped) above the form: why the last attempt failed; "" for none.
std::string RenderLoginPage(const std::string& message);

// One action awaiting confirmation: its form fields are posted again with confirm=yes.
struct ConfirmView {
  std::string title;               // "Postpone the cutover of legacy"
  std::vector<std::string> facts;  // lines shown as a list (plain text, escaped)
  std::vector<std::pair<std::string, std::string>> fields;  // hidden fields to post
  std::string csrf;
  bool danger = false;  // a cutover brought to now or a rollback: styled as such
};
std::string RenderConfirmPage(const ConfirmView& view);

// A short page for an error answer (bad form, expired session...), with a link back.
std::string RenderMessagePage(const std::string& title, const std::string& message);

// The rules of the audit as CSV (RFC 4180, header row first) and the readiness clients, one
// row per profile and client. Cells that a spreadsheet would run as a formula (starting with
// = + - @ or a tab) are prefixed with an apostrophe: client names and SNI come from the
// network.
std::string AuditCsv(const nlohmann::json& audit);
std::string ReadinessCsv(const nlohmann::json& readiness);

// The console's script: live refresh of the readiness section, nothing else.
std::string_view ConsoleScript();

}  // namespace mintgate::proxy
