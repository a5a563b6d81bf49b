// Fuzzes the configuration path of `mintgate check` and `run`: the TOML text through
// ConfigLoader::Parse (proxy/config/config_loader.h) into Config, then the rules compiled by
// rules::RuleSet::Compile as proxy/config/gateway_config.cc does it, and for a rule set that
// compiles, decisions on a few targets derived from the rules themselves.
//
// Category files are read from a folder this process creates once in /tmp; a configuration
// naming a file outside it (an absolute path, "..") is skipped, so that the fuzzer never reads
// /dev/zero or the like. The index must decide exactly as the plain first-match scan.
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proxy/config/config_loader.h"
#include "rules/rule_set.h"

namespace {

using mintgate::proxy::Config;
using mintgate::rules::Decision;
using mintgate::rules::RuleSet;

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

// What conf/examples/no-decrypt-finance-health.toml names, plus a few odd lines.
constexpr const char* kCategoryFiles[][2] = {
    {"categories/finance.txt", "# banks\n.bank.example\n*.broker.example  # below only\n"},
    {"categories/health.txt", "clinic.example\n.health.example\n\n10.0.0.0/8\n"},
    {"categories/gambling.txt", "  casino.example \r\n2001:db8::/32\n*.*.bad\n"},
    {"list.txt", "www.example.com\n"},
};

std::string MakeFolder() {
  char path[] = "/tmp/mintgate-config-fuzz-XXXXXX";
  if (::mkdtemp(path) == nullptr) std::abort();
  const std::string dir = path;
  ::mkdir((dir + "/categories").c_str(), 0700);
  for (const auto& [name, text] : kCategoryFiles) std::ofstream(dir + "/" + name) << text;
  return dir;
}

const std::string& Folder();

void RemoveFolder() {
  for (const auto& [name, text] : kCategoryFiles) ::unlink((Folder() + "/" + name).c_str());
  ::rmdir((Folder() + "/categories").c_str());
  ::rmdir(Folder().c_str());
}

const std::string& Folder() {
  // Never destroyed, so RemoveFolder can still use it at exit.
  static const std::string* const dir = [] {
    auto* d = new std::string(MakeFolder());
    std::atexit(RemoveFolder);
    return d;
  }();
  return *dir;
}

bool IsPlainRelativePath(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(path.begin(), path.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/';
  });
}

// False when the loader would read a category file outside Folder().
bool CategoryFilesStayInside(std::string_view text) {
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error&) {
    return true;  // the loader stops at the syntax error, before any file
  }
  const toml::table* categories = root["category"].as_table();
  if (categories == nullptr) return true;
  for (auto&& [name, node] : *categories) {
    const toml::table* table = node.as_table();
    if (table == nullptr) continue;
    const toml::node* file = table->get("file");
    if (file == nullptr || !file->is_string()) continue;
    if (!IsPlainRelativePath(**file->as_string())) return false;
  }
  return true;
}

// As LoadGatewayConfig does it.
std::variant<RuleSet, std::vector<mintgate::rules::RuleError>> Compile(const Config& c) {
  std::vector<mintgate::rules::CaSchedule> schedules;
  bool default_configured = false;
  for (const mintgate::proxy::CaProfileConfig& ca : c.cas) {
    schedules.push_back({ca.spec.name, ca.retire_at, ca.successor});
    default_configured = default_configured || ca.spec.name == "default";
  }
  const bool default_referenced =
      c.inspection.default_ca == "default" ||
      std::any_of(c.rules.begin(), c.rules.end(),
                  [](const mintgate::rules::Rule& r) { return r.ca == "default"; });
  if (!default_configured && default_referenced) schedules.push_back({"default", {}, ""});
  mintgate::rules::RuleSetOptions options;
  options.inspection_enabled = c.inspection.enabled;
  options.default_ca = c.inspection.default_ca;
  options.cas = std::move(schedules);
  return RuleSet::Compile(c.rules, c.categories, std::move(options));
}

// A host that a pattern matches: "*.x" and ".x" become "a.x"; an address or network as is.
std::string HostFor(std::string_view pattern) {
  if (pattern.starts_with("*.") || pattern.starts_with(".")) {
    return "a." + std::string(pattern.substr(pattern.find('.') + 1));
  }
  return std::string(pattern.substr(0, pattern.find('/')));
}

void CheckDecision(const RuleSet& set, const mintgate::rules::Target& target,
                   mintgate::rules::Instant at) {
  const Decision indexed = set.Decide(target, at);
  const Decision scanned = set.DecideByScan(target, at);
  FUZZ_CHECK(indexed.rule_index == scanned.rule_index);
  FUZZ_CHECK(indexed.action == scanned.action && indexed.rule_action == scanned.rule_action);
  FUZZ_CHECK(indexed.rule == scanned.rule && indexed.ca == scanned.ca);
  FUZZ_CHECK(indexed.configured_ca == scanned.configured_ca && indexed.reason == scanned.reason);
  FUZZ_CHECK(indexed.rule_index >= 0 && std::size_t(indexed.rule_index) < set.size());
  FUZZ_CHECK(indexed.rule == set.rules()[std::size_t(indexed.rule_index)].name);
  if (indexed.action != mintgate::rules::Action::kDecrypt) FUZZ_CHECK(indexed.ca.empty());
}

void CheckDecisions(const RuleSet& set, const Config& c) {
  std::vector<mintgate::rules::Target> targets;
  auto add = [&](std::string host, std::uint16_t port, std::string client) {
    if (targets.size() >= 24) return;
    mintgate::rules::Target t;
    t.host = std::move(host);
    t.port = port;
    t.client = std::move(client);
    t.user = "alice";
    t.groups = {"staff"};
    targets.push_back(std::move(t));
  };
  add("www.example.com", 443, "127.0.0.1");
  add("192.0.2.1", 8443, "10.20.1.2");
  add("[2001:db8::1]", 443, "::1");
  for (const mintgate::rules::Rule& rule : c.rules) {
    const std::uint16_t port = rule.ports.empty() ? 443 : rule.ports.front();
    const std::string client = rule.clients.empty() ? "" : HostFor(rule.clients.front());
    for (const std::string& host : rule.hosts) add(HostFor(host), port, client);
    if (rule.hosts.empty()) add("www.example.com", port, client);
  }
  for (const mintgate::rules::Category& category : c.categories) {
    for (const std::string& pattern : category.patterns) add(HostFor(pattern), 443, "");
  }
  std::vector<mintgate::rules::Instant> instants{
      mintgate::rules::Instant(std::chrono::seconds(1'780'000'000))};
  for (const mintgate::proxy::CaProfileConfig& ca : c.cas) {
    if (ca.retire_at && instants.size() < 4) instants.push_back(*ca.retire_at);
  }
  for (const mintgate::rules::Target& target : targets) {
    for (mintgate::rules::Instant at : instants) CheckDecision(set, target, at);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (!CategoryFilesStayInside(text)) return -1;  // not added to the corpus
  const mintgate::proxy::ConfigLoadResult loaded =
      mintgate::proxy::ConfigLoader::Parse(text, Folder() + "/mintgate.toml");
  for (const mintgate::proxy::ConfigError& e : loaded.errors) FUZZ_CHECK(!e.message.empty());
  auto compiled = Compile(loaded.config);
  if (const RuleSet* set = std::get_if<RuleSet>(&compiled)) {
    CheckDecisions(*set, loaded.config);
  } else {
    for (const auto& e : std::get<std::vector<mintgate::rules::RuleError>>(compiled)) {
      FUZZ_CHECK(!e.message.empty());
    }
  }
  return 0;
}
