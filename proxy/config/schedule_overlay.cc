#include "proxy/config/schedule_overlay.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string_view>
#include <tuple>

#include "proxy/config/gateway_config.h"
#include "rules/ca_resolver.h"
#include "rules/ip_address.h"
#include "tls/ca_generator.h"
#include "tls/tls_error.h"

namespace mintgate::proxy {
namespace {

constexpr const char* kNone = "none";
const std::vector<std::string> kAllClients{"0.0.0.0/0", "::/0"};

// ---- text --------------------------------------------------------------------------------

// The length of the valid UTF-8 sequence at s[i], 0 when there is none (overlong forms,
// surrogates and code points above U+10FFFF are not valid).
std::size_t Utf8Length(std::string_view s, std::size_t i) {
  auto byte = [&s](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) low = 0xA0;
    if (c == 0xED) high = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) low = 0x90;
    if (c == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// Free text (who made a change) as both files can hold it: valid UTF-8 on one line. The
// console passes what a browser sent, which is not necessarily either.
std::string CleanText(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = Utf8Length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (n == 1 && (c < 0x20 || c == 0x7f)) {
      out += ' ';
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

// A quoted string that TOML (basic string) and JSON both read back as `s`: they share these
// escapes.
std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04X", static_cast<unsigned>(c));
          out += buffer;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

// A profile name as a TOML key: bare when it can be, quoted otherwise ("a.b" is one key).
std::string Key(std::string_view name) {
  const bool bare = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return bare ? std::string(name) : Quoted(name);
}

std::string RetireAtKey(const std::string& profile) { return "ca." + Key(profile) + ".retire_at"; }
std::string CanaryKey(const std::string& ca) { return "canary." + Key(ca); }

std::string InstantText(const std::optional<rules::Instant>& at) {
  return at ? rules::FormatInstant(*at) : kNone;
}

std::string CanaryText(int percent, const std::vector<std::string>& clients, bool fallback) {
  std::string who;
  if (clients == kAllClients) {
    who = "all clients";
  } else {
    for (const std::string& c : clients) who += (who.empty() ? "" : " ") + c;
  }
  return std::to_string(percent) + "% of " + who + (fallback ? ", fallback" : ", no fallback");
}

std::string ChangeText(const CanaryChange& change) {
  return change.started ? CanaryText(change.percent, change.clients, change.fallback) : "stopped";
}

// Every [[canary]] of `ca` in the file, " + " between them; "none" without any.
std::string FileCanariesText(const Config& config, const std::string& ca) {
  std::string out;
  for (const CanaryConfig& c : config.canaries) {
    if (c.ca != ca) continue;
    out += (out.empty() ? "" : " + ") + CanaryText(c.percent, c.clients, c.fallback);
  }
  return out.empty() ? kNone : out;
}

std::string StampText(const ScheduleStamp& stamp) {
  return (stamp.by.empty() ? std::string("someone") : stamp.by) + " at " +
         rules::FormatInstant(stamp.at);
}

std::string Line(const std::string& key, const std::string& value, const std::string& file_value,
                 const ScheduleStamp& stamp) {
  return key + " = " + value + " (" +
         (value == file_value ? std::string("the file says the same")
                              : "the file says " + file_value) +
         "; " + StampText(stamp) + ")";
}

std::string ConfigName(const Config& config) {
  return config.file.empty() ? std::string("the configuration") : config.file;
}

// ---- validation --------------------------------------------------------------------------

const CaProfileConfig* FindProfile(const Config& config, const std::string& name) {
  for (const CaProfileConfig& ca : config.cas) {
    if (ca.spec.name == name) return &ca;
  }
  return nullptr;
}

// As LoadGatewayConfig checks [[canary]]: a configured profile, or the generated default.
bool CanaryCaKnown(const Config& config, const std::string& ca) {
  return ca == kGeneratedCaName || FindProfile(config, ca) != nullptr;
}

std::string ProfileNames(const Config& config) {
  std::string names;
  for (const CaProfileConfig& ca : config.cas) {
    names += (names.empty() ? "\"" : ", \"") + ca.spec.name + "\"";
  }
  return names.empty() ? "none" : names;
}

std::string UnknownProfile(const Config& config, const std::string& name) {
  return "no CA profile \"" + name + "\" in " + ConfigName(config) +
         " (its profiles: " + ProfileNames(config) + ")";
}

// Why a retire_at cannot apply to `profile` (nullptr: not in the file), or "".
std::string RetireAtProblem(const Config& config, const std::string& name,
                            const CaProfileConfig* profile, bool sets_instant) {
  if (profile == nullptr) return UnknownProfile(config, name);
  if (sets_instant && profile->successor.empty()) {
    return "CA profile \"" + name + "\" has no successor in " + ConfigName(config) +
           ": a retire_at needs one to sign after it (set successor in [ca." + Key(name) + "])";
  }
  return "";
}

// Why a started canary's settings are unusable, or "".
std::string CanarySettingsProblem(int percent, const std::vector<std::string>& clients) {
  if (percent < 1 || percent > 100) {
    return "canary percent must be between 1 and 100, got " + std::to_string(percent);
  }
  if (clients.empty()) return "canary clients: needs at least one network";
  for (const std::string& client : clients) {
    std::string why;
    if (!rules::Cidr::Parse(client, &why)) return "canary clients: \"" + client + "\": " + why;
  }
  return "";
}

std::string CanaryProblem(const Config& config, const std::string& ca, const CanaryChange& change) {
  if (!CanaryCaKnown(config, ca)) return UnknownProfile(config, ca);
  return change.started ? CanarySettingsProblem(change.percent, change.clients) : "";
}

// ---- the overlay file --------------------------------------------------------------------

class OverlayReader {
 public:
  OverlayReader(const std::string& file, std::vector<ConfigError>& errors)
      : file_(file), errors_(errors) {}

  void Error(const toml::source_region& at, std::string message) {
    errors_.push_back({file_, static_cast<int>(at.begin.line), static_cast<int>(at.begin.column),
                       std::move(message)});
  }

  void CheckKeys(const toml::table& t, std::initializer_list<std::string_view> allowed,
                 const std::string& where) {
    for (auto&& [key, value] : t) {
      (void)value;
      if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      Error(key.source(),
            "unknown key '" + std::string(key.str()) + "' in [" + where + "] (keys: " + list + ")");
    }
  }

  std::optional<rules::Instant> Instant(const toml::node& node) {
    const toml::date_time* dt = node.is_date_time() ? &node.ref<toml::date_time>() : nullptr;
    if (dt == nullptr || !dt->offset) return std::nullopt;
    using namespace std::chrono;
    const year_month_day ymd{year{dt->date.year}, month{dt->date.month}, day{dt->date.day}};
    if (!ymd.ok()) return std::nullopt;
    const sys_seconds t =
        sys_days{ymd} + hours{dt->time.hour} + minutes{dt->time.minute} + seconds{dt->time.second};
    return t - minutes{dt->offset->minutes};
  }

  // changed_at (required) and changed_by.
  bool Stamp(const toml::table& t, const std::string& where, ScheduleStamp& out) {
    bool ok = true;
    if (const toml::node* node = t.get("changed_at")) {
      if (auto at = Instant(*node)) {
        out.at = *at;
      } else {
        Error(node->source(), where + ".changed_at: expected a date and time with a UTC offset");
        ok = false;
      }
    } else {
      Error(t.source(), "[" + where + "] needs changed_at = <date and time>");
      ok = false;
    }
    if (const toml::node* node = t.get("changed_by")) {
      if (auto by = node->value_exact<std::string>()) {
        out.by = CleanText(*by);
      } else {
        Error(node->source(), where + ".changed_by: expected a string");
        ok = false;
      }
    }
    return ok;
  }

  void RetireAt(const std::string& name, const toml::table& t, ScheduleOverlay& out) {
    const std::string where = "ca." + Key(name);
    CheckKeys(t, {"retire_at", "changed_at", "changed_by"}, where);
    RetireAtChange change;
    change.line = static_cast<int>(t.source().begin.line);
    bool ok = Stamp(t, where, change.changed);
    if (const toml::node* node = t.get("retire_at")) {
      if (auto at = Instant(*node)) {
        change.retire_at = *at;
      } else if (node->value_exact<std::string>() != std::optional<std::string>(kNone)) {
        Error(node->source(), where +
                                  ".retire_at: expected a date and time with a UTC offset, or "
                                  "\"none\" (no retirement)");
        ok = false;
      }
    } else {
      Error(t.source(), "[" + where + "] needs retire_at = <date and time> or \"none\"");
      ok = false;
    }
    if (ok) out.retire_at[name] = std::move(change);
  }

  void Canary(const std::string& ca, const toml::table& t, ScheduleOverlay& out) {
    const std::string where = "canary." + Key(ca);
    CheckKeys(t, {"state", "percent", "clients", "fallback", "changed_at", "changed_by"}, where);
    CanaryChange change;
    change.line = static_cast<int>(t.source().begin.line);
    bool ok = Stamp(t, where, change.changed);
    const toml::node* state = t.get("state");
    const std::optional<std::string> state_text =
        state != nullptr ? state->value_exact<std::string>() : std::nullopt;
    if (state_text == "started" || state_text == "stopped") {
      change.started = *state_text == "started";
    } else {
      Error(state != nullptr ? state->source() : t.source(),
            where + ".state: expected \"started\" or \"stopped\"");
      ok = false;
    }
    if (const toml::node* node = t.get("percent")) {
      const std::optional<std::int64_t> percent = node->value_exact<std::int64_t>();
      if (!percent || *percent < 1 || *percent > 100) {
        Error(node->source(), where + ".percent: expected an integer between 1 and 100");
        ok = false;
      } else {
        change.percent = static_cast<int>(*percent);
      }
    }
    if (const toml::node* node = t.get("clients")) {
      const toml::array* array = node->as_array();
      if (array == nullptr || array->empty()) {
        Error(node->source(), where + ".clients: expected a non-empty array of CIDRs");
        ok = false;
      } else {
        change.clients.clear();
        for (const toml::node& item : *array) {
          const std::optional<std::string> cidr = item.value_exact<std::string>();
          std::string why = "expected a string";
          if (cidr && rules::Cidr::Parse(*cidr, &why)) {
            change.clients.push_back(*cidr);
          } else {
            Error(item.source(), where + ".clients: " + (cidr ? "\"" + *cidr + "\": " : "") + why);
            ok = false;
          }
        }
      }
    }
    if (const toml::node* node = t.get("fallback")) {
      if (auto fallback = node->value_exact<bool>()) {
        change.fallback = *fallback;
      } else {
        Error(node->source(), where + ".fallback: expected true or false");
        ok = false;
      }
    }
    if (ok) out.canaries[ca] = std::move(change);
  }

  template <class Fn>
  void Tables(const toml::node& group, const std::string& key, Fn fn) {
    const toml::table* tables = group.as_table();
    if (tables == nullptr) {
      Error(group.source(), key + " must hold [" + key + ".NAME] tables");
      return;
    }
    for (auto&& [name, node] : *tables) {
      if (const toml::table* t = node.as_table()) {
        fn(std::string(name.str()), *t);
      } else {
        Error(node.source(), "[" + key + "." + Key(name.str()) + "] must be a table");
      }
    }
  }

 private:
  const std::string& file_;
  std::vector<ConfigError>& errors_;
};

// Best effort: when root writes into a state_dir that belongs to the gateway's user, the
// file gets that owner too, so that the gateway can still read (and the console write) it.
void TakeDirectoryOwner(int fd, const std::string& dir) {
  if (::geteuid() != 0) return;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0 && st.st_uid != 0) {
    if (::fchown(fd, st.st_uid, st.st_gid) != 0) {
      // The file stays root's: the gateway then reports that it cannot read it.
    }
  }
}

std::string DirectoryOf(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// ---- the audit log -----------------------------------------------------------------------

std::string AuditLine(const ScheduleAuditEntry& e) {
  auto value = [](const std::string& s) { return s.empty() ? std::string("null") : Quoted(s); };
  return "{\"at\":" + Quoted(CleanText(e.at)) + ",\"by\":" + Quoted(CleanText(e.by)) +
         ",\"action\":" + Quoted(CleanText(e.action)) +
         ",\"profile\":" + Quoted(CleanText(e.profile)) +
         ",\"old\":" + value(CleanText(e.old_value)) + ",\"new\":" + value(CleanText(e.new_value)) +
         "}\n";
}

void AppendUtf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// One line of the audit log: a JSON object whose values are strings or null. This layer has
// no JSON library (scripts/check_layering.sh), and the lines are mintgate's own.
class FlatJsonObject {
 public:
  explicit FlatJsonObject(std::string_view text) : s_(text) {}

  bool Parse(std::map<std::string, std::optional<std::string>>& out) {
    Space();
    if (!Eat('{')) return false;
    Space();
    if (Eat('}')) return AtEnd();
    for (;;) {
      std::string key;
      if (!String(key)) return false;
      Space();
      if (!Eat(':')) return false;
      Space();
      std::optional<std::string> value;
      if (s_.substr(i_, 4) == "null") {
        i_ += 4;
      } else {
        std::string text;
        if (!String(text)) return false;
        value = std::move(text);
      }
      out[key] = std::move(value);
      Space();
      if (Eat(',')) {
        Space();
        continue;
      }
      return Eat('}') && AtEnd();
    }
  }

 private:
  bool Eat(char c) {
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool AtEnd() {
    Space();
    return i_ == s_.size();
  }
  bool Hex4(unsigned& out) {
    if (i_ + 4 > s_.size()) return false;
    out = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = s_[i_ + k];
      out <<= 4;
      if (c >= '0' && c <= '9') {
        out |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        out |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        out |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    i_ += 4;
    return true;
  }
  bool String(std::string& out) {
    if (!Eat('"')) return false;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = 0;
          if (!Hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned low = 0;
            const std::size_t mark = i_;
            if (Eat('\\') && Eat('u') && Hex4(low) && low >= 0xDC00 && low <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              i_ = mark;
              cp = 0xFFFD;
            }
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

std::optional<ScheduleAuditEntry> ParseAuditLine(std::string_view line) {
  std::map<std::string, std::optional<std::string>> fields;
  if (!FlatJsonObject(line).Parse(fields)) return std::nullopt;
  auto get = [&fields](const char* key) {
    auto it = fields.find(key);
    return it == fields.end() ? std::string() : it->second.value_or("");
  };
  ScheduleAuditEntry e{get("at"), get("by"), get("action"), get("profile"), get("old"), get("new")};
  if (e.at.empty() || e.action.empty()) return std::nullopt;
  return e;
}

// ---- edits -------------------------------------------------------------------------------

ScheduleStamp Clean(const ScheduleStamp& stamp) { return {stamp.at, CleanText(stamp.by)}; }

// The retire_at in force for `profile` (in the file): the overlay's when it applies.
std::string EffectiveRetireAt(const ScheduleOverlay& overlay, const CaProfileConfig& profile) {
  auto it = overlay.retire_at.find(profile.spec.name);
  if (it != overlay.retire_at.end() && (!it->second.retire_at || !profile.successor.empty())) {
    return InstantText(it->second.retire_at);
  }
  return InstantText(profile.retire_at);
}

std::string EffectiveCanary(const ScheduleOverlay& overlay, const Config& config,
                            const std::string& ca) {
  auto it = overlay.canaries.find(ca);
  if (it != overlay.canaries.end() && CanaryProblem(config, ca, it->second).empty()) {
    return ChangeText(it->second);
  }
  return FileCanariesText(config, ca);
}

ScheduleAuditEntry Audit(const ScheduleStamp& stamp, std::string action, std::string profile,
                         std::string old_value, std::string new_value) {
  return {rules::FormatInstant(stamp.at),
          stamp.by,
          std::move(action),
          std::move(profile),
          std::move(old_value),
          std::move(new_value)};
}

ScheduleEdit Refused(std::string why) {
  ScheduleEdit edit;
  edit.errors.push_back(std::move(why));
  return edit;
}

ScheduleEdit PutCanary(ScheduleOverlay& overlay, const Config& file_config, const std::string& ca,
                       CanaryChange change) {
  if (ca.empty()) return Refused("a canary needs the CA profile it signs with");
  if (std::string problem = CanaryProblem(file_config, ca, change); !problem.empty()) {
    return Refused(std::move(problem));
  }
  ScheduleEdit edit;
  const std::string old_value = EffectiveCanary(overlay, file_config, ca);
  edit.description =
      Line(CanaryKey(ca), ChangeText(change), FileCanariesText(file_config, ca), change.changed);
  edit.audit = Audit(change.changed, change.started ? "canary_start" : "canary_stop", ca, old_value,
                     ChangeText(change));
  overlay.canaries[ca] = std::move(change);
  edit.changed = true;
  return edit;
}

}  // namespace

std::string ScheduleOverlayPath(const std::string& state_dir) {
  return state_dir + "/schedule.toml";
}

std::string ScheduleAuditPath(const std::string& state_dir) {
  return state_dir + "/schedule-audit.log";
}

ScheduleOverlayLoad ParseScheduleOverlay(const std::string& text, const std::string& path) {
  ScheduleOverlayLoad result;
  OverlayReader r(path, result.errors);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    r.Error(e.source(), "TOML syntax: " + std::string(e.description()));
    return result;
  }
  for (auto&& [key, node] : root) {
    if (key.str() == "ca") {
      r.Tables(node, "ca", [&](const std::string& name, const toml::table& t) {
        r.RetireAt(name, t, result.overlay);
      });
    } else if (key.str() == "canary") {
      r.Tables(node, "canary", [&](const std::string& name, const toml::table& t) {
        r.Canary(name, t, result.overlay);
      });
    } else {
      r.Error(key.source(), "unknown key '" + std::string(key.str()) +
                                "': a schedule overlay has [ca.NAME] and [canary.NAME] tables");
    }
  }
  if (!result.errors.empty()) {
    // Half an overlay is worse than none: a rollback it holds could be the half left out.
    result.overlay = ScheduleOverlay{};
    std::stable_sort(result.errors.begin(), result.errors.end(),
                     [](const ConfigError& a, const ConfigError& b) {
                       return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                     });
  }
  return result;
}

ScheduleOverlayLoad LoadScheduleOverlay(const std::string& path) {
  ScheduleOverlayLoad result;
  auto fail = [&result, &path](std::string message) {
    result.errors.push_back({path, 0, 0, std::move(message)});
    return result;
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    // ENOTDIR: state_dir is not a directory, which StateDirProblem reports; no overlay there.
    if (errno == ENOENT || errno == ENOTDIR) return result;
    return fail(std::string("cannot read: ") + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return fail("cannot read: not a regular file");
  if ((st.st_mode & 022) != 0) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(std::string("is writable by group or others (mode ") + octal +
                "), who could move a cutover; run: chmod 600 " + path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(std::string("cannot read: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return ParseScheduleOverlay(text.str(), path);
}

std::string FormatScheduleOverlay(const ScheduleOverlay& overlay, const std::string& config_file) {
  const std::string config = config_file.empty() ? "CONFIG" : config_file;
  std::string out =
      "# Written by mintgate (`mintgate ca schedule` and the admin console); do not edit.\n"
      "# Changes to the CA migration schedule, applied on top of " +
      (config_file.empty() ? std::string("the configuration file") : config_file) +
      ",\n"
      "# which is never rewritten. schedule-audit.log beside this file records each change.\n"
      "# Undo one change: mintgate ca schedule -c " +
      config +
      " --profile NAME --reset\n"
      "#              or: mintgate ca schedule -c " +
      config +
      " --canary NAME --reset\n"
      "# Undo them all: delete this file. Then reload the gateway (SIGHUP or POST /reload).\n";
  for (const auto& [name, change] : overlay.retire_at) {
    out += "\n[ca." + Key(name) + "]\n";
    out += "retire_at = " +
           (change.retire_at ? rules::FormatInstant(*change.retire_at)
                             : std::string("\"none\"  # no retirement")) +
           "\n";
    out += "changed_at = " + rules::FormatInstant(change.changed.at) + "\n";
    out += "changed_by = " + Quoted(CleanText(change.changed.by)) + "\n";
  }
  for (const auto& [ca, change] : overlay.canaries) {
    out += "\n[canary." + Key(ca) + "]\n";
    out += std::string("state = ") + (change.started ? "\"started\"" : "\"stopped\"") + "\n";
    if (change.started) {
      out += "percent = " + std::to_string(change.percent) + "\n";
      out += "clients = [";
      for (std::size_t i = 0; i < change.clients.size(); ++i) {
        out += (i > 0 ? ", " : "") + Quoted(change.clients[i]);
      }
      out += "]\n";
      out += std::string("fallback = ") + (change.fallback ? "true" : "false") + "\n";
    }
    out += "changed_at = " + rules::FormatInstant(change.changed.at) + "\n";
    out += "changed_by = " + Quoted(CleanText(change.changed.by)) + "\n";
  }
  return out;
}

std::string SaveScheduleOverlay(const ScheduleOverlay& overlay, const std::string& path,
                                const std::string& config_file) {
  const std::string text = FormatScheduleOverlay(overlay, config_file);
  const std::string dir = DirectoryOf(path);
  try {
    tls::MakeDirectories(dir);
  } catch (const tls::LoadError& e) {
    return e.what();
  }
  // In the same folder, so that the rename is atomic: a reader sees the old file or the new
  // one, never a part.
  std::string temp = path + ".XXXXXX";
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return path + ": cannot create a temporary file beside it: " + std::strerror(errno);
  auto fail = [&temp](int fd_to_close, const std::string& what) {
    const int e = errno;
    if (fd_to_close >= 0) ::close(fd_to_close);
    ::unlink(temp.c_str());
    return temp + ": " + what + ": " + std::strerror(e);
  };
  if (::fchmod(fd, 0600) != 0) return fail(fd, "cannot set mode 0600");
  TakeDirectoryOwner(fd, dir);
  if (!WriteAll(fd, text)) return fail(fd, "cannot write");
  if (::fsync(fd) != 0) return fail(fd, "cannot sync");
  if (::close(fd) != 0) return fail(-1, "cannot write");
  if (::rename(temp.c_str(), path.c_str()) != 0) return fail(-1, "cannot rename to " + path);
  // The rename itself is durable once the folder is synced.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return "";
}

ScheduleOverlayApplied ApplyScheduleOverlay(const ScheduleOverlay& overlay,
                                            const std::string& overlay_file, Config& config) {
  ScheduleOverlayApplied out;
  auto skip = [&](int line, const std::string& key, const std::string& why,
                  const std::string& option) {
    out.warnings.push_back("schedule overlay " + overlay_file +
                           (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + key +
                           ": " + why + "; the entry is skipped and the file's value applies " +
                           "(drop it: mintgate ca schedule -c " + ConfigName(config) + " " +
                           option + " --reset)");
  };
  for (const auto& [name, change] : overlay.retire_at) {
    // clang 14 (the fuzz build) cannot capture a structured binding (C++20, P1091).
    const std::string& wanted = name;
    auto profile =
        std::find_if(config.cas.begin(), config.cas.end(),
                     [&wanted](const CaProfileConfig& ca) { return ca.spec.name == wanted; });
    const CaProfileConfig* found = profile == config.cas.end() ? nullptr : &*profile;
    if (std::string problem = RetireAtProblem(config, name, found, change.retire_at.has_value());
        !problem.empty()) {
      skip(change.line, RetireAtKey(name), problem, "--profile " + name);
      continue;
    }
    out.lines.push_back(Line(RetireAtKey(name), InstantText(change.retire_at),
                             InstantText(profile->retire_at), change.changed));
    profile->retire_at = change.retire_at;
  }
  for (const auto& [ca, change] : overlay.canaries) {
    if (std::string problem = CanaryProblem(config, ca, change); !problem.empty()) {
      skip(change.line, CanaryKey(ca), problem, "--canary " + ca);
      continue;
    }
    out.lines.push_back(
        Line(CanaryKey(ca), ChangeText(change), FileCanariesText(config, ca), change.changed));
    CanaryConfig replacement;
    replacement.ca = ca;
    replacement.clients = change.clients;
    replacement.percent = change.percent;
    replacement.fallback = change.fallback;
    // line stays 0: the canary is not in the configuration file.
    std::vector<CanaryConfig> canaries;
    bool placed = false;
    for (CanaryConfig& c : config.canaries) {
      if (c.ca != ca) {
        canaries.push_back(std::move(c));
      } else if (change.started && !placed) {
        // In the place of the first: the first canary that covers a client applies, so the
        // order relative to other CAs' canaries is the file's.
        canaries.push_back(replacement);
        placed = true;
      }
    }
    if (change.started && !placed) canaries.push_back(std::move(replacement));
    config.canaries = std::move(canaries);
  }
  return out;
}

std::string AppendScheduleAudit(const std::string& path, const ScheduleAuditEntry& entry) {
  const std::string dir = DirectoryOf(path);
  try {
    tls::MakeDirectories(dir);
  } catch (const tls::LoadError& e) {
    return e.what();
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return path + ": cannot open: " + std::strerror(errno);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size == 0) TakeDirectoryOwner(fd, dir);
  const bool written = WriteAll(fd, AuditLine(entry));
  const int e = errno;
  if (::close(fd) != 0 || !written) {
    return path + ": cannot write: " + std::strerror(written ? errno : e);
  }
  return "";
}

ScheduleAuditRead ReadScheduleAudit(const std::string& path, std::size_t max_entries) {
  ScheduleAuditRead result;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno != ENOENT) result.error = path + ": cannot read: " + std::strerror(errno);
    return result;
  }
  std::deque<ScheduleAuditEntry> last;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::optional<ScheduleAuditEntry> entry = ParseAuditLine(line);
    if (!entry) {
      ++result.skipped;
      continue;
    }
    if (max_entries == 0) continue;
    last.push_back(std::move(*entry));
    if (last.size() > max_entries) last.pop_front();
  }
  result.entries.assign(std::make_move_iterator(last.begin()), std::make_move_iterator(last.end()));
  return result;
}

ScheduleEdit SetRetireAt(ScheduleOverlay& overlay, const Config& file_config,
                         const std::string& profile, std::optional<rules::Instant> retire_at,
                         const ScheduleStamp& stamp) {
  if (profile.empty()) return Refused("a CA profile name is needed");
  const CaProfileConfig* found = FindProfile(file_config, profile);
  if (std::string problem = RetireAtProblem(file_config, profile, found, retire_at.has_value());
      !problem.empty()) {
    return Refused(std::move(problem));
  }
  ScheduleEdit edit;
  RetireAtChange change{retire_at, Clean(stamp), 0};
  edit.description = Line(RetireAtKey(profile), InstantText(retire_at),
                          InstantText(found->retire_at), change.changed);
  edit.audit = Audit(change.changed, retire_at ? "retire_at" : "clear", profile,
                     EffectiveRetireAt(overlay, *found), InstantText(retire_at));
  overlay.retire_at[profile] = std::move(change);
  edit.changed = true;
  return edit;
}

ScheduleEdit ResetRetireAt(ScheduleOverlay& overlay, const Config& file_config,
                           const std::string& profile, const ScheduleStamp& stamp) {
  ScheduleEdit edit;
  auto it = overlay.retire_at.find(profile);
  const CaProfileConfig* found = FindProfile(file_config, profile);
  if (it == overlay.retire_at.end()) {
    if (found == nullptr) return Refused(UnknownProfile(file_config, profile));
    edit.description = RetireAtKey(profile) + ": the overlay does not change it; the file's " +
                       InstantText(found->retire_at) + " applies";
    return edit;
  }
  const ScheduleStamp stamped = Clean(stamp);
  const std::string old_value =
      found != nullptr ? EffectiveRetireAt(overlay, *found) : InstantText(it->second.retire_at);
  const std::string new_value = found != nullptr ? InstantText(found->retire_at) : "";
  overlay.retire_at.erase(it);
  edit.changed = true;
  edit.description = found != nullptr ? RetireAtKey(profile) + " = " + new_value +
                                            " (the file's value again; " + StampText(stamped) + ")"
                                      : RetireAtKey(profile) + ": entry dropped (" +
                                            UnknownProfile(file_config, profile) + "; " +
                                            StampText(stamped) + ")";
  edit.audit = Audit(stamped, "reset", profile, old_value, new_value);
  return edit;
}

ScheduleEdit StartCanary(ScheduleOverlay& overlay, const Config& file_config, const std::string& ca,
                         int percent, std::vector<std::string> clients, bool fallback,
                         const ScheduleStamp& stamp) {
  CanaryChange change;
  change.started = true;
  change.percent = percent;
  if (!clients.empty()) change.clients = std::move(clients);
  change.fallback = fallback;
  change.changed = Clean(stamp);
  return PutCanary(overlay, file_config, ca, std::move(change));
}

ScheduleEdit StopCanary(ScheduleOverlay& overlay, const Config& file_config, const std::string& ca,
                        const ScheduleStamp& stamp) {
  CanaryChange change;
  change.started = false;
  change.changed = Clean(stamp);
  return PutCanary(overlay, file_config, ca, std::move(change));
}

ScheduleEdit ResetCanary(ScheduleOverlay& overlay, const Config& file_config, const std::string& ca,
                         const ScheduleStamp& stamp) {
  ScheduleEdit edit;
  auto it = overlay.canaries.find(ca);
  const bool known = CanaryCaKnown(file_config, ca);
  if (it == overlay.canaries.end()) {
    if (!known) return Refused(UnknownProfile(file_config, ca));
    edit.description = CanaryKey(ca) + ": the overlay does not change it; the file's " +
                       FileCanariesText(file_config, ca) + " applies";
    return edit;
  }
  const ScheduleStamp stamped = Clean(stamp);
  const std::string old_value = EffectiveCanary(overlay, file_config, ca);
  const std::string new_value = FileCanariesText(file_config, ca);
  overlay.canaries.erase(it);
  edit.changed = true;
  edit.description =
      CanaryKey(ca) + " = " + new_value + " (the file's value again; " + StampText(stamped) + ")";
  edit.audit = Audit(stamped, "canary_reset", ca, old_value, new_value);
  return edit;
}

ScheduleEdit CommitScheduleEdit(const Config& file_config,
                                const std::function<ScheduleEdit(ScheduleOverlay&)>& edit) {
  auto failed = [](std::string why) {
    ScheduleEdit e = Refused(std::move(why));
    e.write_failed = true;
    return e;
  };
  const std::string& dir = file_config.server.state_dir;
  try {
    tls::MakeDirectories(dir);
  } catch (const tls::LoadError& e) {
    return failed(e.what());
  }
  // Load, change and save under one lock: the console and the CLI may edit at the same time.
  const std::string lock_path = dir + "/schedule.lock";
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return failed(lock_path + ": cannot open: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }  // releases the lock
  } closer{lock};
  TakeDirectoryOwner(lock, dir);
  while (::flock(lock, LOCK_EX) != 0) {
    if (errno != EINTR) return failed(lock_path + ": cannot lock: " + std::strerror(errno));
  }
  const std::string path = ScheduleOverlayPath(dir);
  ScheduleOverlayLoad loaded = LoadScheduleOverlay(path);
  if (!loaded.ok()) {
    ScheduleEdit e;
    for (const ConfigError& error : loaded.errors) e.errors.push_back(error.ToString());
    e.errors.push_back(path + ": fix or remove this file first (" + ScheduleAuditPath(dir) +
                       " lists the changes it held)");
    return e;
  }
  ScheduleEdit result = edit(loaded.overlay);
  if (!result.ok() || !result.changed) return result;
  // The header's undo commands name the file absolutely: they are read from anywhere.
  std::error_code ec;
  const std::filesystem::path config_file = std::filesystem::absolute(file_config.file, ec);
  if (std::string error =
          SaveScheduleOverlay(loaded.overlay, path, ec ? file_config.file : config_file.string());
      !error.empty()) {
    result.changed = false;
    result.write_failed = true;
    result.errors.push_back(std::move(error));
    return result;
  }
  if (std::string error = AppendScheduleAudit(ScheduleAuditPath(dir), result.audit);
      !error.empty()) {
    result.write_failed = true;
    result.errors.push_back("the change is saved in " + path +
                            " but could not be recorded in the audit log: " + error);
  }
  return result;
}

}  // namespace mintgate::proxy
