#include "proxy/control/console.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <sstream>

#include "proxy/config/admin_token.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/rfc3339.h"
#include "proxy/config/schedule_overlay.h"
#include "proxy/control/audit_command.h"
#include "proxy/control/console_pages.h"
#include "proxy/http/error_page.h"
#include "proxy/http/form.h"
#include "proxy/runtime/readiness.h"
#include "rules/ca_resolver.h"

namespace mintgate::proxy {
namespace {

using nlohmann::json;

struct Reply {
  int status = 200;
  std::string type = "text/html; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Every console answer closes its connection, is never cached, cannot be framed, and runs no
// script but the console's own. The referrer policy is same-origin, not no-referrer: with
// no-referrer, browsers send "Origin: null" on form posts, which the CSRF check refuses.
std::string Serialize(const Reply& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " +
                    std::string(StatusText(r.status)) + "\r\nContent-Type: " + r.type +
                    "\r\nContent-Length: " + std::to_string(r.body.size()) +
                    "\r\nCache-Control: no-store\r\nConnection: close\r\n"
                    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
                    "script-src 'self'; connect-src 'self'; img-src 'self' data:; form-action "
                    "'self'; frame-ancestors 'none'; base-uri 'none'\r\n"
                    "X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\n"
                    "Referrer-Policy: same-origin\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  return out + "\r\n" + r.body;
}

Reply Redirect(const std::string& location) {
  Reply r;
  r.status = 303;
  r.type = "text/plain";
  r.body = "see " + location + "\n";
  r.headers.emplace_back("Location", location);
  return r;
}

Reply Html(int status, std::string body) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

const HttpHeader* Header(const std::vector<HttpHeader>& headers, std::string_view name) {
  for (const HttpHeader& h : headers) {
    if (h.name.size() == name.size() &&
        std::equal(name.begin(), name.end(), h.name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return &h;
    }
  }
  return nullptr;
}

bool SameSecret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// A form posted from another site: the browser says so in Sec-Fetch-Site, or its Origin is
// not this listener (the Host header was checked to name it before we got here).
std::string CrossSiteProblem(const std::vector<HttpHeader>& headers) {
  if (const HttpHeader* site = Header(headers, "Sec-Fetch-Site");
      site != nullptr && site->value != "same-origin" && site->value != "none") {
    return "the form came from another site (Sec-Fetch-Site: " + site->value + ")";
  }
  if (const HttpHeader* origin = Header(headers, "Origin"); origin != nullptr) {
    const HttpHeader* host = Header(headers, "Host");
    if (host == nullptr || origin->value != "http://" + host->value) {
      return "the form came from another origin (" + origin->value + ")";
    }
  }
  return "";
}

std::string SessionCookie(const std::string& id, std::time_t max_age) {
  return std::string(Console::kCookie) + "=" + id + "; Path=/console; HttpOnly; SameSite=Strict" +
         "; Max-Age=" + std::to_string(max_age);
}

}  // namespace

Console::Console(std::string config_path, std::string gateway_name)
    : config_path_(std::move(config_path)), gateway_name_(std::move(gateway_name)) {}

bool Console::Handles(const std::string& path) {
  return path == "/" || path == "/console" || path.rfind("/console/", 0) == 0;
}

void Console::Expire() {
  const std::time_t now = Now();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    const Session& s = it->second;
    if (now - s.created >= kSessionSeconds || now - s.last_used >= kIdleSeconds) {
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = failures_.begin(); it != failures_.end();) {
    it = now - it->second.since >= kFailureWindow ? failures_.erase(it) : std::next(it);
  }
}

Console::Session* Console::SessionOf(const ConsoleRequest& request, std::string* id) {
  const std::string cookie = CookieValue(*request.headers, kCookie);
  if (cookie.empty()) return nullptr;
  const auto it = sessions_.find(cookie);
  if (it == sessions_.end()) return nullptr;
  it->second.last_used = Now();
  if (id != nullptr) *id = it->first;
  return &it->second;
}

std::string Console::Respond(const ConsoleRequest& request, const Runtime& runtime) {
  Expire();
  const std::string path = request.target.substr(0, request.target.find('?'));
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";
  if (!get && !post) {
    Reply r = Html(405, RenderMessagePage("Method not allowed", "Use GET or POST."));
    r.headers.emplace_back("Allow", "GET, POST");
    return Serialize(r);
  }
  if (path == "/" || path == "/console") return Serialize(Redirect("/console/"));
  if (path == "/console/console.js") {
    Reply r;
    r.type = "text/javascript; charset=utf-8";
    r.body = std::string(ConsoleScript());
    return Serialize(r);
  }
  Form form;
  if (post) {
    if (std::string problem = CrossSiteProblem(*request.headers); !problem.empty()) {
      return Serialize(Html(403, RenderMessagePage("Refused", "Refused: " + problem + ".")));
    }
    form = ParseForm(request.body);
  }
  if (path == "/console/login") {
    if (post) return Login(request, runtime, form);
    if (SessionOf(request, nullptr) != nullptr) return Serialize(Redirect("/console/"));
    return Serialize(Html(200, RenderLoginPage("")));
  }

  std::string id;
  Session* session = SessionOf(request, &id);
  if (session == nullptr) {
    if (get) return Serialize(Redirect("/console/login"));
    return Serialize(Html(403, RenderMessagePage("Session expired",
                                                 "Your console session has expired or was "
                                                 "closed: log in again, then repeat the action.")));
  }
  if (post && !SameSecret(form["csrf"], session->csrf)) {
    return Serialize(Html(403, RenderMessagePage("Refused",
                                                 "The form's CSRF token does not match this "
                                                 "session: reload the console and try again.")));
  }
  if (get && path == "/console/") return Page(*session, runtime);
  if (get && path.rfind("/console/export/", 0) == 0) {
    return Export(path.substr(std::string("/console/export/").size()), runtime);
  }
  if (post && path == "/console/logout") {
    sessions_.erase(id);
    Reply r = Redirect("/console/login");
    r.headers.emplace_back("Set-Cookie", SessionCookie("", 0));
    return Serialize(r);
  }
  if (post && path == "/console/confirm") return Confirm(*session, runtime, form);
  if (post && path == "/console/action") return Act(*session, request, runtime, form);
  return Serialize(Html(404, RenderMessagePage("Not found", "No console page " + path + ".")));
}

std::string Console::Login(const ConsoleRequest& request, const Runtime& runtime,
                           const Form& form) {
  const std::time_t now = Now();
  Failures& failures = failures_[request.peer];
  if (failures.count == 0) failures.since = now;
  if (failures.count >= kMaxLoginFailures) {
    Reply r = Html(429, RenderLoginPage("Too many failed attempts from " + request.peer +
                                        ": wait a few minutes."));
    r.headers.emplace_back("Retry-After", std::to_string(kFailureWindow));
    return Serialize(r);
  }
  const auto token = form.find("token");
  if (token == form.end() || !BearerTokenMatches("Bearer " + token->second, runtime.admin_token)) {
    ++failures.count;
    return Serialize(Html(401, RenderLoginPage("Wrong admin token.")));
  }
  failures_.erase(request.peer);
  if (sessions_.size() >= kMaxSessions) {
    // The least recently used goes.
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
      return a.second.last_used < b.second.last_used;
    });
    sessions_.erase(oldest);
  }
  const std::string id = GenerateAdminToken();
  Session& s = sessions_[id];
  s.csrf = GenerateAdminToken();
  s.created = now;
  s.last_used = now;
  s.peer = request.peer;
  Reply r = Redirect("/console/");
  r.headers.emplace_back("Set-Cookie", SessionCookie(id, kSessionSeconds));
  return Serialize(r);
}

json Console::Audit(std::string* error) const {
  if (config_path_.empty()) {
    *error = "the gateway runs the embedded default configuration: there is no file to audit";
    return nullptr;
  }
  std::ostringstream out, err;
  CaAuditArgs args;
  args.config = config_path_;
  args.json = true;
  RunCaAudit(args, out, err);
  if (out.str().empty()) {
    *error = err.str().empty() ? "the audit failed" : err.str();
    return nullptr;
  }
  try {
    return json::parse(out.str());
  } catch (const json::exception& e) {
    *error = std::string("the audit's report does not parse: ") + e.what();
    return nullptr;
  }
}

namespace {

// Every profile a leaf can come from, as /readiness lists them.
json ReadinessDocument(const Runtime& runtime, std::time_t now) {
  std::vector<std::string> profiles;
  for (const CaProfileConfig& ca : runtime.config.cas) profiles.push_back(ca.spec.name);
  if (runtime.config.inspection.enabled) profiles.push_back(runtime.config.inspection.default_ca);
  return runtime.readiness ? runtime.readiness->ToJson(now, profiles)
                           : ReadinessTracker::EmptyJson(now);
}

}  // namespace

std::string Console::Page(Session& session, const Runtime& runtime) {
  ConsoleView view;
  view.now = Now();
  view.gateway = gateway_name_;
  view.audit = Audit(&view.audit_error);
  view.readiness = ReadinessDocument(runtime, view.now);
  view.canaries = runtime.config.canaries;
  view.actions = RecentActions(runtime);
  view.csrf = session.csrf;
  view.flash = std::exchange(session.flash, "");
  view.flash_error = std::exchange(session.flash_error, false);
  return Serialize(Html(200, RenderConsolePage(view)));
}

std::string Console::Export(const std::string& file, const Runtime& runtime) {
  Reply r;
  std::string error;
  if (file == "audit.json" || file == "audit.csv") {
    const json audit = Audit(&error);
    if (audit.is_null()) {
      return Serialize(Html(404, RenderMessagePage("No audit", error)));
    }
    if (file == "audit.json") {
      r.type = "application/json";
      r.body = audit.dump(2) + "\n";
    } else {
      r.type = "text/csv; charset=utf-8";
      r.body = AuditCsv(audit);
    }
  } else if (file == "readiness.json" || file == "readiness.csv") {
    const json doc = ReadinessDocument(runtime, Now());
    if (file == "readiness.json") {
      r.type = "application/json";
      r.body = doc.dump(2) + "\n";
    } else {
      r.type = "text/csv; charset=utf-8";
      r.body = ReadinessCsv(doc);
    }
  } else {
    return Serialize(Html(404, RenderMessagePage("Not found", "No export " + file + ".")));
  }
  r.headers.emplace_back("Content-Disposition", "attachment; filename=\"mintgate-" + file + "\"");
  return Serialize(r);
}

json Console::RecentActions(const Runtime& runtime) const {
  json actions = json::array();
  const ScheduleAuditRead read =
      ReadScheduleAudit(ScheduleAuditPath(runtime.config.server.state_dir), 20);
  for (auto it = read.entries.rbegin(); it != read.entries.rend(); ++it) {
    auto value = [](const std::string& v) { return v.empty() ? json(nullptr) : json(v); };
    actions.push_back({{"at", it->at},
                       {"by", it->by},
                       {"action", it->action},
                       {"profile", it->profile},
                       {"old", value(it->old_value)},
                       {"new", value(it->new_value)}});
  }
  return actions;
}

namespace {

// A console form's time: RFC 3339, or what a datetime-local field or a person types
// ("2027-01-31T09:00", "2027-01-31 09:00", "2027-01-31"), read as UTC.
std::optional<rules::Instant> ParseWhen(std::string text) {
  while (!text.empty() && text.back() == ' ') text.pop_back();
  while (!text.empty() && text.front() == ' ') text.erase(0, 1);
  if (auto at = ParseRfc3339(text)) return at;
  if (text.size() == 10) return ParseRfc3339(text + "T00:00:00Z");
  if (text.size() == 16) return ParseRfc3339(text + ":00Z");
  if (text.size() == 19) return ParseRfc3339(text + "Z");
  return std::nullopt;
}

std::vector<std::string> SplitClients(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  for (char c : text + " ") {
    if (c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t') {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else {
      item += c;
    }
  }
  return out;
}

std::string Join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : separator) + i;
  return out;
}

const json* AuditProfile(const json& audit, const std::string& name) {
  if (!audit.is_object()) return nullptr;
  for (const json& p : audit["profiles"]) {
    if (p.value("name", "") == name) return &p;
  }
  return nullptr;
}

}  // namespace

// The change a form asks for, run against the overlay in `overlay` (a copy to preview, or the
// file's under its lock to commit).
struct Console::Change {
  std::string action;
  std::string profile;  // the profile, or the canary's CA
  std::optional<rules::Instant> retire_at;
  int percent = 0;
  std::vector<std::string> clients;
  bool fallback = true;
  std::string problem;  // a form that does not say what to do

  static Change FromForm(const Form& form) {
    Change c;
    auto field = [&form](const char* name) {
      const auto it = form.find(name);
      return it == form.end() ? std::string() : it->second;
    };
    c.action = field("action");
    c.profile = c.action.rfind("canary_", 0) == 0 ? field("ca") : field("profile");
    if (c.profile.empty()) c.problem = "the form names no CA profile";
    if (c.action == "retire_at") {
      c.retire_at = ParseWhen(field("retire_at"));
      if (!c.retire_at) {
        c.problem = "\"" + field("retire_at") +
                    "\" is not a time: write it as 2027-01-31T00:00:00Z (UTC) or with an offset";
      }
    } else if (c.action == "canary_start") {
      try {
        std::size_t used = 0;
        const std::string text = field("percent");
        c.percent = std::stoi(text, &used);
        if (used != text.size()) throw std::invalid_argument(text);
      } catch (const std::exception&) {
        c.problem = "the canary's percent must be a whole number from 1 to 100";
      }
      c.clients = SplitClients(field("clients"));
      c.fallback = field("fallback") != "no";
    } else if (c.action != "clear" && c.action != "reset" && c.action != "canary_stop" &&
               c.action != "canary_reset") {
      c.problem = "unknown action \"" + c.action + "\"";
    }
    return c;
  }

  std::vector<std::pair<std::string, std::string>> Fields() const {
    std::vector<std::pair<std::string, std::string>> f{{"action", action}};
    f.emplace_back(action.rfind("canary_", 0) == 0 ? "ca" : "profile", profile);
    if (retire_at) f.emplace_back("retire_at", rules::FormatInstant(*retire_at));
    if (action == "canary_start") {
      f.emplace_back("percent", std::to_string(percent));
      f.emplace_back("clients", Join(clients, " "));
      f.emplace_back("fallback", fallback ? "yes" : "no");
    }
    return f;
  }

  ScheduleEdit Run(ScheduleOverlay& overlay, const Config& file, const ScheduleStamp& stamp) const {
    if (action == "retire_at") return SetRetireAt(overlay, file, profile, retire_at, stamp);
    if (action == "clear") return SetRetireAt(overlay, file, profile, std::nullopt, stamp);
    if (action == "reset") return ResetRetireAt(overlay, file, profile, stamp);
    if (action == "canary_start") {
      return StartCanary(overlay, file, profile, percent, clients, fallback, stamp);
    }
    if (action == "canary_stop") return StopCanary(overlay, file, profile, stamp);
    return ResetCanary(overlay, file, profile, stamp);
  }
};

std::string Console::Refuse(const Change& change, ConfigLoadResult& file) const {
  if (!change.problem.empty()) {
    return Serialize(Html(400, RenderMessagePage("Nothing changed", change.problem + ".")));
  }
  if (config_path_.empty()) {
    return Serialize(
        Html(409, RenderMessagePage("Nothing changed",
                                    "The gateway runs the embedded default "
                                    "configuration: there is no schedule to change.")));
  }
  // Changes are checked against the file as it is now, without the overlay.
  file = ConfigLoader::LoadFile(config_path_);
  if (file.ok()) return "";
  std::vector<std::string> errors;
  for (const ConfigError& e : file.errors) errors.push_back(e.ToString());
  return Serialize(
      Html(409, RenderMessagePage("Nothing changed",
                                  "The configuration file has errors: " + Join(errors, "; "))));
}

std::string Console::Confirm(Session& session, const Runtime& runtime, const Form& form) {
  const Change change = Change::FromForm(form);
  ConfigLoadResult file;
  if (std::string refused = Refuse(change, file); !refused.empty()) return refused;
  // A dry run on a copy of the overlay: what would be refused is refused now, not after the
  // confirmation.
  const ScheduleOverlayLoad loaded =
      LoadScheduleOverlay(ScheduleOverlayPath(file.config.server.state_dir));
  ScheduleOverlay copy = loaded.overlay;
  const ScheduleEdit preview = change.Run(copy, file.config, {rules::Now(), "console"});
  if (!loaded.ok() || !preview.ok()) {
    std::vector<std::string> errors;
    for (const ConfigError& e : loaded.errors) errors.push_back(e.ToString());
    errors.insert(errors.end(), preview.errors.begin(), preview.errors.end());
    return Serialize(Html(400, RenderMessagePage("Nothing changed", Join(errors, "; "))));
  }
  if (!preview.changed) {
    session.flash = "Nothing to change: " + preview.description;
    return Serialize(Redirect("/console/#profiles"));
  }

  ConfirmView view;
  view.csrf = session.csrf;
  view.fields = change.Fields();
  std::string error;
  const json audit = Audit(&error);
  const json* profile = AuditProfile(audit, change.profile);
  const std::time_t now = Now();
  std::string rules;
  if (profile != nullptr) {
    for (const json& r : (*profile)["used_by"])
      rules += (rules.empty() ? "" : ", ") + r.get<std::string>();
  }
  const std::string old_retire = profile != nullptr ? profile->value("retire_at", "") : "";
  const bool passed =
      !old_retire.empty() && ParseRfc3339(old_retire) &&
      ParseRfc3339(old_retire)->time_since_epoch().count() <= static_cast<long long>(now);
  if (change.action == "retire_at") {
    const long long when = change.retire_at->time_since_epoch().count();
    view.title = std::string(old_retire.empty() ? "Schedule the cutover of "
                             : when > static_cast<long long>(now) &&
                                     old_retire < rules::FormatInstant(*change.retire_at)
                                 ? "Postpone the cutover of "
                                 : "Bring forward the cutover of ") +
                 change.profile;
    view.danger = when <= static_cast<long long>(now);
    // Who would break at the new date: the projection with the date changed.
    json changed = audit;
    for (json& p : changed["profiles"]) {
      if (p.value("name", "") == change.profile)
        p["retire_at"] = rules::FormatInstant(*change.retire_at);
    }
    std::size_t at_risk = 0;
    for (const Projection& p : ProjectCutovers(changed, ReadinessDocument(runtime, now), now)) {
      if (p.profile == change.profile) at_risk = p.at_risk.size();
    }
    view.facts.push_back("retire_at: " + (old_retire.empty() ? std::string("none") : old_retire) +
                         " -> " + rules::FormatInstant(*change.retire_at) +
                         (view.danger ? " (already passed: the switch happens at once)" : ""));
    if (!view.danger) {
      view.facts.push_back(std::to_string(at_risk) + (at_risk == 1 ? " client" : " clients") +
                           " seen in the last 7 days never trusted the successor and would "
                           "break then.");
    }
  } else if (change.action == "clear") {
    view.title = (passed ? "Roll back the cutover of " : "Cancel the cutover of ") + change.profile;
    view.danger = passed;
    view.facts.push_back(
        "retire_at: " + (old_retire.empty() ? std::string("none") : old_retire) + " -> none" +
        (passed ? ": its rules sign with " + change.profile + " again at once" : ""));
  } else if (change.action == "reset") {
    view.title = "Return " + change.profile + " to the configuration file's schedule";
  } else if (change.action == "canary_start") {
    view.title = "Start a canary for " + change.profile;
  } else if (change.action == "canary_stop") {
    view.title = "Stop the canary of " + change.profile;
    view.danger = true;
  } else {
    view.title = "Return the canary of " + change.profile + " to the configuration file";
  }
  view.facts.push_back(preview.description);
  if (!rules.empty())
    view.facts.push_back("Rules signing with " + change.profile + ": " + rules + ".");
  return Serialize(Html(200, RenderConfirmPage(view)));
}

std::string Console::Act(Session& session, const ConsoleRequest& request, const Runtime& runtime,
                         const Form& form) {
  (void)runtime;
  const Change change = Change::FromForm(form);
  const auto confirm = form.find("confirm");
  if (confirm == form.end() || confirm->second != "yes") {
    return Serialize(
        Html(400, RenderMessagePage("Nothing changed", "An action must be confirmed first.")));
  }
  ConfigLoadResult file;
  if (std::string refused = Refuse(change, file); !refused.empty()) return refused;
  const ScheduleStamp stamp{rules::Now(), "console " + request.peer};
  const ScheduleEdit edit = CommitScheduleEdit(file.config, [&](ScheduleOverlay& overlay) {
    return change.Run(overlay, file.config, stamp);
  });
  if (!edit.ok()) {
    session.flash = "Nothing changed: " + Join(edit.errors, "; ");
    session.flash_error = true;
    return Serialize(Redirect("/console/"));
  }
  if (!edit.changed) {
    session.flash = "Nothing to change: " + edit.description;
    return Serialize(Redirect("/console/"));
  }
  std::string outcome = "Done: " + edit.description + ".";
  if (reload_) {
    const ReloadOutcome reloaded = reload_();
    if (reloaded.ok) {
      outcome += " The gateway reloaded its configuration and applies it now.";
    } else {
      outcome +=
          " The schedule overlay was written, but the reload failed (the gateway keeps "
          "its previous configuration): " +
          Join(reloaded.errors, "; ");
      session.flash_error = true;
    }
  } else {
    outcome += " The gateway applies it at its next reload (SIGHUP).";
  }
  session.flash = outcome;
  return Serialize(Redirect("/console/"));
}

}  // namespace mintgate::proxy
