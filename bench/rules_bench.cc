// Rule decisions per second with a large, mixed rule list (SPEC §4 index requirement:
// BM_RuleMatch/10000 >= 1,000,000 decisions/s on one core).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "rules/rule_set.h"

namespace {

using mintgate::rules::Action;
using mintgate::rules::Category;
using mintgate::rules::Decision;
using mintgate::rules::Instant;
using mintgate::rules::Rule;
using mintgate::rules::RuleSet;
using mintgate::rules::RuleSetOptions;
using mintgate::rules::Target;

struct Fixture {
  std::vector<RuleSet> set;  // a vector only because RuleSet has no default constructor
  std::vector<Target> targets;
  double matched_share = 0;  // targets decided by a rule other than the default
};

std::string Domain(int i) {
  return "site" + std::to_string(i) + ".example" + std::to_string(i % 7);
}

Fixture Build(int rule_count) {
  std::mt19937 rng(42);
  auto below = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  const int category_count = 5;
  const int category_entries = 100000;
  std::vector<Category> categories;
  for (int c = 0; c < category_count; ++c) categories.push_back({"cat" + std::to_string(c), {}});
  for (int i = 0; i < category_entries; ++i) {
    std::string name = "c" + std::to_string(i) + ".list" + std::to_string(i % 13) + ".test";
    categories[i % category_count].patterns.push_back(i % 3 == 0 ? "." + name : name);
  }
  std::vector<Rule> rules;
  for (int i = 0; i < rule_count; ++i) {
    Rule rule;
    rule.name = "rule" + std::to_string(i);
    rule.action = static_cast<Action>(i % 3);
    switch (i % 10) {
      case 0:
      case 1:
      case 2:
        rule.hosts = {Domain(i)};
        break;
      case 3:
      case 4:
        rule.hosts = {"*." + Domain(i)};
        break;
      case 5:
        rule.hosts = {"." + Domain(i), "api." + Domain(i + 1)};
        break;
      case 6:
        rule.hosts = {Domain(i)};
        rule.clients = {"10." + std::to_string(i % 256) + ".0.0/16", "2001:db8::/32"};
        break;
      case 7:
        rule.hosts = {"10." + std::to_string(i % 256) + "." + std::to_string(i / 256 % 256) +
                      ".0/24"};
        rule.ports = {443, 8443};
        break;
      case 8:
        rule.hosts = {"*." + Domain(i)};
        rule.users = {"user" + std::to_string(i % 50)};
        break;
      default:
        // A few category rules (most category rules would be redundant: first match wins).
        if (i % 100 == 9) {
          rule.categories = {"cat" + std::to_string(i / 100 % category_count)};
          rule.ports = {static_cast<std::uint16_t>(i % 200 == 9 ? 443 : 8443)};
        } else {
          rule.hosts = {Domain(i)};
          rule.groups = {"g" + std::to_string(i % 20)};
        }
    }
    rules.push_back(std::move(rule));
  }
  RuleSetOptions options;
  options.cas = {{"default", std::nullopt, ""}};
  auto compiled = RuleSet::Compile(std::move(rules), std::move(categories), options);
  Fixture fixture;
  fixture.set.push_back(std::get<RuleSet>(std::move(compiled)));
  // Most targets are aimed at one rule (as real traffic mostly hits configured sites); the
  // rest are category hosts and names no rule mentions.
  for (int t = 0; t < 4096; ++t) {
    Target target;
    int i = below(rule_count);
    int kind = below(10);
    target.port = below(4) == 0 ? 8443 : 443;
    target.client = below(5) == 0 ? "2001:db8::5" : "10." + std::to_string(below(256)) + ".1.2";
    target.user = "user" + std::to_string(below(60));
    target.groups = {"g" + std::to_string(below(25))};
    if (kind < 6) {
      switch (i % 10) {
        case 3:
        case 4:
        case 8:
          target.host = "www.a." + Domain(i);
          target.user = "user" + std::to_string(i % 50);
          break;
        case 5:
          target.host = below(2) ? "API." + Domain(i + 1) + "." : Domain(i);
          break;
        case 7:
          target.host =
              "10." + std::to_string(i % 256) + "." + std::to_string(i / 256 % 256) + ".7";
          break;
        default:
          target.host = Domain(i);
          target.client = "10." + std::to_string(i % 256) + ".1.2";
          target.groups = {"g" + std::to_string(i % 20)};
      }
    } else if (kind < 8) {
      int entry = below(category_entries);
      std::string name =
          "c" + std::to_string(entry) + ".list" + std::to_string(entry % 13) + ".test";
      target.host = entry % 3 == 0 ? "x." + name : name;
    } else {
      target.host = "miss" + std::to_string(i) + ".nowhere.example";
    }
    fixture.targets.push_back(std::move(target));
  }
  const Instant now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  int matched = 0;
  for (const Target& target : fixture.targets) {
    matched += fixture.set.front().Decide(target, now).rule != "default";
  }
  fixture.matched_share = double(matched) / double(fixture.targets.size());
  return fixture;
}

void BM_RuleMatch(benchmark::State& state) {
  static const Fixture fixture = Build(static_cast<int>(state.range(0)));
  const RuleSet& set = fixture.set.front();
  const Instant at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  std::size_t next = 0;
  for (auto _ : state) {
    Decision decision = set.Decide(fixture.targets[next], at);
    benchmark::DoNotOptimize(decision);
    next = (next + 1) % fixture.targets.size();
  }
  state.counters["matched_share"] = fixture.matched_share;
  state.counters["decisions_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RuleMatch)->Arg(10000);

}  // namespace
