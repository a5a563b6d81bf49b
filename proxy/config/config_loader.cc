#include "proxy/config/config_loader.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string_view>

#include "rules/ip_address.h"

namespace mintgate::proxy {
namespace {

using namespace std::string_view_literals;

rules::SourcePos Source(const toml::node& node) {
  return {static_cast<int>(node.source().begin.line), static_cast<int>(node.source().begin.column)};
}

// Records where `node` (written as `key`) and everything inside it are, into `out`.
void RecordSources(const toml::node& node, const std::string& key,
                   std::map<std::string, rules::SourcePos, std::less<>>& out) {
  out[key] = Source(node);
  if (const toml::table* table = node.as_table()) {
    for (auto&& [name, child] : *table) {
      RecordSources(child, key + "." + std::string(name.str()), out);
    }
  } else if (const toml::array* array = node.as_array()) {
    for (std::size_t i = 0; i < array->size(); ++i) {
      RecordSources(*array->get(i), key + "[" + std::to_string(i) + "]", out);
    }
  }
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Collects errors for one file; every reader below reports through it and carries on, so
// one run lists every problem.
class Reader {
 public:
  Reader(std::string file, std::vector<ConfigError>& errors)
      : file_(std::move(file)), errors_(errors) {
    std::size_t slash = file_.rfind('/');
    dir_ = slash == std::string::npos ? "" : file_.substr(0, slash + 1);
  }

  void Error(const toml::source_region& at, std::string message) {
    errors_.push_back({file_, static_cast<int>(at.begin.line), static_cast<int>(at.begin.column),
                       std::move(message)});
  }
  void Error(std::string message) { errors_.push_back({file_, 0, 0, std::move(message)}); }

  std::string Path(const std::string& p) const {
    if (p.empty() || p.front() == '/' || dir_.empty()) return p;
    return dir_ + p;
  }

  // Reports keys of `table` that are not in `allowed`, suggesting the closest allowed one.
  void CheckKeys(const toml::table& table, std::initializer_list<std::string_view> allowed,
                 std::string_view where) {
    for (auto&& [key, value] : table) {
      (void)value;
      if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
      std::string message = "unknown key '" + std::string(key.str()) + "'";
      if (!where.empty()) message += " in [" + std::string(where) + "]";
      std::string_view best;
      std::size_t best_distance = 3;
      for (std::string_view candidate : allowed) {
        std::size_t d = EditDistance(key.str(), candidate);
        if (d < best_distance) {
          best_distance = d;
          best = candidate;
        }
      }
      if (!best.empty()) message += "; did you mean '" + std::string(best) + "'?";
      Error(key.source(), message);
    }
  }

  const toml::table* Table(const toml::table& parent, std::string_view key,
                           std::string_view where) {
    const toml::node* node = parent.get(key);
    if (node == nullptr) return nullptr;
    if (const toml::table* t = node->as_table()) return t;
    Error(node->source(), std::string(where) + " must be a table");
    return nullptr;
  }

  void Bool(const toml::table& t, std::string_view key, std::string_view where, bool& out) {
    const toml::node* node = t.get(key);
    if (node == nullptr) return;
    if (auto v = node->value_exact<bool>()) {
      out = *v;
    } else {
      TypeError(*node, where, key, "true or false");
    }
  }

  bool String(const toml::table& t, std::string_view key, std::string_view where,
              std::string& out) {
    const toml::node* node = t.get(key);
    if (node == nullptr) return false;
    if (auto v = node->value_exact<std::string>()) {
      out = *v;
      return true;
    }
    TypeError(*node, where, key, "a string");
    return false;
  }

  void Int(const toml::table& t, std::string_view key, std::string_view where, std::int64_t min,
           std::int64_t max, std::int64_t& out) {
    const toml::node* node = t.get(key);
    if (node == nullptr) return;
    auto v = node->value_exact<std::int64_t>();
    if (!v) {
      TypeError(*node, where, key, "an integer");
    } else if (*v < min || *v > max) {
      Error(node->source(), std::string(where) + "." + std::string(key) + " must be between " +
                                std::to_string(min) + " and " + std::to_string(max) + ", got " +
                                std::to_string(*v));
    } else {
      out = *v;
    }
  }

  // `sources` (optional) gets each kept element's position, parallel to `out`.
  void StringArray(const toml::table& t, std::string_view key, std::string_view where,
                   std::vector<std::string>& out,
                   std::vector<rules::SourcePos>* sources = nullptr) {
    const toml::node* node = t.get(key);
    if (node == nullptr) return;
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      TypeError(*node, where, key, "an array of strings");
      return;
    }
    out.clear();
    if (sources != nullptr) sources->clear();
    for (const toml::node& item : *array) {
      if (auto v = item.value_exact<std::string>()) {
        out.push_back(*v);
        if (sources != nullptr) sources->push_back(Source(item));
      } else {
        Error(item.source(), std::string(where) + "." + std::string(key) +
                                 ": expected a string, got " + TypeName(item));
      }
    }
  }

  void PortArray(const toml::table& t, std::string_view key, std::string_view where,
                 std::vector<std::uint16_t>& out,
                 std::vector<rules::SourcePos>* sources = nullptr) {
    const toml::node* node = t.get(key);
    if (node == nullptr) return;
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      TypeError(*node, where, key, "an array of port numbers");
      return;
    }
    out.clear();
    if (sources != nullptr) sources->clear();
    for (const toml::node& item : *array) {
      auto v = item.value_exact<std::int64_t>();
      if (!v || *v < 1 || *v > 65535) {
        Error(item.source(),
              std::string(where) + "." + std::string(key) + ": expected a port number 1-65535");
        continue;
      }
      out.push_back(static_cast<std::uint16_t>(*v));
      if (sources != nullptr) sources->push_back(Source(item));
    }
  }

  // A duration in seconds (an integer or a decimal: 0.5), stored in milliseconds.
  void Seconds(const toml::table& t, std::string_view key, std::string_view where,
               double min_seconds, double max_seconds, std::uint64_t& out_ms) {
    const toml::node* node = t.get(key);
    if (node == nullptr) return;
    std::optional<double> seconds;
    if (auto i = node->value_exact<std::int64_t>()) seconds = static_cast<double>(*i);
    if (auto d = node->value_exact<double>()) seconds = *d;
    if (!seconds) {
      TypeError(*node, where, key, "a number of seconds");
    } else if (!(*seconds >= min_seconds && *seconds <= max_seconds)) {
      std::ostringstream message;
      message << where << "." << key << " must be between " << min_seconds << " and " << max_seconds
              << " seconds";
      Error(node->source(), message.str());
    } else {
      out_ms = static_cast<std::uint64_t>(*seconds * 1000.0 + 0.5);
    }
  }

  // Ports and ranges: [80, 443, "1025-65535"].
  void PortRanges(const toml::table& t, std::string_view key, std::string_view where,
                  std::vector<PortRange>& out) {
    const toml::node* node = t.get(key);
    if (node == nullptr) return;
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      TypeError(*node, where, key, "an array of ports and \"low-high\" ranges");
      return;
    }
    out.clear();
    auto port = [](std::string_view text) -> long {
      if (text.empty() || text.size() > 5 ||
          text.find_first_not_of("0123456789") != std::string_view::npos) {
        return -1;
      }
      return std::stol(std::string(text));
    };
    for (const toml::node& item : *array) {
      long low = -1, high = -1;
      if (auto v = item.value_exact<std::int64_t>()) {
        low = high = *v;
      } else if (auto text = item.value_exact<std::string>()) {
        const std::size_t dash = text->find('-');
        low = port(std::string_view(*text).substr(0, dash));
        high = dash == std::string::npos ? low : port(std::string_view(*text).substr(dash + 1));
      }
      if (low < 1 || high > 65535 || high < low) {
        Error(item.source(), std::string(where) + "." + std::string(key) +
                                 ": expected a port 1-65535 or a range \"low-high\"");
        continue;
      }
      out.push_back({static_cast<std::uint16_t>(low), static_cast<std::uint16_t>(high)});
    }
  }

  // Each string of t[key] must be a CIDR or a single address (rules::Cidr); an error at each
  // one that is not, named `name` ("server.allow_clients").
  void CheckCidrs(const toml::table& t, std::string_view key, std::string_view name) {
    const toml::node* node = t.get(key);
    if (node == nullptr || node->as_array() == nullptr) return;
    for (const toml::node& item : *node->as_array()) {
      std::string why;
      auto text = item.value_exact<std::string>();
      if (text && !rules::Cidr::Parse(*text, &why)) {
        Error(item.source(), std::string(name) + ": \"" + *text + "\": " + why);
      }
    }
  }

  // "host:port", "[v6]:port"; `default_port` used when the port is missing (0: required).
  std::optional<HostPort> ParseHostPort(const toml::node& node, std::string_view what,
                                        std::uint16_t default_port, bool allow_port_zero) {
    auto v = node.value_exact<std::string>();
    if (!v) {
      Error(node.source(),
            std::string(what) + ": expected a \"host:port\" string, got " + TypeName(node));
      return std::nullopt;
    }
    const std::string& text = *v;
    HostPort hp;
    std::string port_text;
    if (!text.empty() && text.front() == '[') {
      std::size_t close = text.find(']');
      if (close == std::string::npos) {
        Error(node.source(), std::string(what) + ": unbalanced '[' in \"" + text + "\"");
        return std::nullopt;
      }
      hp.host = text.substr(1, close - 1);
      if (close + 1 < text.size()) {
        if (text[close + 1] != ':') {
          Error(node.source(), std::string(what) + ": expected ':' after ']' in \"" + text + "\"");
          return std::nullopt;
        }
        port_text = text.substr(close + 2);
      }
    } else {
      std::size_t colon = text.rfind(':');
      if (colon != std::string::npos && text.find(':') != colon) {
        Error(node.source(),
              std::string(what) + ": write IPv6 addresses in brackets, e.g. " + "\"[::1]:3128\"");
        return std::nullopt;
      }
      hp.host = text.substr(0, colon);
      if (colon != std::string::npos) port_text = text.substr(colon + 1);
    }
    if (hp.host.empty()) {
      Error(node.source(), std::string(what) + ": missing host in \"" + text + "\"");
      return std::nullopt;
    }
    if (port_text.empty()) {
      if (default_port == 0) {
        Error(node.source(), std::string(what) + ": missing port in \"" + text + "\"");
        return std::nullopt;
      }
      hp.port = default_port;
      return hp;
    }
    long port = -1;
    if (port_text.size() <= 5 && port_text.find_first_not_of("0123456789") == std::string::npos) {
      port = std::stol(port_text);
    }
    if (port < (allow_port_zero ? 0 : 1) || port > 65535) {
      Error(node.source(), std::string(what) + ": invalid port \"" + port_text + "\"");
      return std::nullopt;
    }
    hp.port = static_cast<std::uint16_t>(port);
    return hp;
  }

  void TypeError(const toml::node& node, std::string_view where, std::string_view key,
                 std::string_view expected) {
    Error(node.source(), std::string(where) + "." + std::string(key) + ": expected " +
                             std::string(expected) + ", got " + TypeName(node));
  }

  static std::string TypeName(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::string:
        return "a string";
      case toml::node_type::integer:
        return "an integer";
      case toml::node_type::floating_point:
        return "a number";
      case toml::node_type::boolean:
        return "a boolean";
      case toml::node_type::array:
        return "an array";
      case toml::node_type::table:
        return "a table";
      default:
        return "a date or time";
    }
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::string dir_;
  std::vector<ConfigError>& errors_;
};

std::optional<rules::Instant> ToInstant(const toml::date_time& dt) {
  using namespace std::chrono;
  if (!dt.offset) return std::nullopt;
  const year_month_day ymd{year{dt.date.year}, month{dt.date.month}, day{dt.date.day}};
  if (!ymd.ok()) return std::nullopt;
  sys_seconds t =
      sys_days{ymd} + hours{dt.time.hour} + minutes{dt.time.minute} + seconds{dt.time.second};
  return t - minutes{dt.offset->minutes};
}

void ReadServer(Reader& r, const toml::table& t, ServerConfig& out) {
  r.CheckKeys(
      t,
      {"listen"sv, "workers"sv, "allow_clients"sv, "state_dir"sv, "allow_loopback_upstreams"sv,
       "deny_destinations"sv, "http_ports"sv, "max_connections"sv, "max_connections_per_client"sv,
       "proxy_protocol"sv, "proxy_protocol_from"sv},
      "server");
  if (const toml::node* node = t.get("listen")) {
    if (const toml::array* array = node->as_array()) {
      out.listen.clear();
      for (const toml::node& item : *array) {
        if (auto hp = r.ParseHostPort(item, "server.listen", 0, true)) out.listen.push_back(*hp);
      }
      if (array->empty()) r.Error(node->source(), "server.listen: needs at least one address");
    } else {
      r.TypeError(*node, "server", "listen", "an array of \"host:port\" strings");
    }
  }
  std::int64_t workers = out.workers;
  r.Int(t, "workers", "server", 0, 256, workers);
  out.workers = static_cast<int>(workers);
  r.StringArray(t, "allow_clients", "server", out.allow_clients);
  r.CheckCidrs(t, "allow_clients", "server.allow_clients");
  r.String(t, "state_dir", "server", out.state_dir);  // resolved in Parse, default included
  r.Bool(t, "allow_loopback_upstreams", "server", out.allow_loopback_upstreams);
  r.StringArray(t, "deny_destinations", "server", out.deny_destinations);
  r.CheckCidrs(t, "deny_destinations", "server.deny_destinations");
  r.PortRanges(t, "http_ports", "server", out.http_ports);
  auto max_connections = static_cast<std::int64_t>(out.max_connections);
  r.Int(t, "max_connections", "server", 0, 10'000'000, max_connections);
  out.max_connections = static_cast<std::size_t>(max_connections);
  auto per_client = static_cast<std::int64_t>(out.max_connections_per_client);
  r.Int(t, "max_connections_per_client", "server", 0, 10'000'000, per_client);
  out.max_connections_per_client = static_cast<std::size_t>(per_client);
  std::string proxy_protocol;
  if (r.String(t, "proxy_protocol", "server", proxy_protocol)) {
    using ProxyProtocol = ServerConfig::ProxyProtocol;
    if (proxy_protocol == "off") {
      out.proxy_protocol = ProxyProtocol::kOff;
    } else if (proxy_protocol == "v1") {
      out.proxy_protocol = ProxyProtocol::kV1;
    } else if (proxy_protocol == "v2") {
      out.proxy_protocol = ProxyProtocol::kV2;
    } else if (proxy_protocol == "any") {
      out.proxy_protocol = ProxyProtocol::kAny;
    } else {
      r.Error(t.get("proxy_protocol")->source(),
              "server.proxy_protocol must be \"off\", \"v1\", \"v2\" or \"any\", got \"" +
                  proxy_protocol + "\"");
    }
  }
  r.StringArray(t, "proxy_protocol_from", "server", out.proxy_protocol_from);
  r.CheckCidrs(t, "proxy_protocol_from", "server.proxy_protocol_from");
  if (out.proxy_protocol != ServerConfig::ProxyProtocol::kOff && out.proxy_protocol_from.empty()) {
    r.Error(t.get("proxy_protocol")->source(),
            "server.proxy_protocol = \"" + proxy_protocol +
                "\" needs server.proxy_protocol_from = [\"CIDR\", ...], the load balancers "
                "allowed to send the header: without it nobody could send it and every "
                "connection would be closed");
  }
}

void ReadTimeouts(Reader& r, const toml::table& t, TimeoutsConfig& out) {
  r.CheckKeys(
      t,
      {"request_head"sv, "client_idle"sv, "connect"sv, "tls_handshake"sv, "origin_first_byte"sv,
       "origin_idle"sv, "tunnel_idle"sv, "leaf_wait"sv, "auth"sv, "linger"sv, "tcp_keepalive"sv},
      "timeouts");
  constexpr double kDay = 86400;
  r.Seconds(t, "request_head", "timeouts", 0.1, kDay, out.request_head_ms);
  r.Seconds(t, "client_idle", "timeouts", 0.1, kDay, out.client_idle_ms);
  r.Seconds(t, "connect", "timeouts", 0.1, kDay, out.connect_ms);
  r.Seconds(t, "tls_handshake", "timeouts", 0.1, kDay, out.tls_handshake_ms);
  r.Seconds(t, "origin_first_byte", "timeouts", 0.1, kDay, out.origin_first_byte_ms);
  r.Seconds(t, "origin_idle", "timeouts", 0.1, kDay, out.origin_idle_ms);
  r.Seconds(t, "tunnel_idle", "timeouts", 0.1, kDay, out.tunnel_idle_ms);
  r.Seconds(t, "leaf_wait", "timeouts", 0.1, kDay, out.leaf_wait_ms);
  r.Seconds(t, "auth", "timeouts", 0.1, 600, out.auth_ms);
  r.Seconds(t, "linger", "timeouts", 0.1, 60, out.linger_ms);
  // The kernel counts keepalive idle time in whole seconds; 0 turns the probes off.
  r.Seconds(t, "tcp_keepalive", "timeouts", 0, kDay, out.tcp_keepalive_ms);
  if (out.tcp_keepalive_ms != 0 && out.tcp_keepalive_ms < 1000) {
    r.Error(t.get("tcp_keepalive")->source(),
            "timeouts.tcp_keepalive must be 0 (off) or at least 1 second");
  }
}

void ReadDns(Reader& r, const toml::table& t, DnsConfig& out) {
  r.CheckKeys(t, {"servers"sv}, "dns");
  if (const toml::node* node = t.get("servers")) {
    if (const toml::array* array = node->as_array()) {
      for (const toml::node& item : *array) {
        if (auto hp = r.ParseHostPort(item, "dns.servers", 53, false)) out.servers.push_back(*hp);
      }
    } else {
      r.TypeError(*node, "dns", "servers", "an array of \"host:port\" strings");
    }
  }
}

void ReadAdmin(Reader& r, const toml::table& t, AdminConfig& out) {
  r.CheckKeys(t, {"listen"sv, "token_file"sv}, "admin");
  if (const toml::node* node = t.get("listen")) {
    if (auto hp = r.ParseHostPort(*node, "admin.listen", 0, true)) out.listen = *hp;
  }
  if (r.String(t, "token_file", "admin", out.token_file) && !out.token_file.empty()) {
    out.token_file = r.Path(out.token_file);
  }
}

void ReadInspection(Reader& r, const toml::table& t, InspectionConfig& out) {
  r.CheckKeys(t,
              {"enabled"sv, "default_ca"sv, "upstream_cert_errors"sv, "extra_trust"sv,
               "connect_ports"sv, "on_ca_expired"sv},
              "inspection");
  r.Bool(t, "enabled", "inspection", out.enabled);
  r.String(t, "default_ca", "inspection", out.default_ca);
  std::string errors_mode;
  if (r.String(t, "upstream_cert_errors", "inspection", errors_mode)) {
    if (errors_mode == "block") {
      out.upstream_cert_errors = UpstreamCertErrors::kBlock;
    } else if (errors_mode == "untrusted") {
      out.upstream_cert_errors = UpstreamCertErrors::kUntrusted;
    } else {
      r.Error(t.get("upstream_cert_errors")->source(),
              "inspection.upstream_cert_errors must be \"block\" or \"untrusted\", got \"" +
                  errors_mode + "\"");
    }
  }
  r.StringArray(t, "extra_trust", "inspection", out.extra_trust);
  for (std::string& p : out.extra_trust) p = r.Path(p);
  r.PortArray(t, "connect_ports", "inspection", out.connect_ports);
  std::string expired;
  if (r.String(t, "on_ca_expired", "inspection", expired)) {
    if (expired == "block") {
      out.on_ca_expired = OnCaExpired::kBlock;
    } else if (expired == "tunnel") {
      out.on_ca_expired = OnCaExpired::kTunnel;
    } else {
      r.Error(t.get("on_ca_expired")->source(),
              "inspection.on_ca_expired must be \"block\" or \"tunnel\", got \"" + expired + "\"");
    }
  }
}

void ReadPortal(Reader& r, const toml::table& t, PortalConfig& out) {
  r.CheckKeys(t, {"enabled"sv, "host"sv, "pac_bypass"sv}, "portal");
  r.Bool(t, "enabled", "portal", out.enabled);
  if (r.String(t, "host", "portal", out.host)) {
    for (char& ch : out.host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (out.host.empty() || out.host.find_first_of(" /:@") != std::string::npos) {
      r.Error(t.get("host")->source(), "portal.host must be a host name, got \"" + out.host + "\"");
    }
  }
  r.StringArray(t, "pac_bypass", "portal", out.pac_bypass);
  if (const toml::node* node = t.get("pac_bypass"); node != nullptr && node->as_array()) {
    for (const toml::node& item : *node->as_array()) {
      auto bypass = item.value_exact<std::string>();
      if (bypass && (bypass->empty() || bypass->find_first_of(" \"'\\") != std::string::npos)) {
        r.Error(item.source(),
                "portal.pac_bypass: \"" + *bypass + "\" is not a host pattern or network");
      }
    }
  }
}

void ReadLdap(Reader& r, const toml::table& t, LdapConfig& out) {
  constexpr const char* kWhere = "auth.ldap";
  r.CheckKeys(t,
              {"url"sv, "starttls"sv, "user_dn"sv, "search_base"sv, "search_filter"sv, "bind_dn"sv,
               "bind_password_file"sv, "group_base"sv, "group_filter"sv, "group_attribute"sv,
               "ca_file"sv, "cache_ttl"sv, "timeout"sv},
              kWhere);
  r.String(t, "url", kWhere, out.url);
  r.Bool(t, "starttls", kWhere, out.starttls);
  r.String(t, "user_dn", kWhere, out.user_dn);
  r.String(t, "search_base", kWhere, out.search_base);
  r.String(t, "search_filter", kWhere, out.search_filter);
  r.String(t, "bind_dn", kWhere, out.bind_dn);
  if (r.String(t, "bind_password_file", kWhere, out.bind_password_file) &&
      !out.bind_password_file.empty()) {
    out.bind_password_file = r.Path(out.bind_password_file);
  }
  r.String(t, "group_base", kWhere, out.group_base);
  r.String(t, "group_filter", kWhere, out.group_filter);
  r.String(t, "group_attribute", kWhere, out.group_attribute);
  if (r.String(t, "ca_file", kWhere, out.ca_file) && !out.ca_file.empty()) {
    out.ca_file = r.Path(out.ca_file);
  }
  r.Seconds(t, "cache_ttl", kWhere, 0, 86400, out.cache_ttl_ms);
  r.Seconds(t, "timeout", kWhere, 0.1, 60, out.timeout_ms);
  const bool ldaps = out.url.rfind("ldaps://", 0) == 0;
  const bool ldap = out.url.rfind("ldap://", 0) == 0;
  if (const toml::node* node = t.get("url"); node != nullptr && !ldaps && !ldap) {
    r.Error(node->source(),
            "auth.ldap.url must start with ldaps:// or ldap:// (with starttls), "
            "got \"" +
                out.url + "\"");
  } else if (ldap && !out.starttls) {
    r.Error(t.get("url")->source(),
            "auth.ldap.url is ldap:// without starttls = true: passwords would cross the network "
            "in clear; use ldaps:// or set starttls = true");
  }
  if (!out.url.empty()) {
    if (out.user_dn.empty() == out.search_base.empty()) {
      r.Error(t.source(),
              "[auth.ldap] needs exactly one of user_dn = \"uid={user},...\" or "
              "search_base (with search_filter)");
    } else if (!out.user_dn.empty() && out.user_dn.find("{user}") == std::string::npos) {
      r.Error(t.get("user_dn")->source(), "auth.ldap.user_dn must contain {user}");
    } else if (!out.search_base.empty() && out.search_filter.find("{user}") == std::string::npos) {
      r.Error(t.get("search_filter") != nullptr ? t.get("search_filter")->source() : t.source(),
              "auth.ldap.search_filter must contain {user}");
    }
  }
}

void ReadAuth(Reader& r, const toml::table& t, AuthConfig& out) {
  constexpr const char* kWhere = "auth";
  r.CheckKeys(t,
              {"schemes"sv, "unidentified"sv, "login_ca"sv, "login_ttl"sv, "realm"sv, "keytab"sv,
               "service_principal"sv, "strip_realm"sv, "htpasswd"sv, "allow_weak_hashes"sv,
               "groups_file"sv, "static_users"sv, "credential_cache"sv, "ldap"sv},
              kWhere);
  out.line = static_cast<int>(t.source().begin.line);
  std::vector<std::string> schemes;
  r.StringArray(t, "schemes", kWhere, schemes);
  for (const std::string& name : schemes) {
    AuthScheme scheme;
    if (name == "negotiate") {
      scheme = AuthScheme::kNegotiate;
    } else if (name == "basic") {
      scheme = AuthScheme::kBasic;
    } else {
      r.Error(t.get("schemes")->source(),
              "auth.schemes: \"" + name + "\" is not a scheme; use \"negotiate\" and/or \"basic\"");
      continue;
    }
    if (out.Offers(scheme)) {
      r.Error(t.get("schemes")->source(), "auth.schemes lists \"" + name + "\" twice");
      continue;
    }
    out.schemes.push_back(scheme);
  }
  if (!out.schemes.empty()) out.unidentified = Unidentified::kChallenge;
  std::string unidentified;
  if (r.String(t, "unidentified", kWhere, unidentified)) {
    if (unidentified == "challenge") {
      out.unidentified = Unidentified::kChallenge;
      if (out.schemes.empty()) {
        r.Error(t.get("unidentified")->source(),
                "auth.unidentified = \"challenge\" needs auth.schemes (nothing to offer in a 407)");
      }
    } else if (unidentified == "deny") {
      out.unidentified = Unidentified::kDeny;
    } else if (unidentified == "allow") {
      out.unidentified = Unidentified::kAllow;
    } else if (unidentified == "decrypt-to-login") {
      out.unidentified = Unidentified::kDecryptToLogin;
    } else {
      r.Error(t.get("unidentified")->source(),
              "auth.unidentified must be \"challenge\", \"deny\", \"allow\" or "
              "\"decrypt-to-login\", got \"" +
                  unidentified + "\"");
    }
  }
  r.String(t, "login_ca", kWhere, out.login_ca);
  r.Seconds(t, "login_ttl", kWhere, 1, 30 * 86400, out.login_ttl_ms);
  r.String(t, "realm", kWhere, out.realm);
  if (out.realm.find_first_of("\"\\\r\n") != std::string::npos) {
    r.Error(t.get("realm")->source(),
            "auth.realm may not contain quotes, backslashes or "
            "line breaks");
  }
  if (r.String(t, "keytab", kWhere, out.keytab) && !out.keytab.empty()) {
    out.keytab = r.Path(out.keytab);
  }
  r.String(t, "service_principal", kWhere, out.service_principal);
  r.Bool(t, "strip_realm", kWhere, out.strip_realm);
  if (r.String(t, "htpasswd", kWhere, out.htpasswd) && !out.htpasswd.empty()) {
    out.htpasswd = r.Path(out.htpasswd);
  }
  r.Bool(t, "allow_weak_hashes", kWhere, out.allow_weak_hashes);
  if (r.String(t, "groups_file", kWhere, out.groups_file) && !out.groups_file.empty()) {
    out.groups_file = r.Path(out.groups_file);
  }
  r.Seconds(t, "credential_cache", kWhere, 0, 86400, out.credential_cache_ms);
  if (const toml::node* node = t.get("static_users")) {
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      r.TypeError(*node, kWhere, "static_users",
                  "an array of { clients = [\"CIDR\"], user = \"name\" } tables");
    } else {
      for (const toml::node& item : *array) {
        const toml::table* entry = item.as_table();
        if (entry == nullptr) {
          r.Error(item.source(), "auth.static_users: expected { clients = [...], user = \"...\" }");
          continue;
        }
        r.CheckKeys(*entry, {"clients"sv, "user"sv}, "auth.static_users");
        StaticUser user;
        user.line = static_cast<int>(item.source().begin.line);
        r.StringArray(*entry, "clients", "auth.static_users", user.clients);
        r.String(*entry, "user", "auth.static_users", user.user);
        if (user.user.empty() || user.clients.empty()) {
          r.Error(item.source(),
                  "auth.static_users: each entry needs user = \"name\" and "
                  "clients = [\"CIDR\", ...]");
          continue;
        }
        r.CheckCidrs(*entry, "clients", "auth.static_users");
        out.static_users.push_back(std::move(user));
      }
    }
  }
  if (const toml::table* ldap = r.Table(t, "ldap", "[auth.ldap]")) ReadLdap(r, *ldap, out.ldap);
  const bool negotiate = out.Offers(AuthScheme::kNegotiate);
  const bool basic = out.Offers(AuthScheme::kBasic);
  if (negotiate && out.keytab.empty()) {
    r.Error(t.source(),
            "auth.schemes offers \"negotiate\": set auth.keytab to the keytab with "
            "the HTTP/<gateway name> key");
  }
  if (basic && out.htpasswd.empty() && out.ldap.url.empty()) {
    r.Error(t.source(),
            "auth.schemes offers \"basic\": set auth.htpasswd or [auth.ldap] url to "
            "check passwords against");
  }
  if (out.unidentified == Unidentified::kDecryptToLogin && out.htpasswd.empty() &&
      out.ldap.url.empty()) {
    r.Error(t.source(),
            "auth.unidentified = \"decrypt-to-login\": the portal's login needs "
            "auth.htpasswd or [auth.ldap] url to check passwords against");
  }
}

void ReadCanary(Reader& r, const toml::table& t, Config& out) {
  r.CheckKeys(t, {"ca"sv, "clients"sv, "percent"sv, "fallback"sv}, "canary");
  CanaryConfig canary;
  canary.line = static_cast<int>(t.source().begin.line);
  if (!r.String(t, "ca", "canary", canary.ca)) {
    r.Error(t.source(), "[[canary]] needs ca = \"profile\"");
  } else {
    canary.ca_source = Source(*t.get("ca"));
  }
  r.StringArray(t, "clients", "canary", canary.clients, &canary.client_sources);
  std::int64_t percent = canary.percent;
  r.Int(t, "percent", "canary", 0, 100, percent);
  canary.percent = static_cast<int>(percent);
  r.Bool(t, "fallback", "canary", canary.fallback);
  out.canaries.push_back(std::move(canary));
}

void ReadCa(Reader& r, const std::string& name, const toml::table& t, Config& out) {
  const std::string where = "ca." + name;
  r.CheckKeys(t,
              {"cert"sv, "key"sv, "chain"sv, "passphrase_file"sv, "passphrase_env"sv, "retire_at"sv,
               "successor"sv},
              where);
  CaProfileConfig ca;
  ca.spec.name = name;
  ca.line = static_cast<int>(t.source().begin.line);
  if (!r.String(t, "cert", where, ca.spec.cert_file)) {
    r.Error(t.source(), "[" + where + "] needs cert = \"file\"");
  }
  if (!r.String(t, "key", where, ca.spec.key_file)) {
    r.Error(t.source(), "[" + where + "] needs key = \"file\"");
  }
  ca.spec.cert_file = r.Path(ca.spec.cert_file);
  ca.spec.key_file = r.Path(ca.spec.key_file);
  r.StringArray(t, "chain", where, ca.spec.chain_files);
  for (std::string& p : ca.spec.chain_files) p = r.Path(p);
  if (r.String(t, "passphrase_file", where, ca.spec.passphrase.file)) {
    ca.spec.passphrase.file = r.Path(ca.spec.passphrase.file);
  }
  r.String(t, "passphrase_env", where, ca.spec.passphrase.env);
  if (const toml::node* node = t.get("retire_at")) {
    const toml::date_time* dt = node->is_date_time() ? &node->ref<toml::date_time>() : nullptr;
    std::optional<rules::Instant> at = dt != nullptr ? ToInstant(*dt) : std::nullopt;
    if (!at) {
      r.Error(node->source(), where + ".retire_at: expected a date and time with a UTC offset, " +
                                  "e.g. 2022-06-30T00:00:00+09:00");
    }
    ca.retire_at = at;
  }
  r.String(t, "successor", where, ca.successor);
  out.cas.push_back(std::move(ca));
}

void ReadMint(Reader& r, const toml::table& t, MintConfig& out) {
  r.CheckKeys(t,
              {"leaf_key"sv, "leaf_days"sv, "cache_entries"sv, "signing_intermediate"sv,
               "mirror_wildcards"sv, "max_pending"sv},
              "mint");
  std::string key;
  if (r.String(t, "leaf_key", "mint", key)) {
    if (auto parsed = tls::ParseLeafKeyType(key)) {
      out.leaf_key = *parsed;
    } else {
      r.Error(t.get("leaf_key")->source(),
              "mint.leaf_key must be \"ecdsa-p256\" or \"rsa-2048\", got \"" + key + "\"");
    }
  }
  std::int64_t days = out.leaf_days;
  // Chrome refuses leaves whose span, with the hour of back-dating, exceeds 200 days.
  r.Int(t, "leaf_days", "mint", 1, 199, days);
  out.leaf_days = static_cast<int>(days);
  auto entries = static_cast<std::int64_t>(out.cache_entries);
  r.Int(t, "cache_entries", "mint", 1, 10'000'000, entries);
  out.cache_entries = static_cast<std::size_t>(entries);
  r.Bool(t, "signing_intermediate", "mint", out.signing_intermediate);
  r.Bool(t, "mirror_wildcards", "mint", out.mirror_wildcards);
  auto pending = static_cast<std::int64_t>(out.max_pending);
  r.Int(t, "max_pending", "mint", 1, 1'000'000, pending);
  out.max_pending = static_cast<std::size_t>(pending);
}

void ReadRule(Reader& r, const toml::table& t, std::size_t index, Config& out) {
  const std::string where = "rule #" + std::to_string(index + 1);
  r.CheckKeys(t,
              {"name"sv, "action"sv, "hosts"sv, "ports"sv, "clients"sv, "users"sv, "groups"sv,
               "categories"sv, "ca"sv},
              "[rule]");
  rules::Rule rule;
  rule.line = static_cast<int>(t.source().begin.line);
  rules::RuleSource& source = rule.source;
  source.table = Source(t);
  if (!r.String(t, "name", where, rule.name) || rule.name.empty()) {
    r.Error(t.source(), where + " needs a name = \"...\"");
  }
  if (const toml::node* node = t.get("name")) source.name = Source(*node);
  if (const toml::node* node = t.get("action")) source.action = Source(*node);
  const std::string named = rule.name.empty() ? where : "rule \"" + rule.name + "\"";
  std::string action;
  if (r.String(t, "action", named, action)) {
    if (auto parsed = rules::ParseAction(action)) {
      rule.action = *parsed;
    } else {
      r.Error(t.get("action")->source(), named + ": action must be \"decrypt\", \"tunnel\" or " +
                                             "\"block\", got \"" + action + "\"");
    }
  } else if (t.get("action") == nullptr) {
    r.Error(t.source(), named + " needs action = \"decrypt\" | \"tunnel\" | \"block\"");
  }
  r.StringArray(t, "hosts", named, rule.hosts, &source.hosts);
  r.PortArray(t, "ports", named, rule.ports, &source.ports);
  r.StringArray(t, "clients", named, rule.clients, &source.clients);
  r.StringArray(t, "users", named, rule.users, &source.users);
  r.StringArray(t, "groups", named, rule.groups, &source.groups);
  r.StringArray(t, "categories", named, rule.categories, &source.categories);
  if (r.String(t, "ca", named, rule.ca)) source.ca = Source(*t.get("ca"));
  out.rules.push_back(std::move(rule));
}

void ReadCategory(Reader& r, const std::string& name, const toml::table& t, Config& out) {
  const std::string where = "category." + name;
  r.CheckKeys(t, {"file"sv}, where);
  std::string file;
  if (!r.String(t, "file", where, file)) {
    r.Error(t.source(), "[" + where + "] needs file = \"list.txt\"");
    return;
  }
  file = r.Path(file);
  std::ifstream in(file);
  if (!in) {
    r.Error(t.get("file")->source(), where + ": cannot read " + file + ": " + std::strerror(errno));
    return;
  }
  rules::Category category;
  category.name = name;
  rules::CategorySource source;
  source.table = Source(t);
  source.file = file;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (std::size_t hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    const std::size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const std::size_t last = line.find_last_not_of(" \t\r");
    category.patterns.push_back(line.substr(first, last - first + 1));
    source.patterns.push_back({number, static_cast<int>(first) + 1});
  }
  out.categories.push_back(std::move(category));
  out.category_files.push_back(file);
  out.category_sources.push_back(std::move(source));
}

template <class Fn>
void ForEachNamedTable(Reader& r, const toml::table& root, std::string_view key, Fn fn) {
  const toml::table* group = r.Table(root, key, key);
  if (group == nullptr) return;
  for (auto&& [name, node] : *group) {
    if (const toml::table* t = node.as_table()) {
      fn(std::string(name.str()), *t);
    } else {
      r.Error(node.source(),
              "[" + std::string(key) + "." + std::string(name.str()) + "] must be a table");
    }
  }
}

}  // namespace

std::string HostPort::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

rules::SourcePos Config::SourceOf(std::string_view key) const {
  auto it = sources.find(key);
  return it == sources.end() ? rules::SourcePos{} : it->second;
}

std::string ConfigError::ToString() const {
  std::string out = file.empty() ? "<config>" : file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  return out + ": " + message;
}

ConfigLoadResult ConfigLoader::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigLoadResult result;
    result.errors.push_back({path, 0, 0, std::string("cannot read: ") + std::strerror(errno)});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

ConfigLoadResult ConfigLoader::Parse(const std::string& text, const std::string& path) {
  ConfigLoadResult result;
  result.config.file = path;
  Reader r(path, result.errors);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    r.Error(e.source(), "TOML syntax: " + std::string(e.description()));
    return result;
  }
  Config& c = result.config;
  for (auto&& [key, node] : root) {
    if (key.str() != "rule" && key.str() != "canary") {
      RecordSources(node, std::string(key.str()), c.sources);
    }
  }
  r.CheckKeys(root,
              {"server"sv, "dns"sv, "admin"sv, "timeouts"sv, "inspection"sv, "ca"sv, "mint"sv,
               "rule"sv, "category"sv, "log"sv, "portal"sv, "canary"sv, "readiness"sv, "auth"sv},
              "");
  if (const toml::table* t = r.Table(root, "server", "[server]")) ReadServer(r, *t, c.server);
  if (const toml::table* t = r.Table(root, "dns", "[dns]")) ReadDns(r, *t, c.dns);
  if (const toml::table* t = r.Table(root, "admin", "[admin]")) ReadAdmin(r, *t, c.admin);
  if (const toml::table* t = r.Table(root, "timeouts", "[timeouts]")) {
    ReadTimeouts(r, *t, c.timeouts);
  }
  if (const toml::table* t = r.Table(root, "inspection", "[inspection]")) {
    ReadInspection(r, *t, c.inspection);
  }
  ForEachNamedTable(r, root, "ca",
                    [&](const std::string& name, const toml::table& t) { ReadCa(r, name, t, c); });
  if (const toml::table* t = r.Table(root, "mint", "[mint]")) ReadMint(r, *t, c.mint);
  if (const toml::table* t = r.Table(root, "portal", "[portal]")) ReadPortal(r, *t, c.portal);
  if (const toml::table* t = r.Table(root, "auth", "[auth]")) ReadAuth(r, *t, c.auth);
  if (const toml::table* t = r.Table(root, "readiness", "[readiness]")) {
    r.CheckKeys(*t, {"max_clients"sv}, "readiness");
    auto max_clients = static_cast<std::int64_t>(c.readiness.max_clients);
    r.Int(*t, "max_clients", "readiness", 1, 10'000'000, max_clients);
    c.readiness.max_clients = static_cast<std::size_t>(max_clients);
  }
  if (const toml::node* node = root.get("canary")) {
    const toml::array* array = node->as_array();
    if (array == nullptr || !array->is_array_of_tables()) {
      r.Error(node->source(), "canaries are written as [[canary]] tables");
    } else {
      for (std::size_t i = 0; i < array->size(); ++i) ReadCanary(r, *array->get(i)->as_table(), c);
    }
  }
  if (const toml::node* node = root.get("rule")) {
    const toml::array* array = node->as_array();
    if (array == nullptr || !array->is_array_of_tables()) {
      r.Error(node->source(), "rules are written as [[rule]] tables");
    } else {
      for (std::size_t i = 0; i < array->size(); ++i) {
        ReadRule(r, *array->get(i)->as_table(), i, c);
      }
    }
  }
  ForEachNamedTable(r, root, "category", [&](const std::string& name, const toml::table& t) {
    ReadCategory(r, name, t, c);
  });
  if (const toml::table* t = r.Table(root, "log", "[log]")) {
    r.CheckKeys(*t, {"access"sv, "format"sv}, "log");
    if (r.String(*t, "access", "log", c.log.access) && c.log.access != "-") {
      c.log.access = r.Path(c.log.access);
    }
    std::string format;
    if (r.String(*t, "format", "log", format)) {
      if (format == "json") {
        c.log.format = LogFormat::kJson;
      } else if (format == "squid") {
        c.log.format = LogFormat::kSquid;
      } else {
        r.Error(t->get("format")->source(),
                "log.format must be \"json\" or \"squid\", got \"" + format + "\"");
      }
    }
  }
  // The default state_dir too is relative to the configuration file.
  c.server.state_dir = r.Path(c.server.state_dir);
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  return result;
}

}  // namespace mintgate::proxy
