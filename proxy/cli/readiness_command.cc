#include "proxy/cli/readiness_command.h"

#include <netdb.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "proxy/config/admin_token.h"
#include "proxy/config/config_loader.h"
#include "proxy/config/rfc3339.h"
#include "proxy/control/text_table.h"
#include "proxy/runtime/readiness.h"
#include "rules/ip_address.h"
#include "tls/tls_error.h"

namespace mintgate::proxy {
namespace {

constexpr int kOk = 0;
constexpr int kUsageError = 2;
constexpr int kRuntimeFailure = 3;

using Clock = std::chrono::steady_clock;

// "HOST:PORT" or "[V6]:PORT".
std::optional<HostPort> ParseAdminAddress(const std::string& text) {
  HostPort hp;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    hp.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return std::nullopt;
    hp.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (hp.host.empty() || port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int number = std::stoi(port);
  if (number < 1 || number > 65535) return std::nullopt;
  hp.port = static_cast<std::uint16_t>(number);
  return hp;
}

std::string Lowercased(const char* text) {
  std::string s = text;
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

int MillisecondsLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Waits for `events` on `fd` until the deadline: false on timeout.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, MillisecondsLeft(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return true;  // the following call reports the error
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Connects to one resolved address; returns the socket or -1 with `error` set.
int ConnectOne(const addrinfo& ai, Clock::time_point deadline, std::string& error) {
  const int fd =
      ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
  if (fd < 0) {
    error = Lowercased(std::strerror(errno));
    return -1;
  }
  int rc = ::connect(fd, ai.ai_addr, ai.ai_addrlen);
  if (rc != 0 && errno == EINPROGRESS) {
    if (!WaitFor(fd, POLLOUT, deadline)) {
      ::close(fd);
      error = "no connection within the timeout";
      return -1;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    rc = so_error == 0 ? 0 : -1;
    errno = so_error;
  }
  if (rc != 0) {
    error = Lowercased(std::strerror(errno));
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Number(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return "-";
  return it->dump();
}

std::string Text(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// When a verdict of one kind was last reached ("" when never).
std::string SeenAt(const nlohmann::json& client, const char* key) {
  const auto it = client.find(key);
  return it != client.end() && it->is_object() ? Text(*it, "at") : "";
}

// How the latest verdict was reached, as the access log writes it: "application_data",
// "alert:unknown_ca", "closed_after_handshake".
std::string Evidence(const nlohmann::json& client) {
  std::string evidence = Text(client, "evidence");
  const std::string status = Text(client, "status");
  const auto seen = client.find(status == "trusts" ? "last_trusted" : "last_rejected");
  if (!evidence.empty() && seen != client.end() && seen->is_object()) {
    const std::string alert = Text(*seen, "alert");
    if (!alert.empty()) evidence += ":" + alert;
  }
  return evidence;
}

// The report of one gateway (`merged` false; `heading` its address) or the merged one of
// several (`heading` names them), which adds the column SEEN BY.
void PrintReport(const nlohmann::json& doc, const std::string& heading, bool merged,
                 std::ostream& out) {
  if (merged) {
    out << "Client readiness merged from " << heading << ", " << Cell(Text(doc, "generated_at"))
        << "\n";
  } else {
    out << "Client readiness reported by mintgate at " << heading << ", "
        << Cell(Text(doc, "generated_at")) << "\n";
  }
  out << Number(doc, "clients_tracked") << " clients tracked (at most "
      << Number(doc, "max_clients") << "; " << Number(doc, "evicted")
      << " forgotten as least recently seen)\n";
  const auto profiles = doc.find("profiles");
  if (profiles == doc.end() || !profiles->is_array() || profiles->empty()) {
    out << "\nNo client verdicts recorded yet: clients appear after their first decrypted "
           "connection.\n";
    return;
  }
  for (const nlohmann::json& p : *profiles) {
    if (!p.is_object()) continue;
    const auto trusting = p.value("trusting", std::uint64_t{0});
    const auto rejecting = p.value("rejecting", std::uint64_t{0});
    const auto unknown = p.value("unknown", std::uint64_t{0});
    const std::uint64_t total = trusting + rejecting;
    out << "\nProfile \"" << Text(p, "profile") << "\": " << trusting << " of " << total
        << " clients trust it";
    if (total > 0) out << " (" << (trusting * 100 / total) << "%)";
    out << ", " << rejecting << " reject it";
    if (unknown > 0) out << ", " << unknown << " never used it (unknown)";
    out << "\n";
    std::vector<std::vector<std::string>> table = {{"CLIENT", "USER", "STATUS", "EVIDENCE",
                                                    "TRUSTED", "REJECTED", "UNUSED", "LAST TRUSTED",
                                                    "LAST REJECTED"}};
    if (merged) table.front().push_back("SEEN BY");
    std::size_t shown = 0;
    if (const auto clients = p.find("clients"); clients != p.end() && clients->is_array()) {
      for (const nlohmann::json& c : *clients) {
        if (!c.is_object()) continue;
        table.push_back({Cell(Text(c, "client")), Cell(Text(c, "user")), Cell(Text(c, "status")),
                         Cell(Evidence(c)), Number(c, "trusted"), Number(c, "rejected"),
                         Number(c, "unused"), Cell(SeenAt(c, "last_trusted")),
                         Cell(SeenAt(c, "last_rejected"))});
        if (merged) {
          std::string seen_by;
          if (const auto by = c.find("seen_by"); by != c.end() && by->is_array()) {
            for (const nlohmann::json& g : *by) {
              if (!g.is_string()) continue;
              if (!seen_by.empty()) seen_by += ",";
              seen_by += g.get<std::string>();
            }
          }
          table.back().push_back(Cell(seen_by));
        }
        ++shown;
      }
    }
    PrintTable(out, table, "  ");
    if (p.value("clients_truncated", false)) {
      if (merged) {
        out << "  ... incomplete: a gateway listed only part of its clients; the counts above "
               "cover the "
            << shown << " listed (ask that gateway alone for its own counts)\n";
      } else {
        out << "  ... the first " << shown << " of " << total << " clients (see --json)\n";
      }
    }
  }
}

// ---- merging several gateways' documents ----

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

// Seconds since the epoch of an RFC 3339 string; kNever for null or anything else.
std::int64_t SecondsOf(const nlohmann::json& value) {
  if (!value.is_string()) return kNever;
  const std::optional<rules::Instant> at = ParseRfc3339(value.get_ref<const std::string&>());
  return at ? at->time_since_epoch().count() : kNever;
}

// A count field: 0 unless a non-negative integer.
std::uint64_t CountOf(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer() && it->get<std::int64_t>() > 0) {
    return static_cast<std::uint64_t>(it->get<std::int64_t>());
  }
  return 0;
}

// A member, null when absent (or `j` is no object).
const nlohmann::json& Member(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull = nullptr;
  if (!j.is_object()) return kNull;
  const auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// The time of a "last_trusted"/"last_rejected" object: kNever when null.
std::int64_t SeenSeconds(const nlohmann::json& seen) {
  return seen.is_object() ? SecondsOf(Member(seen, "at")) : kNever;
}

// As ReadinessTracker::ToJson orders clients: IPv4 before IPv6, then numerically; anything
// that is no address after them, by text.
bool ClientLess(const std::string& a, const std::string& b) {
  const std::optional<rules::IpAddress> x = rules::IpAddress::Parse(a);
  const std::optional<rules::IpAddress> y = rules::IpAddress::Parse(b);
  if (x.has_value() != y.has_value()) return x.has_value();
  if (!x) return a < b;
  if (x->family() != y->family()) return x->family() == rules::IpAddress::Family::kV4;
  return x->bytes() < y->bytes();
}

// One client under one profile, over the gateways that list it there.
struct MergedClient {
  // The row with the latest verdict ("trusts"/"rejects"), or null while none has one.
  nlohmann::json verdict;
  std::int64_t verdict_at = kNever;
  nlohmann::json first_row;  // the first gateway's row (for a client unknown everywhere)
  std::uint64_t trusted = 0, rejected = 0, unused = 0;
  nlohmann::json last_trusted, last_rejected;  // the latest of each kind
  std::int64_t last_trusted_at = kNever, last_rejected_at = kNever;
  // The last_alert of the gateway with the latest rejection among those that recorded one.
  nlohmann::json last_alert;
  std::int64_t last_alert_at = kNever;
  bool has_last_alert = false;
  nlohmann::json first_seen, last_seen;
  std::int64_t first_seen_at = kNever, last_seen_at = kNever;
  std::vector<std::string> verdict_gateways;  // those with a verdict here, in --admin order
};

struct MergedProfile {
  std::map<std::string, MergedClient> clients;
  bool truncated = false;
  // Each gateway's history points (hour, trusting, rejecting), oldest first.
  struct Point {
    std::int64_t hour = 0;
    std::uint64_t trusting = 0, rejecting = 0;
  };
  std::vector<std::vector<Point>> histories;
  std::map<std::int64_t, std::string> hour_text;  // how the gateways wrote each hour
};

// One address over every profile and gateway.
struct MergedAddress {
  std::vector<std::string> gateways;  // those that track it (list it anywhere), --admin order
  nlohmann::json user;                // the user of the gateway that saw it last, with one
  std::int64_t user_seen_at = kNever;
  bool has_user = false;
};

void AddRow(MergedClient& m, const std::string& gateway, const nlohmann::json& row) {
  if (m.first_row.is_null()) m.first_row = row;
  // Connections counted: each connection reached one gateway, so the counts add up.
  m.trusted += CountOf(row, "trusted");
  m.rejected += CountOf(row, "rejected");
  m.unused += CountOf(row, "unused");

  const nlohmann::json& status = Member(row, "status");
  const bool trusts = status == "trusts";
  if (trusts || status == "rejects") {
    m.verdict_gateways.push_back(gateway);
    // The status is the verdict reached last over all gateways, with its evidence. Within
    // one second (the documents' resolution) a rejection wins over a trust: before a cutover
    // a client better re-checked than broken. Otherwise the earlier gateway's stays.
    const std::int64_t at = SeenSeconds(Member(row, trusts ? "last_trusted" : "last_rejected"));
    const bool replaces = m.verdict.is_null() || at > m.verdict_at ||
                          (at == m.verdict_at && !trusts && m.verdict["status"] == "trusts");
    if (replaces) {
      m.verdict = row;
      m.verdict_at = at;
    }
  }
  // The latest trust and the latest rejection, each with its evidence, alert and SNI.
  const nlohmann::json& lt = Member(row, "last_trusted");
  if (const std::int64_t at = SeenSeconds(lt);
      lt.is_object() && (m.last_trusted.is_null() || at > m.last_trusted_at)) {
    m.last_trusted = lt;
    m.last_trusted_at = at;
  }
  const nlohmann::json& lr = Member(row, "last_rejected");
  const std::int64_t rejected_at = SeenSeconds(lr);
  if (lr.is_object() && (m.last_rejected.is_null() || rejected_at > m.last_rejected_at)) {
    m.last_rejected = lr;
    m.last_rejected_at = rejected_at;
  }
  if (const nlohmann::json& alert = Member(row, "last_alert"); alert.is_string()) {
    if (!m.has_last_alert || rejected_at > m.last_alert_at) {
      m.last_alert = alert;
      m.last_alert_at = rejected_at;
      m.has_last_alert = true;
    }
  }
  // The first and the last time any gateway saw it with this profile.
  const nlohmann::json& first = Member(row, "first_seen");
  if (const std::int64_t at = SecondsOf(first);
      first.is_string() && (m.first_seen.is_null() || at < m.first_seen_at)) {
    m.first_seen = first;
    m.first_seen_at = at;
  }
  const nlohmann::json& last = Member(row, "last_seen");
  if (const std::int64_t at = SecondsOf(last);
      last.is_string() && (m.last_seen.is_null() || at > m.last_seen_at)) {
    m.last_seen = last;
    m.last_seen_at = at;
  }
}

// The latest trust or rejection that is the status's own verdict: on a tie in time, the one
// of the row that decided the status (its evidence is the one shown).
void PreferTheVerdictsOwn(MergedClient& m) {
  if (m.verdict.is_null()) return;
  const bool trusts = m.verdict["status"] == "trusts";
  const nlohmann::json& own = Member(m.verdict, trusts ? "last_trusted" : "last_rejected");
  nlohmann::json& latest = trusts ? m.last_trusted : m.last_rejected;
  const std::int64_t latest_at = trusts ? m.last_trusted_at : m.last_rejected_at;
  if (own.is_object() && SeenSeconds(own) >= latest_at) latest = own;
}

nlohmann::json StringArray(const std::vector<std::string>& items) {
  nlohmann::json array = nlohmann::json::array();
  for (const std::string& item : items) array.push_back(item);
  return array;
}

// The merged chart of one profile. Each gateway's point is its counts when the hour's last
// verdict was recorded, and holds until its next point; the merged point of an hour is the
// sum, over the gateways, of each one's latest point at or before that hour. A sum, not a
// union: the points carry counts only, so a client tracked by two gateways counts twice here
// (unlike the profile's counts, which come from the merged rows); the shape of the chart and
// the share that trusts are what it shows. A gateway whose history is full (the newest
// kHistoryPoints hours) does not reach back further, so hours before its first point are left
// out; at most kHistoryPoints points, the newest.
nlohmann::json MergeHistory(const MergedProfile& p) {
  std::set<std::int64_t> hours;
  std::int64_t earliest = kNever;
  for (const auto& points : p.histories) {
    for (const auto& point : points) hours.insert(point.hour);
    if (points.size() >= ReadinessTracker::kHistoryPoints) {
      earliest = std::max(earliest, points.front().hour);
    }
  }
  std::vector<nlohmann::json> merged;
  std::vector<std::size_t> next(p.histories.size(), 0);
  for (const std::int64_t hour : hours) {
    std::uint64_t trusting = 0, rejecting = 0;
    for (std::size_t g = 0; g < p.histories.size(); ++g) {
      const auto& points = p.histories[g];
      while (next[g] < points.size() && points[next[g]].hour <= hour) ++next[g];
      if (next[g] == 0) continue;  // no point yet: nothing counted by this gateway
      trusting += points[next[g] - 1].trusting;
      rejecting += points[next[g] - 1].rejecting;
    }
    if (hour < earliest) continue;
    merged.push_back(
        {{"at", p.hour_text.at(hour)}, {"trusting", trusting}, {"rejecting", rejecting}});
  }
  const std::size_t skip = merged.size() > ReadinessTracker::kHistoryPoints
                               ? merged.size() - ReadinessTracker::kHistoryPoints
                               : 0;
  nlohmann::json out = nlohmann::json::array();
  for (std::size_t i = skip; i < merged.size(); ++i) out.push_back(std::move(merged[i]));
  return out;
}

}  // namespace

// How each field of the gateways' documents is merged (the decisions, field by field):
//   generated_at            the newest.
//   clients_tracked         the distinct addresses listed over all gateways (a client tracked by
//                           two counts once); when a gateway listed only part of a profile's
//                           clients, at least the largest gateway's own count.
//   max_clients             the sum: each gateway tracks up to its own.
//   evicted                 the sum of the gateways' evictions.
//   profiles                the union by name, sorted as one gateway sorts them.
//   trusting, rejecting,    recounted from the merged rows, never added up.
//   unknown
//   clients_truncated       true when any gateway cut its list of that profile short.
//   history                 per hour, the sum of each gateway's latest point at or before it
//                           (see MergeHistory: the points hold counts, not clients).
//   clients                 the union by address, sorted as one gateway sorts them; per row:
//     status, evidence      of the latest verdict over the gateways ("unknown" when none has
//                           one); on a tie within the second, "rejects".
//     trusted, rejected,    the sum: each connection reached one gateway.
//     unused
//     last_trusted,         the latest of each kind (the status's own on a tie).
//     last_rejected
//     last_alert            of the gateway whose latest rejection is the latest among those
//                           that recorded an alert.
//     first_seen, last_seen the earliest and the latest.
//     user                  the latest user identified behind the address: of the gateway that
//                           saw the address last among those that identified one.
//     seen_by (new)         the --admin addresses with a verdict on the client under the
//                           profile; for a client unknown there, those that track it.
// A client that no gateway lists under a profile they all know of is listed as "unknown",
// as one gateway lists a client tracked only for other profiles. Fields this merge does not
// know are dropped at the top and profile level (nothing says how to merge them) and, in a
// client row, are those of the row with the latest verdict.
nlohmann::json MergeReadiness(const std::vector<std::pair<std::string, nlohmann::json>>& docs) {
  std::map<std::string, MergedProfile> profiles;  // by name, as ToJson orders them
  std::map<std::string, MergedAddress> addresses;
  nlohmann::json generated_at = nullptr;
  std::int64_t generated_seconds = kNever;
  std::uint64_t max_clients = 0, evicted = 0, most_tracked = 0;
  bool any_truncated = false;

  for (const auto& [gateway, doc] : docs) {
    if (!doc.is_object()) continue;
    // generated_at: the newest of the documents (they were asked one after the other).
    if (const nlohmann::json& at = Member(doc, "generated_at");
        at.is_string() && (generated_at.is_null() || SecondsOf(at) > generated_seconds)) {
      generated_at = at;
      generated_seconds = SecondsOf(at);
    }
    // max_clients: each gateway holds up to its own, so together up to the sum. evicted: the
    // sum of the gateways' evictions (a client forgotten by two counts twice; another gateway
    // may still track it).
    max_clients += CountOf(doc, "max_clients");
    evicted += CountOf(doc, "evicted");
    most_tracked = std::max(most_tracked, CountOf(doc, "clients_tracked"));
    // The latest time this gateway saw each address (any profile), and the user it names.
    std::map<std::string, std::pair<std::int64_t, nlohmann::json>> seen_here;

    const nlohmann::json& list = Member(doc, "profiles");
    if (!list.is_array()) continue;
    for (const nlohmann::json& p : list) {
      if (!p.is_object() || !Member(p, "profile").is_string()) continue;
      MergedProfile& merged = profiles[p["profile"].get<std::string>()];
      if (Member(p, "clients_truncated") == true) merged.truncated = any_truncated = true;
      if (const nlohmann::json& clients = Member(p, "clients"); clients.is_array()) {
        for (const nlohmann::json& row : clients) {
          if (!row.is_object() || !Member(row, "client").is_string()) continue;
          const std::string client = row["client"].get<std::string>();
          AddRow(merged.clients[client], gateway, row);
          const auto it = seen_here.try_emplace(client, kNever, nullptr).first;
          it->second.first = std::max(it->second.first, SecondsOf(Member(row, "last_seen")));
          if (const nlohmann::json& user = Member(row, "user"); user.is_string()) {
            it->second.second = user;
          }
        }
      }
      std::vector<MergedProfile::Point> points;
      if (const nlohmann::json& history = Member(p, "history"); history.is_array()) {
        for (const nlohmann::json& point : history) {
          if (!point.is_object()) continue;
          const std::int64_t hour = SecondsOf(Member(point, "at"));
          if (hour == kNever) continue;
          points.push_back({hour, CountOf(point, "trusting"), CountOf(point, "rejecting")});
          merged.hour_text.try_emplace(hour, point["at"].get<std::string>());
        }
      }
      std::stable_sort(points.begin(), points.end(),
                       [](const auto& a, const auto& b) { return a.hour < b.hour; });
      merged.histories.push_back(std::move(points));
    }
    for (auto& [client, seen] : seen_here) {
      MergedAddress& a = addresses[client];
      a.gateways.push_back(gateway);
      // user: the one identified behind the address by the gateway that saw it last (a
      // gateway that never identified anyone there does not erase it).
      if (seen.second.is_string() && (!a.has_user || seen.first > a.user_seen_at)) {
        a.user = seen.second;
        a.user_seen_at = seen.first;
        a.has_user = true;
      }
    }
  }

  std::vector<std::string> all_clients;
  for (const auto& entry : addresses) all_clients.push_back(entry.first);
  std::sort(all_clients.begin(), all_clients.end(), ClientLess);

  nlohmann::json out = {
      {"generated_at", generated_at},
      // Every address once, however many gateways track it. When a gateway
      // listed only part of its clients, at least the most one tracks.
      {"clients_tracked", any_truncated ? std::max<std::uint64_t>(all_clients.size(), most_tracked)
                                        : all_clients.size()},
      {"max_clients", max_clients},
      {"evicted", evicted},
      {"profiles", nlohmann::json::array()}};
  for (auto& [name, p] : profiles) {
    nlohmann::json rows = nlohmann::json::array();
    std::uint64_t trusting = 0, rejecting = 0, unknown = 0;
    for (const std::string& client : all_clients) {
      const MergedAddress& address = addresses.at(client);
      const auto found = p.clients.find(client);
      // A client no gateway lists under this profile: tracked by gateways that do not know
      // the profile at all, so unknown here, as one gateway would list it; unless a gateway
      // listed only part of this profile's clients (it may be among the others).
      if (found == p.clients.end() && p.truncated) continue;
      nlohmann::json row;
      if (found == p.clients.end()) {
        row = ReadinessTracker::UnknownRow(client, "");  // its user is set below
      } else {
        MergedClient& m = found->second;
        PreferTheVerdictsOwn(m);
        // The row of the latest verdict: its status and evidence (and any field this merge
        // does not know); the others below.
        row = m.verdict.is_null() ? m.first_row : m.verdict;
        if (m.verdict.is_null()) {
          row["status"] = "unknown";
          row["evidence"] = nullptr;
        }
        row["trusted"] = m.trusted;
        row["rejected"] = m.rejected;
        row["unused"] = m.unused;
        row["last_trusted"] = m.last_trusted;
        row["last_rejected"] = m.last_rejected;
        row["last_alert"] = m.last_alert;
        row["first_seen"] = m.first_seen;
        row["last_seen"] = m.last_seen;
      }
      row["user"] = address.user;
      // seen_by: the gateways with a verdict on this client under this profile; for a client
      // unknown here, those that track it.
      const bool has_verdict = found != p.clients.end() && !found->second.verdict.is_null();
      row["seen_by"] = StringArray(has_verdict ? found->second.verdict_gateways : address.gateways);
      // The profile's counts, from the merged rows: a client seen by two gateways counts once.
      const nlohmann::json& status = row["status"];
      (status == "trusts" ? trusting : status == "rejects" ? rejecting : unknown)++;
      rows.push_back(std::move(row));
    }
    // Fields of a profile this merge does not know are left out: nothing says how to merge them.
    out["profiles"].push_back({{"profile", name},
                               {"trusting", trusting},
                               {"rejecting", rejecting},
                               {"unknown", unknown},
                               {"clients", std::move(rows)},
                               // Any gateway's list cut short leaves the merged one incomplete
                               // (and its counts those of the listed clients).
                               {"clients_truncated", p.truncated},
                               {"history", MergeHistory(p)}});
  }
  return out;
}

namespace {

// Its /readiness document, or nullopt with `problem` saying why not (one line, no "error: ").
std::optional<nlohmann::json> AskGateway(const HostPort& address, const std::string& where,
                                         const std::string& token, const std::string& token_file,
                                         int timeout_ms, std::string& problem) {
  const AdminFetchResult fetched = FetchAdmin(address, "/readiness", timeout_ms, token);
  switch (fetched.status) {
    case AdminFetchResult::Status::kUnreachable:
      problem = "cannot reach the admin listener at " + where + ": " + fetched.error +
                " — is mintgate running?";
      return std::nullopt;
    case AdminFetchResult::Status::kBadResponse:
      problem = "the admin listener at " + where + ": " + fetched.error;
      return std::nullopt;
    case AdminFetchResult::Status::kOk:
      break;
  }
  if (fetched.http_status == 401) {
    problem = "the admin listener at " + where + " refused the token from " + token_file +
              " (401): it is not the token that gateway uses (another state_dir or "
              "admin.token_file, or the file changed and the gateway was not reloaded)";
    return std::nullopt;
  }
  if (fetched.http_status != 200) {
    problem = "the admin listener at " + where + " answered " + std::to_string(fetched.http_status);
    if (fetched.http_status == 404) problem += " (a gateway without client readiness tracking?)";
    const std::string detail = Trimmed(fetched.body.substr(0, 200));
    if (!detail.empty()) problem += ": " + detail;
    return std::nullopt;
  }
  nlohmann::json doc = nlohmann::json::parse(fetched.body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    problem = "the admin listener at " + where +
              " did not answer with a readiness document (JSON object)";
    return std::nullopt;
  }
  return doc;
}

}  // namespace

AdminFetchResult FetchAdmin(const HostPort& address, const std::string& path, int timeout_ms,
                            const std::string& token) {
  AdminFetchResult result;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  // A wildcard listen address is reached on the loopback of its family.
  std::string host = address.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    result.error = "cannot resolve " + host + ": " + ::gai_strerror(rc);
    return result;
  }
  int fd = -1;
  for (const addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    std::string error;
    fd = ConnectOne(*ai, deadline, error);
    // "connection refused" from one address is the more useful story than a later timeout.
    if (fd < 0 && (result.error.empty() || error == "connection refused")) result.error = error;
  }
  ::freeaddrinfo(found);
  if (fd < 0) return result;
  Fd socket(fd);
  result.error.clear();

  // The admin listener wants its own address as Host: the one connected to.
  std::string request = "GET " + path +
                        " HTTP/1.1\r\nHost: " + HostPort{host, address.port}.ToString() +
                        "\r\nAccept: application/json\r\nConnection: close\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  request += "\r\n";
  struct Cleanse {
    std::string& text;
    ~Cleanse() { OPENSSL_cleanse(text.data(), text.size()); }
  } cleanse{request};
  result.status = AdminFetchResult::Status::kBadResponse;
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(fd, POLLOUT, deadline)) {
        result.error = "the request could not be sent within the timeout";
        return result;
      }
    } else {
      result.error = "sending the request failed: " + Lowercased(std::strerror(errno));
      return result;
    }
  }

  // Read to the end (the admin listener closes after one response), or to Content-Length.
  std::string response;
  std::size_t header_end = std::string::npos;
  std::optional<std::size_t> content_length;
  char buffer[16384];
  for (;;) {
    if (header_end != std::string::npos && content_length &&
        response.size() - header_end >= *content_length) {
      break;
    }
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!WaitFor(fd, POLLIN, deadline)) {
          result.error = "no complete answer within the timeout";
          return result;
        }
        continue;
      }
      result.error = "reading the answer failed: " + Lowercased(std::strerror(errno));
      return result;
    }
    response.append(buffer, static_cast<std::size_t>(n));
    if (header_end == std::string::npos) {
      const std::size_t end = response.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      header_end = end + 4;
      // Content-Length, case-insensitively.
      std::string head = response.substr(0, end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const std::size_t at = head.find("\r\ncontent-length:");
      if (at != std::string::npos) {
        content_length = std::strtoull(head.c_str() + at + 17, nullptr, 10);
      }
    }
  }

  if (header_end == std::string::npos) {
    result.error = response.empty() ? "the connection closed without an answer"
                                    : "the answer is not an HTTP response";
    return result;
  }
  int major = 0, minor = 0, status = 0;
  if (std::sscanf(response.c_str(), "HTTP/%d.%d %d", &major, &minor, &status) != 3 ||
      status < 100 || status > 999) {
    result.error = "the answer is not an HTTP response";
    return result;
  }
  result.body = response.substr(header_end);
  if (content_length) {
    if (result.body.size() < *content_length) {
      result.error = "the answer ended early";
      return result;
    }
    result.body.resize(*content_length);
  }
  result.http_status = status;
  result.status = AdminFetchResult::Status::kOk;
  return result;
}

int RunCaReadiness(const CaReadinessArgs& args, std::ostream& out, std::ostream& err) {
  // Without a file, the embedded default's: 127.0.0.1:9090 and ./mintgate-state.
  Config config = ConfigLoader::Parse("", "").config;
  if (!args.config.empty()) {
    ConfigLoadResult loaded = ConfigLoader::LoadFile(args.config);
    if (!loaded.ok()) {
      for (const ConfigError& e : loaded.errors) err << "error: " << e.ToString() << "\n";
      return kUsageError;
    }
    config = std::move(loaded.config);
  }
  // The listeners asked, each with the name it goes by in the report: the --admin text.
  std::vector<std::pair<HostPort, std::string>> gateways;
  std::vector<std::string> given;
  if (!args.admin.empty()) given.push_back(args.admin);
  given.insert(given.end(), args.admins.begin(), args.admins.end());
  for (const std::string& text : given) {
    const std::optional<HostPort> parsed = ParseAdminAddress(text);
    if (!parsed) {
      err << "error: --admin \"" << text
          << "\" is not HOST:PORT (such as 127.0.0.1:9090 or [::1]:9090)\n";
      return kUsageError;
    }
    // Asking one gateway twice would count its connections twice.
    if (std::any_of(gateways.begin(), gateways.end(), [&parsed](const auto& g) {
          return g.first.host == parsed->host && g.first.port == parsed->port;
        })) {
      err << "error: --admin \"" << text << "\" is given twice\n";
      return kUsageError;
    }
    gateways.emplace_back(*parsed, text);
  }
  if (gateways.empty()) gateways.emplace_back(config.admin.listen, config.admin.listen.ToString());
  if (gateways.size() == 1) gateways.front().second = gateways.front().first.ToString();

  const std::string token_file = args.token_file.empty() ? AdminTokenPath(config) : args.token_file;
  std::string token;
  try {
    // The gateway refuses a token file others can read; reading one is no new leak.
    token = ReadAdminToken(token_file, /*check_mode=*/false);
  } catch (const tls::LoadError& e) {
    err << "error: cannot read the admin token: " << e.what() << " (the gateway creates "
        << "state_dir/admin.token at first start; give the file with --token-file, or -c the "
           "gateway's configuration)\n";
    return kUsageError;
  }
  struct Cleanse {
    std::string& text;
    ~Cleanse() { OPENSSL_cleanse(text.data(), text.size()); }
  } cleanse{token};

  if (gateways.size() == 1) {
    const auto& [address, where] = gateways.front();
    std::string problem;
    const std::optional<nlohmann::json> doc =
        AskGateway(address, where, token, token_file, args.timeout_ms, problem);
    if (!doc) {
      err << "error: " << problem << "\n";
      return kRuntimeFailure;
    }
    if (args.json) {
      out << doc->dump(2) << "\n";
      return kOk;
    }
    PrintReport(*doc, where, /*merged=*/false, out);
    return kOk;
  }

  // Several: one after the other, each with its own timeout; those that do not answer are
  // named on `err` and left out of the merge.
  std::vector<std::pair<std::string, nlohmann::json>> docs;
  nlohmann::json listing = nlohmann::json::array();
  std::vector<std::string> answered, silent;
  for (const auto& [address, where] : gateways) {
    std::string problem;
    std::optional<nlohmann::json> doc =
        AskGateway(address, where, token, token_file, args.timeout_ms, problem);
    if (!doc) {
      err << "warning: " << problem << "\n";
      listing.push_back({{"address", where}, {"answered", false}, {"error", problem}});
      silent.push_back(where);
      continue;
    }
    listing.push_back({{"address", where}, {"answered", true}});
    answered.push_back(where);
    docs.emplace_back(where, std::move(*doc));
  }
  if (docs.empty()) {
    err << "error: none of the " << gateways.size() << " admin listeners answered\n";
    return kRuntimeFailure;
  }
  nlohmann::json merged = MergeReadiness(docs);
  merged["gateways"] = std::move(listing);
  if (args.json) {
    out << merged.dump(2) << "\n";
    return kOk;
  }
  const auto join = [](const std::vector<std::string>& items) {
    std::string text;
    for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
    return text;
  };
  std::string heading = std::to_string(answered.size()) + " of " + std::to_string(gateways.size()) +
                        " gateways (" + join(answered);
  if (!silent.empty()) heading += "; not answering: " + join(silent);
  heading += ")";
  PrintReport(merged, heading, /*merged=*/true, out);
  return kOk;
}

}  // namespace mintgate::proxy
