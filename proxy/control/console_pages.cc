#include "proxy/control/console_pages.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "proxy/config/rfc3339.h"
#include "proxy/http/error_page.h"
#include "rules/ca_resolver.h"

namespace mintgate::proxy {
namespace {

using nlohmann::json;

std::string H(std::string_view text) { return EscapeHtml(text); }

// A string member, or "" when absent or null.
std::string Str(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::time_t TimeOf(const std::string& rfc3339) {
  const auto at = ParseRfc3339(rfc3339);
  return at ? static_cast<std::time_t>(at->time_since_epoch().count()) : 0;
}

std::string Rfc3339(std::time_t t) {
  return rules::FormatInstant(rules::Instant{std::chrono::seconds{t}});
}

// "in 3 days", "5 hours ago", "now".
std::string Relative(std::time_t when, std::time_t now) {
  const long long d = static_cast<long long>(when) - static_cast<long long>(now);
  const long long a = d < 0 ? -d : d;
  std::string amount;
  if (a < 60) return "now";
  if (a < 3600) {
    amount = std::to_string(a / 60) + (a / 60 == 1 ? " minute" : " minutes");
  } else if (a < 2 * 86400) {
    amount = std::to_string(a / 3600) + (a / 3600 == 1 ? " hour" : " hours");
  } else {
    amount = std::to_string(a / 86400) + " days";
  }
  return d > 0 ? "in " + amount : amount + " ago";
}

// A time cell: the instant, and how far it is, in a <time> element.
std::string TimeCell(const std::string& rfc3339, std::time_t now) {
  if (rfc3339.empty()) return "<span class=\"none\">-</span>";
  const std::time_t t = TimeOf(rfc3339);
  return "<time datetime=\"" + H(rfc3339) + "\">" + H(rfc3339) + "</time>" +
         (t == 0 ? std::string() : " <small>(" + Relative(t, now) + ")</small>");
}

std::string Badge(const std::string& status) {
  return "<span class=\"badge s-" + H(status) + "\">" + H(status) + "</span>";
}

std::string Hidden(const std::string& name, const std::string& value) {
  return "<input type=\"hidden\" name=\"" + H(name) + "\" value=\"" + H(value) + "\">";
}

// The "T -> target" of an audit row's switches.
std::pair<std::string, std::string> SplitSwitch(const std::string& switches) {
  const std::size_t arrow = switches.find(" -> ");
  if (arrow == std::string::npos) return {switches, ""};
  return {switches.substr(0, arrow), switches.substr(arrow + 4)};
}

const json* FindProfile(const json& readiness, const std::string& name) {
  if (!readiness.is_object() || !readiness.contains("profiles")) return nullptr;
  for (const json& p : readiness["profiles"]) {
    if (Str(p, "profile") == name) return &p;
  }
  return nullptr;
}

const json* FindClient(const json* profile, const std::string& client) {
  if (profile == nullptr) return nullptr;
  for (const json& c : (*profile)["clients"]) {
    if (Str(c, "client") == client) return &c;
  }
  return nullptr;
}

std::string Evidence(const json& client) {
  std::string e = Str(client, "evidence");
  const json& seen =
      client.value(Str(client, "status") == "trusts" ? "last_trusted" : "last_rejected", json());
  if (e == "alert" && seen.is_object() && seen["alert"].is_string()) {
    e += ":" + seen["alert"].get<std::string>();
  }
  return e;
}

constexpr const char* kStyle =
    "body{font-family:system-ui,sans-serif;margin:0;line-height:1.4;color:#1d232a}"
    "header{background:#1d3b5a;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;"
    "gap:.4em 1.2em;align-items:baseline}header h1{font-size:1.15em;margin:0}"
    "header a{color:#dce9f5}header form{margin-left:auto}"
    "main{max-width:84em;margin:0 auto;padding:0 1em 3em}"
    "section{margin-top:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ccd;padding-bottom:.2em}"
    "h3{font-size:1.05em;margin:1.2em 0 .4em}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.92em}"
    "th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #e3e6ea;vertical-align:top}"
    "th{background:#f3f5f7;white-space:nowrap}code{font-size:.9em;word-break:break-all}"
    ".badge{display:inline-block;border-radius:.7em;padding:0 .55em;font-size:.85em;"
    "font-weight:600;color:#fff;background:#687481}"
    ".s-ok,.s-trusts{background:#2f7d32}.s-migrate{background:#b26a00}"
    ".s-expiring{background:#c75000}.s-error,.s-rejects{background:#b3261e}"
    ".s-pending,.s-unknown{background:#687481}"
    ".flash{padding:.6em 1em;margin-top:1em;border-radius:6px;background:#e7f3e8}"
    ".flash.err,.errors{background:#fbe9e7}.errors{padding:.6em 1em;border-radius:6px}"
    ".overlay{background:#fff6e0;padding:.5em 1em;border-radius:6px}"
    ".cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ccd;border-radius:8px;"
    "padding:.6em 1em;flex:1 1 22em;min-width:0}.card table{width:100%}"
    "form.inline{display:inline-flex;flex-wrap:wrap;gap:.3em;align-items:center;margin:.2em 0}"
    "input[type=text],input[type=number],input[type=password]{font:inherit;padding:.15em .3em}"
    "button{font:inherit;padding:.15em .7em;cursor:pointer}button.danger{color:#b3261e}"
    ".none,.note{color:#687481}svg{max-width:100%;height:auto}"
    ".counts span{margin-right:1em}small{color:#4b5561}"
    "@media (max-width:600px){header form{margin-left:0}th,td{padding:.2em .35em}}";

std::string PageStart(const std::string& title, bool script) {
  return "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
         H(title) + "</title>\n<style>" + kStyle + "</style>\n" +
         (script ? "<script src=\"/console/console.js\" defer></script>\n" : "") + "</head>\n";
}

// ---- sections ----

std::string SummarySection(const ConsoleView& v, const std::vector<Projection>& projections) {
  std::string h = "<section id=\"summary\">\n";
  if (!v.flash.empty()) {
    h += "<p class=\"flash" + std::string(v.flash_error ? " err" : "") + "\" id=\"flash\">" +
         H(v.flash) + "</p>\n";
  }
  if (v.audit.is_null()) {
    h += "<p class=\"errors\">No audit: " + H(v.audit_error) + "</p>\n</section>\n";
    return h;
  }
  const json& errors = v.audit["errors"];
  if (!errors.empty()) {
    h += "<div class=\"errors\" id=\"audit-errors\"><strong>" + std::to_string(errors.size()) +
         (errors.size() == 1 ? " error" : " errors") +
         ": the audit is incomplete and says nothing about the rules involved.</strong><ul>";
    for (const json& e : errors) h += "<li>" + H(e.get<std::string>()) + "</li>";
    h += "</ul></div>\n";
  }
  std::size_t migrate = 0;
  for (const json& r : v.audit["rules"]) migrate += Str(r, "status") == "migrate" ? 1 : 0;
  h += "<p id=\"verdict\">";
  if (!errors.empty()) {
    h += Badge("error") + " The audit failed (as <code>mintgate ca audit</code>, exit 2).";
  } else if (migrate > 0) {
    h += Badge("migrate") + " " + std::to_string(migrate) +
         (migrate == 1 ? " rule still needs" : " rules still need") + " migration.";
  } else {
    h += Badge("ok") + " No rule needs migration.";
  }
  if (!projections.empty()) {
    const Projection& next = projections.front();
    h += " Next cutover: <strong>" + H(next.profile) + " &rarr; " + H(next.successor) +
         "</strong> " + TimeCell(next.retire_at, v.now) + ", " +
         std::to_string(next.at_risk.size()) + (next.at_risk.size() == 1 ? " client" : " clients") +
         " at risk.";
  }
  h += "</p>\n";
  const json overlay = v.audit.value("overlay", json::object());
  if (overlay.is_object() && overlay.contains("changes") && !overlay["changes"].empty()) {
    h += "<div class=\"overlay\" id=\"overlay\"><strong>Schedule overlay</strong> <code>" +
         H(Str(overlay, "file")) +
         "</code> (changes made here or with <code>mintgate ca schedule</code>, applied on top of "
         "the configuration file):<ul>";
    for (const json& c : overlay["changes"]) {
      h += "<li>" + H(c.is_string() ? c.get<std::string>() : c.dump()) + "</li>";
    }
    h += "</ul></div>\n";
  }
  h += "</section>\n";
  return h;
}

std::string RulesSection(const ConsoleView& v) {
  std::string h = "<section id=\"rules\">\n<h2>Rules</h2>\n";
  if (v.audit.is_null()) return h + "<p class=\"none\">No audit.</p>\n</section>\n";
  h += "<p class=\"note\">Every rule in order, the default rule last: the CA profile that signs "
       "its leaves now, that CA's 発行先 (subject) and 発行元 (issuer), and when it switches. "
       "Audit at " +
       H(Str(v.audit, "at")) +
       ".</p>\n<div class=\"scroll\"><table id=\"rules-table\">\n<thead><tr><th>Rule</th>"
       "<th>Action</th><th>CA profile</th><th>発行先 (subject)</th><th>発行元 (issuer)</th>"
       "<th>Status</th><th>Switches</th></tr></thead>\n<tbody>\n";
  for (const json& r : v.audit["rules"]) {
    std::string profile = Str(r, "profile");
    const std::string configured = Str(r, "configured_profile");
    std::string profile_cell = profile.empty() ? "<span class=\"none\">-</span>" : H(profile);
    if (!profile.empty() && configured != profile) {
      profile_cell += " <small>(via " + H(configured) + ")</small>";
    }
    std::string switches = "<span class=\"none\">-</span>";
    if (const std::string s = Str(r, "switches"); !s.empty()) {
      const auto [when, to] = SplitSwitch(s);
      switches = "&rarr; " + H(to) + " " + TimeCell(when, v.now);
    }
    auto cell = [](const std::string& s) {
      return s.empty() ? std::string("<span class=\"none\">-</span>") : H(s);
    };
    h += "<tr data-rule=\"" + H(Str(r, "rule")) + "\" data-status=\"" + H(Str(r, "status")) +
         "\"><td>" + H(Str(r, "rule")) + "</td><td>" + H(Str(r, "action")) + "</td><td>" +
         profile_cell + "</td><td>" + cell(Str(r, "subject_cn")) + "</td><td>" +
         cell(Str(r, "issuer_cn")) + "</td><td>" + Badge(Str(r, "status")) + "</td><td>" +
         switches + "</td></tr>\n";
  }
  h += "</tbody></table></div>\n</section>\n";
  return h;
}

// One event on the timeline.
struct Event {
  std::time_t at;
  std::string label;
  std::string kind;  // "cutover" | "expiry"
};

std::string TimelineSvg(const std::vector<Event>& events, std::time_t now) {
  if (events.empty()) return "";
  std::time_t lo = now, hi = now;
  for (const Event& e : events) {
    lo = std::min(lo, e.at);
    hi = std::max(hi, e.at);
  }
  if (hi - lo < 86400) hi = lo + 86400;
  const double width = 900, left = 20, right = 880, y = 60;
  auto x = [&](std::time_t t) {
    return left + (right - left) * static_cast<double>(t - lo) / static_cast<double>(hi - lo);
  };
  char buf[64];
  auto num = [&buf](double d) {
    std::snprintf(buf, sizeof buf, "%.1f", d);
    return std::string(buf);
  };
  std::string s = "<svg id=\"timeline\" viewBox=\"0 0 " + num(width) +
                  " 120\" width=\"900\" height=\"120\" role=\"img\" aria-label=\"Scheduled "
                  "cutovers and CA expiries\" font-size=\"11\">\n<line x1=\"" +
                  num(left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(right) + "\" y2=\"" + num(y) +
                  "\" stroke=\"#687481\"/>\n";
  s += "<line x1=\"" + num(x(now)) + "\" y1=\"30\" x2=\"" + num(x(now)) +
       "\" y2=\"90\" stroke=\"#1d3b5a\" stroke-dasharray=\"3,3\"/><text x=\"" + num(x(now)) +
       "\" y=\"104\" text-anchor=\"middle\">now</text>\n";
  int i = 0;
  for (const Event& e : events) {
    const bool up = i++ % 2 == 0;
    const std::string colour = e.kind == "cutover" ? "#b26a00" : "#b3261e";
    const double ex = x(e.at);
    const std::string anchor = ex < 120 ? "start" : ex > 780 ? "end" : "middle";
    s += "<circle cx=\"" + num(ex) + "\" cy=\"" + num(y) + "\" r=\"5\" fill=\"" + colour +
         "\"><title>" + H(e.label) + " " + H(Rfc3339(e.at)) + "</title></circle><text x=\"" +
         num(ex) + "\" y=\"" + (up ? "40" : "84") + "\" text-anchor=\"" + anchor + "\">" +
         H(e.label) + " (" + H(Rfc3339(e.at).substr(0, 10)) + ")</text>\n";
  }
  return s + "</svg>\n";
}

std::string ProfilesSection(const ConsoleView& v) {
  std::string h = "<section id=\"profiles\">\n<h2>CA profiles</h2>\n";
  if (v.audit.is_null()) return h + "<p class=\"none\">No audit.</p>\n</section>\n";
  std::vector<Event> events;
  h += "<div class=\"cards\">\n";
  for (const json& p : v.audit["profiles"]) {
    const std::string name = Str(p, "name");
    h += "<div class=\"card profile\" data-profile=\"" + H(name) + "\"><h3>" + H(name) +
         "</h3>\n<table>\n";
    if (p.contains("subject")) {
      h += "<tr><th>Subject</th><td>" + H(Str(p, "subject")) + "</td></tr>\n";
      h += "<tr><th>Issuer</th><td>" + H(Str(p, "issuer")) + "</td></tr>\n";
      h += "<tr><th>Key</th><td>" + H(Str(p, "key_type")) + "</td></tr>\n";
      h += "<tr><th>SHA-256</th><td><code>" + H(Str(p, "sha256")) + "</code></td></tr>\n";
      const std::string not_after = Str(p, "not_after");
      const long long days = p.value("days_left", 0LL);
      h += "<tr><th>Expires</th><td>" + H(not_after) + " <span class=\"badge s-" +
           std::string(days < 0    ? "error"
                       : days < 30 ? "expiring"
                                   : "ok") +
           "\">" + (days < 0 ? "expired" : std::to_string(days) + " days left") +
           "</span></td></tr>\n";
      if (const std::time_t t = TimeOf(not_after); t != 0 && t - v.now < 3 * 365 * 86400) {
        events.push_back({t, name + " expires", "expiry"});
      }
    } else {
      const bool pending = p.contains("pending");
      h += "<tr><th>Status</th><td>" + Badge(pending ? "pending" : "error") + " " +
           H(pending ? Str(p, "pending") : Str(p, "error")) + "</td></tr>\n";
    }
    std::string used;
    for (const json& u : p["used_by"]) used += (used.empty() ? "" : ", ") + H(u.get<std::string>());
    h += "<tr><th>Used by</th><td>" +
         (used.empty() ? "<span class=\"none\">no rule</span>" : used) + "</td></tr>\n";
    const std::string retire_at = Str(p, "retire_at");
    const std::string successor = Str(p, "successor");
    if (!successor.empty()) {
      h += "<tr><th>Retires</th><td class=\"retire\">" +
           (retire_at.empty() ? std::string("<span class=\"none\">not scheduled</span>")
                              : TimeCell(retire_at, v.now)) +
           " &rarr; " + H(successor) + "</td></tr>\n";
      if (!retire_at.empty()) {
        events.push_back({TimeOf(retire_at), name + " \u2192 " + successor, "cutover"});
      }
    }
    h += "</table>\n";
    if (!successor.empty()) {
      // Each action goes through a confirmation page first.
      h += "<form class=\"inline\" method=\"post\" action=\"/console/confirm\">" +
           Hidden("csrf", v.csrf) + Hidden("action", "retire_at") + Hidden("profile", name) +
           "<label>Retire at <input type=\"text\" name=\"retire_at\" size=\"22\" value=\"" +
           H(retire_at) +
           "\" placeholder=\"2027-01-31T00:00:00Z\" required></label> <button>Change"
           "</button></form>\n";
      if (!retire_at.empty()) {
        h += "<form class=\"inline\" method=\"post\" action=\"/console/confirm\">" +
             Hidden("csrf", v.csrf) + Hidden("action", "clear") + Hidden("profile", name) +
             "<button class=\"danger\">" +
             (TimeOf(retire_at) <= v.now ? "Roll back the cutover" : "Cancel the cutover") +
             "</button></form>\n";
      }
      h += "<form class=\"inline\" method=\"post\" action=\"/console/confirm\">" +
           Hidden("csrf", v.csrf) + Hidden("action", "reset") + Hidden("profile", name) +
           "<button>Back to the file's schedule</button></form>\n";
    }
    h += "</div>\n";
  }
  h += "</div>\n";
  std::sort(events.begin(), events.end(),
            [](const Event& a, const Event& b) { return a.at < b.at; });
  h += "<h3>Timeline</h3>\n";
  if (events.empty()) {
    h += "<p class=\"none\">No cutover is scheduled and no CA expires within three years.</p>\n";
  } else {
    h += "<div class=\"scroll\">" + TimelineSvg(events, v.now) +
         "</div>\n<table id=\"timeline-table\"><thead><tr><th>When</th><th>Event</th></tr>"
         "</thead><tbody>\n";
    for (const Event& e : events) {
      h += "<tr><td>" + TimeCell(Rfc3339(e.at), v.now) + "</td><td>" + H(e.label) + "</td></tr>\n";
    }
    h += "</tbody></table>\n";
  }
  return h + "</section>\n";
}

// Trusting and rejecting clients over time, as two step lines.
std::string HistorySvg(const std::string& profile, const json& history, std::time_t now) {
  if (!history.is_array() || history.empty()) {
    return "<p class=\"none\">No verdicts yet: the chart starts with the first client.</p>\n";
  }
  struct Point {
    std::time_t at;
    double trusting, rejecting;
  };
  std::vector<Point> points;
  for (const json& p : history) {
    points.push_back({TimeOf(Str(p, "at")), p.value("trusting", 0.0), p.value("rejecting", 0.0)});
  }
  const std::time_t lo = points.front().at;
  const std::time_t hi = std::max<std::time_t>(now, lo + 3600);
  double top = 1;
  for (const Point& p : points) top = std::max({top, p.trusting, p.rejecting});
  const double left = 40, right = 590, bottom = 150, height = 130;
  char buf[64];
  auto num = [&buf](double d) {
    std::snprintf(buf, sizeof buf, "%.1f", d);
    return std::string(buf);
  };
  auto x = [&](std::time_t t) {
    return left + (right - left) * static_cast<double>(t - lo) / static_cast<double>(hi - lo);
  };
  auto y = [&](double v) { return bottom - height * v / top; };
  auto steps = [&](double Point::*field) {
    std::string d;
    for (std::size_t i = 0; i < points.size(); ++i) {
      const double px = x(points[i].at), py = y(points[i].*field);
      if (i > 0) d += " " + num(px) + "," + num(y(points[i - 1].*field));
      d += (i ? " " : "") + num(px) + "," + num(py);
    }
    d += " " + num(x(hi)) + "," + num(y(points.back().*field));
    return d;
  };
  std::string s =
      "<svg class=\"chart\" viewBox=\"0 0 600 175\" width=\"600\" height=\"175\" "
      "role=\"img\" font-size=\"11\" aria-label=\"Clients trusting and rejecting " +
      H(profile) + " over time\">\n";
  s += "<line x1=\"" + num(left) + "\" y1=\"" + num(bottom) + "\" x2=\"" + num(right) + "\" y2=\"" +
       num(bottom) + "\" stroke=\"#687481\"/><line x1=\"" + num(left) + "\" y1=\"" +
       num(bottom - height) + "\" x2=\"" + num(left) + "\" y2=\"" + num(bottom) +
       "\" stroke=\"#687481\"/>\n";
  s += "<text x=\"" + num(left - 4) + "\" y=\"" + num(bottom - height + 4) +
       "\" text-anchor=\"end\">" + num(top).substr(0, num(top).find('.')) + "</text><text x=\"" +
       num(left - 4) + "\" y=\"" + num(bottom + 4) + "\" text-anchor=\"end\">0</text>\n";
  s += "<text x=\"" + num(left) + "\" y=\"168\">" + H(Rfc3339(lo).substr(0, 16)) +
       "</text><text x=\"" + num(right) + "\" y=\"168\" text-anchor=\"end\">now</text>\n";
  s += "<polyline fill=\"none\" stroke=\"#2f7d32\" stroke-width=\"2\" points=\"" +
       steps(&Point::trusting) + "\"><title>trusting</title></polyline>\n";
  s += "<polyline fill=\"none\" stroke=\"#b3261e\" stroke-width=\"2\" stroke-dasharray=\"5,3\" "
       "points=\"" +
       steps(&Point::rejecting) + "\"><title>rejecting</title></polyline>\n";
  s += "<text x=\"" + num(right) +
       "\" y=\"12\" text-anchor=\"end\"><tspan fill=\"#2f7d32\">"
       "&#9632; trusting</tspan> <tspan fill=\"#b3261e\">&#9632; rejecting</tspan></text>\n";
  return s + "</svg>\n";
}

std::string ReadinessSection(const ConsoleView& v, const std::vector<Projection>& projections) {
  std::string h =
      "<section id=\"readiness\">\n<h2>Readiness</h2>\n<p class=\"note\">Which clients trust "
      "each CA profile, learnt from real connections: a client trusts a profile when it sends "
      "data over a connection signed by it, and rejects it when it sends a certificate alert "
      "or closes without sending anything. <label><input type=\"checkbox\" id=\"live\" checked> "
      "live</label></p>\n";
  // Before the date: who would break.
  h += "<h3>At the next cutovers</h3>\n";
  if (projections.empty()) {
    h += "<p class=\"none\" id=\"projection-none\">No cutover is scheduled ahead.</p>\n";
  }
  for (const Projection& p : projections) {
    h += "<div class=\"projection\" data-profile=\"" + H(p.profile) + "\"><p>At " +
         TimeCell(p.retire_at, v.now) + ", <strong>" + H(p.profile) + "</strong> retires: ";
    std::string rules;
    for (const std::string& r : p.rules) rules += (rules.empty() ? "" : ", ") + H(r);
    h += (rules.empty() ? std::string("no rule uses it directly") : "rules " + rules) +
         " switch to <strong>" + H(p.successor) + "</strong>. ";
    if (p.at_risk.empty()) {
      h += "No client seen with " + H(p.profile) + " in the last 7 days would break (" +
           std::to_string(p.ready) + " already trust " + H(p.successor) + ").</p>\n";
    } else {
      h += "<strong>" + std::to_string(p.at_risk.size()) +
           (p.at_risk.size() == 1 ? " client" : " clients") +
           "</strong> seen in the last 7 days never trusted " + H(p.successor) +
           " and would break (" + std::to_string(p.ready) + " ready):</p>\n";
      h += "<div class=\"scroll\"><table class=\"at-risk\"><thead><tr><th>Client</th><th>Last "
           "seen with " +
           H(p.profile) + "</th><th>With " + H(p.successor) + "</th></tr></thead><tbody>\n";
      for (const AtRiskClient& c : p.at_risk) {
        h += "<tr><td>" + H(c.client) + "</td><td>" + TimeCell(c.last_seen, v.now) + "</td><td>" +
             H(c.successor_seen) + "</td></tr>\n";
      }
      h += "</tbody></table></div>\n";
    }
    h += "</div>\n";
  }

  // Canaries in force.
  h += "<h3>Canaries</h3>\n";
  const std::size_t tracked = v.readiness.value("clients_tracked", std::size_t{0});
  if (v.canaries.empty()) {
    h += "<p class=\"none\">No canary: every client gets its rule's profile.</p>\n";
  } else {
    h += "<div class=\"scroll\"><table id=\"canaries\"><thead><tr><th>CA</th><th>Clients</th>"
         "<th>Share</th><th>Fallback</th><th>Seen with it</th><th>Falling back</th><th></th>"
         "</tr></thead><tbody>\n";
    for (const CanaryConfig& c : v.canaries) {
      std::string clients;
      for (const std::string& cidr : c.clients) clients += (clients.empty() ? "" : " ") + H(cidr);
      const json* p = FindProfile(v.readiness, c.ca);
      const std::size_t seen =
          p == nullptr ? 0
                       : (*p)["trusting"].get<std::size_t>() + (*p)["rejecting"].get<std::size_t>();
      const std::size_t rejecting = p == nullptr ? 0 : (*p)["rejecting"].get<std::size_t>();
      h += "<tr data-canary=\"" + H(c.ca) + "\"><td>" + H(c.ca) + "</td><td>" + clients +
           "</td><td>" + std::to_string(c.percent) + "%</td><td>" + (c.fallback ? "yes" : "no") +
           "</td><td>" + std::to_string(seen) + " of " + std::to_string(tracked) +
           " clients</td><td>" + (c.fallback ? std::to_string(rejecting) : std::string("-")) +
           "</td><td><form class=\"inline\" method=\"post\" action=\"/console/confirm\">" +
           Hidden("csrf", v.csrf) + Hidden("action", "canary_stop") + Hidden("ca", c.ca) +
           "<button class=\"danger\">Stop</button></form></td></tr>\n";
    }
    h += "</tbody></table></div>\n";
  }
  if (!v.audit.is_null()) {
    h += "<form class=\"inline\" id=\"canary-start\" method=\"post\" action=\"/console/confirm\">" +
         Hidden("csrf", v.csrf) + Hidden("action", "canary_start") +
         "<label>Start a canary: CA <select name=\"ca\">";
    for (const json& p : v.audit["profiles"]) {
      h += "<option>" + H(Str(p, "name")) + "</option>";
    }
    h += "</select></label> <label>for <input type=\"number\" name=\"percent\" min=\"1\" "
         "max=\"100\" value=\"10\" size=\"4\">%</label> <label>of <input type=\"text\" "
         "name=\"clients\" value=\"0.0.0.0/0 ::/0\" size=\"22\"></label> <button>Start"
         "</button></form>\n";
  }

  // Per profile: counts, chart, clients.
  const json profiles = v.readiness.value("profiles", json::array());
  if (profiles.empty()) {
    h += "<p class=\"none\">No decrypted connection yet.</p>\n";
  }
  for (const json& p : profiles) {
    const std::string name = Str(p, "profile");
    h += "<div class=\"readiness-profile\" data-profile=\"" + H(name) + "\">\n<h3>" + H(name) +
         "</h3>\n<p class=\"counts\"><span>" + Badge("trusts") + " " +
         std::to_string(p.value("trusting", 0)) + "</span><span>" + Badge("rejects") + " " +
         std::to_string(p.value("rejecting", 0)) + "</span><span>" + Badge("unknown") + " " +
         std::to_string(p.value("unknown", 0)) + "</span></p>\n";
    h += "<div class=\"scroll\">" + HistorySvg(name, p.value("history", json::array()), v.now) +
         "</div>\n";
    const json& clients = p["clients"];
    if (clients.empty()) {
      h += "<p class=\"none\">No client yet.</p>\n</div>\n";
      continue;
    }
    h += "<div class=\"scroll\"><table class=\"clients\"><thead><tr><th>Client</th><th>User</th>"
         "<th>Status</th><th>Evidence</th><th>Trusted</th><th>Rejected</th><th>Last trusted</th>"
         "<th>Last rejected</th><th>Last seen</th></tr></thead><tbody>\n";
    for (const json& c : clients) {
      const json& lt = c["last_trusted"];
      const json& lr = c["last_rejected"];
      h += "<tr data-client=\"" + H(Str(c, "client")) + "\" data-status=\"" + H(Str(c, "status")) +
           "\"><td>" + H(Str(c, "client")) + "</td><td>" +
           (Str(c, "user").empty() ? std::string("-") : H(Str(c, "user"))) + "</td><td>" +
           Badge(Str(c, "status")) + "</td><td>" + H(Evidence(c)) + "</td><td>" +
           std::to_string(c.value("trusted", 0)) + "</td><td>" +
           std::to_string(c.value("rejected", 0)) + "</td><td>" +
           (lt.is_object() ? TimeCell(Str(lt, "at"), v.now) : std::string("-")) + "</td><td>" +
           (lr.is_object() ? TimeCell(Str(lr, "at"), v.now) : std::string("-")) + "</td><td>" +
           TimeCell(Str(c, "last_seen"), v.now) + "</td></tr>\n";
    }
    h += "</tbody></table></div>\n";
    if (p.value("clients_truncated", false)) {
      h += "<p class=\"note\">More clients than shown: the export has them all.</p>\n";
    }
    h += "</div>\n";
  }
  return h + "</section>\n";
}

std::string ActionsSection(const ConsoleView& v) {
  std::string h = "<section id=\"actions\">\n<h2>Recent actions</h2>\n";
  if (v.actions.empty()) {
    return h + "<p class=\"none\">No schedule change yet.</p>\n</section>\n";
  }
  h += "<div class=\"scroll\"><table id=\"actions-table\"><thead><tr><th>When</th><th>By</th>"
       "<th>Action</th><th>Profile</th><th>From</th><th>To</th></tr></thead><tbody>\n";
  for (const json& a : v.actions) {
    auto field = [&a](const char* key) {
      const auto it = a.find(key);
      if (it == a.end() || it->is_null()) return std::string("-");
      return H(it->is_string() ? it->get<std::string>() : it->dump());
    };
    h += "<tr><td>" + field("at") + "</td><td>" + field("by") + "</td><td>" + field("action") +
         "</td><td>" + field("profile") + "</td><td>" + field("old") + "</td><td>" + field("new") +
         "</td></tr>\n";
  }
  return h + "</tbody></table></div>\n</section>\n";
}

std::string CsvCell(std::string text) {
  if (!text.empty() && (text[0] == '=' || text[0] == '+' || text[0] == '-' || text[0] == '@' ||
                        text[0] == '\t' || text[0] == '\r')) {
    text.insert(0, "'");
  }
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string CsvRow(const std::vector<std::string>& cells) {
  std::string row;
  for (std::size_t i = 0; i < cells.size(); ++i) row += (i ? "," : "") + CsvCell(cells[i]);
  return row + "\r\n";
}

}  // namespace

std::vector<Projection> ProjectCutovers(const json& audit, const json& readiness, std::time_t now) {
  std::vector<Projection> out;
  if (!audit.is_object() || !audit.contains("profiles")) return out;
  for (const json& p : audit["profiles"]) {
    const std::string retire_at = Str(p, "retire_at");
    if (retire_at.empty()) continue;
    const std::time_t when = TimeOf(retire_at);
    if (when <= now) continue;
    Projection proj;
    proj.profile = Str(p, "name");
    proj.retire_at = retire_at;
    proj.retire_time = when;
    proj.successor = Str(p, "successor");
    // The profile that signs after the date, through any chain: what the audit says the
    // rules configured with this profile switch to.
    for (const json& r : audit["rules"]) {
      if (Str(r, "configured_profile") != proj.profile) continue;
      proj.rules.push_back(Str(r, "rule"));
      const auto [at, to] = SplitSwitch(Str(r, "switches"));
      if (!to.empty()) proj.successor = to;
    }
    const json* retiring = FindProfile(readiness, proj.profile);
    const json* successor = FindProfile(readiness, proj.successor);
    if (retiring != nullptr) {
      for (const json& c : (*retiring)["clients"]) {
        if (Str(c, "status") == "unknown") continue;
        const std::string last_seen = Str(c, "last_seen");
        if (TimeOf(last_seen) + kRecentSeconds < now) continue;
        const json* with = FindClient(successor, Str(c, "client"));
        if (with != nullptr && with->contains("last_trusted") &&
            (*with)["last_trusted"].is_object()) {
          ++proj.ready;
          continue;
        }
        std::string seen = "never connected with it";
        if (with != nullptr && Str(*with, "status") == "rejects") {
          seen = "rejects (" + Evidence(*with) + ")";
        }
        proj.at_risk.push_back({Str(c, "client"), last_seen, seen});
      }
    }
    out.push_back(std::move(proj));
  }
  std::sort(out.begin(), out.end(),
            [](const Projection& a, const Projection& b) { return a.retire_time < b.retire_time; });
  return out;
}

std::string RenderConsolePage(const ConsoleView& v) {
  const std::vector<Projection> projections = ProjectCutovers(v.audit, v.readiness, v.now);
  std::string h = PageStart("mintgate console: CA migration", true);
  h += "<body>\n<header><h1>mintgate: CA migration</h1><nav><a href=\"#rules\">Rules</a> "
       "&middot; <a href=\"#profiles\">Profiles</a> &middot; <a href=\"#readiness\">Readiness"
       "</a> &middot; <a href=\"#actions\">Actions</a> &middot; <a href=\"#exports\">Exports"
       "</a></nav><span>" +
       H(v.gateway) + "</span><form method=\"post\" action=\"/console/logout\">" +
       Hidden("csrf", v.csrf) + "<button>Log out</button></form></header>\n<main>\n";
  h += SummarySection(v, projections);
  h += RulesSection(v);
  h += ProfilesSection(v);
  h += ReadinessSection(v, projections);
  h += ActionsSection(v);
  h += "<section id=\"exports\">\n<h2>Exports</h2>\n<p>The audit: <a href=\"/console/export/"
       "audit.csv\" download>CSV</a>, <a href=\"/console/export/audit.json\" download>JSON</a>. "
       "Readiness: <a href=\"/console/export/readiness.csv\" download>CSV</a>, <a href=\"/console/"
       "export/readiness.json\" download>JSON</a>.</p>\n<p class=\"note\">Generated at " +
       H(Rfc3339(v.now)) + ".</p>\n</section>\n";
  return h + "</main>\n</body>\n</html>\n";
}

std::string RenderLoginPage(const std::string& message) {
  std::string h = PageStart("mintgate console: log in", false);
  h += "<body>\n<header><h1>mintgate console</h1></header>\n<main>\n<section>\n<h2>Log in</h2>\n";
  if (!message.empty()) h += "<p class=\"flash err\" id=\"flash\">" + H(message) + "</p>\n";
  h += "<form method=\"post\" action=\"/console/login\" id=\"login\"><p><label>Admin token "
       "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" size=\"40\" "
       "required autofocus></label> <button>Log in</button></p></form>\n<p class=\"note\">The "
       "token is the first line of the gateway's admin token file: <code>admin.token_file</code>"
       ", or <code>state_dir/admin.token</code> by default (readable by its owner only).</p>\n";
  return h + "</section>\n</main>\n</body>\n</html>\n";
}

std::string RenderConfirmPage(const ConfirmView& v) {
  std::string h = PageStart("mintgate console: confirm", false);
  h += "<body>\n<header><h1>mintgate: CA migration</h1></header>\n<main>\n<section id=\"confirm\">"
       "\n<h2>" +
       H(v.title) + "</h2>\n<ul>\n";
  for (const std::string& f : v.facts) h += "<li>" + H(f) + "</li>\n";
  h += "</ul>\n<p>The change goes into the schedule overlay in the state directory (the "
       "configuration file is not rewritten), is written to the schedule's audit log, and the "
       "gateway reloads its configuration to apply it.</p>\n<form method=\"post\" "
       "action=\"/console/action\" class=\"inline\">" +
       Hidden("csrf", v.csrf) + Hidden("confirm", "yes");
  for (const auto& [name, value] : v.fields) h += Hidden(name, value);
  h += std::string("<button") + (v.danger ? " class=\"danger\"" : "") +
       " id=\"confirm-button\">Confirm</button></form> <a href=\"/console/\">Cancel</a>\n";
  return h + "</section>\n</main>\n</body>\n</html>\n";
}

std::string RenderMessagePage(const std::string& title, const std::string& message) {
  std::string h = PageStart("mintgate console: " + title, false);
  h += "<body>\n<header><h1>mintgate console</h1></header>\n<main>\n<section>\n<h2>" + H(title) +
       "</h2>\n<p id=\"message\">" + H(message) +
       "</p>\n<p><a href=\"/console/\">Back to the console</a></p>\n";
  return h + "</section>\n</main>\n</body>\n</html>\n";
}

std::string AuditCsv(const json& audit) {
  std::string csv = CsvRow({"rule", "action", "configured_profile", "profile", "subject_cn",
                            "issuer_cn", "status", "switches_at", "switches_to"});
  if (!audit.is_object() || !audit.contains("rules")) return csv;
  for (const json& r : audit["rules"]) {
    const auto [at, to] = SplitSwitch(Str(r, "switches"));
    csv +=
        CsvRow({Str(r, "rule"), Str(r, "action"), Str(r, "configured_profile"), Str(r, "profile"),
                Str(r, "subject_cn"), Str(r, "issuer_cn"), Str(r, "status"), at, to});
  }
  return csv;
}

std::string ReadinessCsv(const json& readiness) {
  std::string csv =
      CsvRow({"profile", "client", "status", "evidence", "last_alert", "trusted", "rejected",
              "unused", "last_trusted", "last_trusted_sni", "last_rejected", "last_rejected_sni",
              "first_seen", "last_seen", "user"});
  if (!readiness.is_object() || !readiness.contains("profiles")) return csv;
  for (const json& p : readiness["profiles"]) {
    for (const json& c : p["clients"]) {
      const json lt = c.value("last_trusted", json());
      const json lr = c.value("last_rejected", json());
      auto at = [](const json& seen, const char* key) {
        return seen.is_object() ? Str(seen, key) : std::string();
      };
      csv +=
          CsvRow({Str(p, "profile"), Str(c, "client"), Str(c, "status"),
                  Str(c, "status") == "unknown" ? std::string() : Evidence(c), Str(c, "last_alert"),
                  std::to_string(c.value("trusted", 0)), std::to_string(c.value("rejected", 0)),
                  std::to_string(c.value("unused", 0)), at(lt, "at"), at(lt, "sni"), at(lr, "at"),
                  at(lr, "sni"), Str(c, "first_seen"), Str(c, "last_seen"), Str(c, "user")});
    }
  }
  return csv;
}

std::string_view ConsoleScript() {
  // Every 15 s while "live" is ticked and the page is visible, the readiness section is
  // fetched again and swapped in; a failed fetch (a lost session) leaves the page as it is.
  return "'use strict';\n"
         "(function () {\n"
         "  if (!document.getElementById('live')) return;\n"
         "  async function refresh() {\n"
         "    const live = document.getElementById('live');\n"
         "    if (!live || !live.checked || document.hidden) return;\n"
         "    try {\n"
         "      const r = await fetch('/console/', {credentials: 'same-origin'});\n"
         "      if (!r.ok || r.redirected) return;\n"
         "      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');\n"
         "      const fresh = doc.getElementById('readiness');\n"
         "      const old = document.getElementById('readiness');\n"
         "      if (!fresh || !old) return;\n"
         "      fresh.querySelector('#live').checked = live.checked;\n"
         "      old.replaceWith(fresh);\n"
         "    } catch (e) { /* the next tick tries again */ }\n"
         "  }\n"
         "  setInterval(() => { refresh().then(() => {}); }, 15000);\n"
         "})();\n";
}

}  // namespace mintgate::proxy
