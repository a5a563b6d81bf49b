// The index must give exactly the answers of a plain first-match scan. Random rule sets and
// targets are drawn from small pools so that patterns, categories and conditions often hit.
#include <gtest/gtest.h>

#include <random>

#include "rules/rule_set.h"

namespace mintgate::rules {
namespace {

using namespace std::chrono_literals;

const char* const kBases[] = {"example.com",           "bank.example", "a.b.example", "shop.test",
                              "xn--bcher-kva.example", "com",          "test",        "b.example"};
const char* const kLabels[] = {"www", "a", "b", "api", "x-y", "mail", "1", "WWW"};

class Generator {
 public:
  explicit Generator(std::uint32_t seed) : rng_(seed) {}

  int Below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Below(100) < percent; }
  template <typename T, std::size_t N>
  const T& Pick(const T (&items)[N]) {
    return items[Below(int(N))];
  }

  std::string Name() {
    std::string name = Pick(kBases);
    for (int depth = Below(3); depth > 0; --depth) name = std::string(Pick(kLabels)) + "." + name;
    return name;
  }

  std::string V4() {
    return "10." + std::to_string(Below(3)) + "." + std::to_string(Below(3)) + "." +
           std::to_string(Below(4));
  }
  std::string V6() {
    return "2001:db8:" + std::to_string(Below(3)) + "::" + std::to_string(Below(4));
  }

  std::string Cidr() {
    switch (Below(10)) {
      case 0:
        return "10." + std::to_string(Below(3)) + ".0.0/16";
      case 1:
        return "10." + std::to_string(Below(3)) + "." + std::to_string(Below(3)) + ".0/24";
      case 2:
        return V4();
      case 3:
        return Chance(20) ? "0.0.0.0/0" : "10.0.0.0/8";
      case 4:
        return "2001:db8:" + std::to_string(Below(3)) + "::/48";
      case 5:
        return V6();
      case 6:
        return Chance(20) ? "::/0" : "::ffff:10.0.0.0/104";
      default:
        return "10." + std::to_string(Below(3)) + "." + std::to_string(Below(3)) + "." +
               std::to_string(Below(2) * 2) + "/31";
    }
  }

  std::string Pattern() {
    int kind = Below(10);
    if (kind < 2) return Cidr();
    std::string name = Name();
    if (kind < 5) return "*." + name;
    if (kind < 7) return "." + name;
    return Chance(10) ? name + "." : name;
  }

  Rule MakeRule(int id, int categories) {
    Rule rule;
    rule.name = "r" + std::to_string(id);
    rule.action = static_cast<Action>(Below(3));
    if (!Chance(25)) {
      for (int n = 1 + Below(3); n > 0; --n) rule.hosts.push_back(Pattern());
    }
    if (Chance(20)) rule.ports = {std::uint16_t(Chance(50) ? 443 : 8443)};
    if (Chance(20)) {
      for (int n = 1 + Below(2); n > 0; --n) rule.clients.push_back(Cidr());
    }
    if (Chance(10)) rule.users = {Chance(50) ? "alice" : "bob"};
    if (Chance(10)) rule.groups = {Chance(50) ? "eng" : "hr", "ops"};
    if (Chance(25)) {
      for (int n = 1 + Below(2); n > 0; --n)
        rule.categories.push_back("c" + std::to_string(Below(categories)));
    }
    if (rule.action == Action::kDecrypt && Chance(50)) rule.ca = Chance(50) ? "old" : "new";
    return rule;
  }

  Target MakeTarget() {
    Target target;
    int kind = Below(10);
    if (kind < 6) {
      target.host = Name();
      if (Chance(10)) target.host += ".";
    } else if (kind < 8) {
      target.host = V4();
    } else if (kind < 9) {
      target.host = Chance(50) ? "[" + V6() + "]" : "::ffff:10.0.0." + std::to_string(Below(4));
    } else {
      const char* odd[] = {"",     "example", "nothing.invalid", "a..example.com", ".example.com",
                           "1.2.3"};
      target.host = Pick(odd);
    }
    const std::uint16_t ports[] = {443, 8443, 80};
    target.port = Pick(ports);
    const char* clients[] = {"", "bad", "2001:db8:1::1"};
    target.client = Chance(80) ? V4() : Chance(50) ? V6() : Pick(clients);
    if (Chance(40)) target.user = Chance(50) ? "alice" : "bob";
    if (Chance(40)) target.groups = {Chance(50) ? "eng" : "hr"};
    return target;
  }

 private:
  std::mt19937 rng_;
};

TEST(RuleIndexProperty, IndexAgreesWithScan) {
  const Instant retire = std::chrono::floor<std::chrono::seconds>(
      std::chrono::sys_days{std::chrono::year{2024} / 1 / 1});
  std::size_t decisions = 0, non_default = 0;
  for (std::uint32_t seed = 1; seed <= 12; ++seed) {
    Generator gen(seed);
    const int category_count = 5;
    std::vector<Category> categories;
    for (int c = 0; c < category_count; ++c) {
      Category category{"c" + std::to_string(c), {}};
      for (int n = gen.Below(40); n > 0; --n) category.patterns.push_back(gen.Pattern());
      categories.push_back(std::move(category));
    }
    std::vector<Rule> rules;
    int rule_count = 100 + gen.Below(400);
    for (int id = 0; id < rule_count; ++id) rules.push_back(gen.MakeRule(id, category_count));
    if (seed % 3 == 0) {
      Rule fallback;
      fallback.name = "default";
      fallback.action = Action::kTunnel;
      rules.push_back(fallback);
    }
    RuleSetOptions options;
    options.inspection_enabled = seed % 4 != 0;
    options.cas = {{"default", std::nullopt, ""},
                   {"old", retire, "mid"},
                   {"mid", retire + 1h, "new"},
                   {"new", std::nullopt, ""}};
    auto compiled = RuleSet::Compile(rules, categories, options);
    if (auto* errors = std::get_if<std::vector<RuleError>>(&compiled)) {
      FAIL() << "seed " << seed << ": " << errors->front().message;
    }
    const RuleSet& set = std::get<RuleSet>(compiled);
    for (int i = 0; i < 3000; ++i) {
      Target target = gen.MakeTarget();
      Instant at = retire + std::chrono::seconds(gen.Below(3) * 1800 - 1);
      Decision indexed = set.Decide(target, at);
      Decision scanned = set.DecideByScan(target, at);
      ASSERT_EQ(indexed.rule, scanned.rule) << "seed " << seed << " host " << target.host;
      ASSERT_EQ(indexed.rule_index, scanned.rule_index);
      ASSERT_EQ(indexed.action, scanned.action);
      ASSERT_EQ(indexed.ca, scanned.ca);
      ASSERT_EQ(indexed.configured_ca, scanned.configured_ca);
      ASSERT_EQ(indexed.reason, scanned.reason);
      ++decisions;
      if (indexed.rule != "default") ++non_default;
    }
  }
  // The pools must actually exercise the rules, not just fall through to the default.
  EXPECT_GT(non_default, decisions / 2);
}

}  // namespace
}  // namespace mintgate::rules
