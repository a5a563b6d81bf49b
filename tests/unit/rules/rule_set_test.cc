#include "rules/rule_set.h"

#include <gtest/gtest.h>

#include "rules/ca_resolver.h"

namespace mintgate::rules {
namespace {

using std::chrono::sys_days;
using namespace std::chrono_literals;

const Instant kNow = std::chrono::floor<std::chrono::seconds>(sys_days{2024y / 1 / 1});

RuleSetOptions Options() {
  RuleSetOptions options;
  options.cas = {{"default", std::nullopt, ""}, {"new", std::nullopt, ""}};
  return options;
}

Rule MakeRule(std::string name, Action action, std::vector<std::string> hosts = {}) {
  Rule rule;
  rule.name = std::move(name);
  rule.action = action;
  rule.hosts = std::move(hosts);
  return rule;
}

RuleSet MustCompile(std::vector<Rule> rules, std::vector<Category> categories = {},
                    RuleSetOptions options = Options()) {
  auto result = RuleSet::Compile(std::move(rules), std::move(categories), std::move(options));
  if (auto* errors = std::get_if<std::vector<RuleError>>(&result)) {
    for (const auto& e : *errors) ADD_FAILURE() << e.message;
    std::abort();
  }
  return std::get<RuleSet>(std::move(result));
}

std::vector<std::string> Errors(std::vector<Rule> rules, std::vector<Category> categories = {},
                                RuleSetOptions options = Options()) {
  auto result = RuleSet::Compile(std::move(rules), std::move(categories), std::move(options));
  if (auto* errors = std::get_if<std::vector<RuleError>>(&result)) {
    std::vector<std::string> messages;
    for (const RuleError& e : *errors) messages.push_back(e.message);
    return messages;
  }
  ADD_FAILURE() << "compiled without errors";
  return {};
}

Target To(std::string host, std::uint16_t port = 443, std::string client = "10.1.2.3") {
  Target target;
  target.host = std::move(host);
  target.port = port;
  target.client = std::move(client);
  return target;
}

// Every test decision goes through both paths, so each case also checks the index.
Decision Decide(const RuleSet& set, const Target& target, Instant at = kNow) {
  Decision indexed = set.Decide(target, at);
  Decision scanned = set.DecideByScan(target, at);
  EXPECT_EQ(indexed.rule, scanned.rule);
  EXPECT_EQ(indexed.action, scanned.action);
  EXPECT_EQ(indexed.ca, scanned.ca);
  EXPECT_EQ(indexed.reason, scanned.reason);
  return indexed;
}

TEST(RuleSet, ImplicitDefaultDecryptsWithDefaultCa) {
  RuleSet set = MustCompile({});
  EXPECT_EQ(set.size(), 1u);
  EXPECT_TRUE(set.has_implicit_default());
  Decision d = Decide(set, To("www.example.com"));
  EXPECT_EQ(d.action, Action::kDecrypt);
  EXPECT_EQ(d.rule, "default");
  EXPECT_EQ(d.rule_index, 0);
  EXPECT_EQ(d.ca, "default");
  EXPECT_EQ(d.configured_ca, "default");
  EXPECT_EQ(d.reason, "no rule matched; default rule: decrypt with \"default\"");
}

TEST(RuleSet, ExplicitDefaultLastOverrides) {
  RuleSet set = MustCompile(
      {MakeRule("a", Action::kBlock, {"a.example"}), MakeRule("default", Action::kTunnel)});
  EXPECT_FALSE(set.has_implicit_default());
  EXPECT_EQ(set.size(), 2u);
  Decision d = Decide(set, To("b.example"));
  EXPECT_EQ(d.action, Action::kTunnel);
  EXPECT_EQ(d.rule, "default");
  EXPECT_EQ(d.rule_index, 1);
  EXPECT_EQ(d.ca, "");
  EXPECT_EQ(d.reason, "no rule matched; default rule (#2): tunnel");
}

TEST(RuleSet, FirstMatchWins) {
  Rule finance = MakeRule("no-decrypt-finance", Action::kTunnel, {"*.bank.example"});
  finance.line = 40;
  RuleSet set = MustCompile({MakeRule("block-ads", Action::kBlock, {"ads.bank.example"}), finance,
                             MakeRule("all-bank", Action::kDecrypt, {".bank.example"})});
  EXPECT_EQ(Decide(set, To("ads.bank.example")).rule, "block-ads");
  Decision d = Decide(set, To("WWW.bank.example."));
  EXPECT_EQ(d.rule, "no-decrypt-finance");
  EXPECT_EQ(d.rule_index, 1);
  EXPECT_EQ(d.action, Action::kTunnel);
  EXPECT_EQ(d.reason,
            "rule \"no-decrypt-finance\" (#2, line 40) matched host \"www.bank.example\" by "
            "pattern \"*.bank.example\"; action tunnel");
  Decision self = Decide(set, To("bank.example"));
  EXPECT_EQ(self.rule, "all-bank");
  EXPECT_EQ(self.ca, "default");
}

TEST(RuleSet, PortsUsersGroupsClients) {
  Rule ports = MakeRule("ports", Action::kBlock);
  ports.ports = {8443, 9443};
  Rule users = MakeRule("users", Action::kTunnel);
  users.users = {"alice"};
  Rule groups = MakeRule("groups", Action::kTunnel);
  groups.groups = {"finance", "hr"};
  Rule clients = MakeRule("clients", Action::kBlock);
  clients.clients = {"192.168.0.0/16", "2001:db8::/32"};
  RuleSet set = MustCompile({ports, users, groups, clients});
  EXPECT_EQ(Decide(set, To("x.example", 8443)).rule, "ports");
  EXPECT_EQ(Decide(set, To("x.example", 443)).rule, "default");
  Target alice = To("x.example");
  alice.user = "alice";
  EXPECT_EQ(Decide(set, alice).rule, "users");
  alice.user = "Alice";  // user names are exact
  EXPECT_EQ(Decide(set, alice).rule, "default");
  Target hr = To("x.example");
  hr.groups = {"staff", "hr"};
  EXPECT_EQ(Decide(set, hr).rule, "groups");
  EXPECT_EQ(Decide(set, To("x.example", 443, "192.168.5.5")).rule, "clients");
  Decision v6 = Decide(set, To("x.example", 443, "[2001:db8::7]"));
  EXPECT_EQ(v6.rule, "clients");
  EXPECT_EQ(v6.reason,
            "rule \"clients\" (#4) matched any host, client 2001:db8::7 in 2001:db8::/32; "
            "action block");
  EXPECT_EQ(Decide(set, To("x.example", 443, "::ffff:192.168.5.5")).rule, "default");
  EXPECT_EQ(Decide(set, To("x.example", 443, "")).rule, "default");
  EXPECT_EQ(Decide(set, To("x.example", 443, "garbage")).rule, "default");
}

TEST(RuleSet, AllFieldsMustMatch) {
  Rule rule = MakeRule("all", Action::kBlock, {".corp.example"});
  rule.ports = {443};
  rule.clients = {"10.0.0.0/8"};
  rule.users = {"bob"};
  rule.groups = {"eng"};
  rule.categories = {"work"};
  RuleSet set = MustCompile({rule}, {{"work", {"*.corp.example"}}});
  Target t = To("git.corp.example", 443, "10.9.9.9");
  t.user = "bob";
  t.groups = {"eng"};
  Decision d = Decide(set, t);
  EXPECT_EQ(d.rule, "all");
  EXPECT_EQ(d.reason,
            "rule \"all\" (#1) matched host \"git.corp.example\" by pattern \".corp.example\", "
            "\"git.corp.example\" in category \"work\", port 443, client 10.9.9.9 in 10.0.0.0/8, "
            "user \"bob\", group \"eng\"; action block");
  auto miss = [&](auto change) {
    Target other = t;
    change(other);
    return Decide(set, other).rule;
  };
  EXPECT_EQ(miss([](Target& x) { x.host = "corp.example"; }), "default");  // not in category
  EXPECT_EQ(miss([](Target& x) { x.port = 8443; }), "default");
  EXPECT_EQ(miss([](Target& x) { x.client = "11.0.0.1"; }), "default");
  EXPECT_EQ(miss([](Target& x) { x.user = ""; }), "default");
  EXPECT_EQ(miss([](Target& x) { x.groups.clear(); }), "default");
}

TEST(RuleSet, Categories) {
  Rule rule = MakeRule("finance", Action::kTunnel);
  rule.categories = {"banks", "pay"};
  RuleSet set = MustCompile({rule}, {{"banks", {".bank.example", "10.0.0.0/8"}},
                                     {"pay", {"pay.example.com"}},
                                     {"unused", {"*.x.example"}}});
  Decision d = Decide(set, To("bank.example"));
  EXPECT_EQ(d.rule, "finance");
  EXPECT_EQ(d.reason,
            "rule \"finance\" (#1) matched host \"bank.example\" in category \"banks\"; "
            "action tunnel");
  EXPECT_EQ(Decide(set, To("pay.example.com")).rule, "finance");
  EXPECT_EQ(Decide(set, To("10.3.3.3")).rule, "finance");
  EXPECT_EQ(Decide(set, To("a.pay.example.com")).rule, "default");
  EXPECT_EQ(Decide(set, To("a.x.example")).rule, "default");
}

TEST(RuleSet, IpHostsMatchOnlyAddressPatterns) {
  RuleSet set = MustCompile({MakeRule("names", Action::kBlock, {".example", "*.1.2.3.example"}),
                             MakeRule("v4", Action::kTunnel, {"1.2.3.0/24"}),
                             MakeRule("v6", Action::kTunnel, {"::/0"})});
  EXPECT_EQ(Decide(set, To("1.2.3.4")).rule, "v4");
  EXPECT_EQ(Decide(set, To("1.2.4.4")).rule, "default");
  // IPv4-mapped IPv6 reaches 1.2.3.4: judged as the IPv4 address, never as "some IPv6".
  EXPECT_EQ(Decide(set, To("[::ffff:1.2.3.4]")).rule, "v4");
  EXPECT_EQ(Decide(set, To("[2001:db8::1]")).rule, "v6");
  EXPECT_EQ(Decide(set, To("01.2.3.4")).rule, "v4");
  EXPECT_EQ(Decide(set, To("a.1.2.3.example")).rule, "names");
}

// Found by the config fuzzer: the index masked addresses for a /64 block with a shift by 64,
// which kept their low 64 bits, so only the network address itself matched.
TEST(RuleSet, Ipv6SlashSixtyFourBlockMatchesItsAddresses) {
  RuleSet set = MustCompile({MakeRule("lan", Action::kTunnel, {"2001:db8:0:1::/64"})});
  EXPECT_EQ(Decide(set, To("[2001:db8:0:1::]")).rule, "lan");
  EXPECT_EQ(Decide(set, To("[2001:db8:0:1:abcd::1]")).rule, "lan");
  EXPECT_EQ(Decide(set, To("[2001:db8:0:2::1]")).rule, "default");
}

TEST(RuleSet, InspectionSwitchTurnsDecryptIntoTunnel) {
  RuleSetOptions options = Options();
  options.inspection_enabled = false;
  RuleSet set = MustCompile(
      {MakeRule("d", Action::kDecrypt, {"d.example"}), MakeRule("b", Action::kBlock, {"b.example"}),
       MakeRule("t", Action::kTunnel, {"t.example"})},
      {}, options);
  Decision d = Decide(set, To("d.example"));
  EXPECT_EQ(d.action, Action::kTunnel);
  EXPECT_EQ(d.rule_action, Action::kDecrypt);
  EXPECT_EQ(d.rule, "d");
  EXPECT_EQ(d.ca, "");
  EXPECT_EQ(d.configured_ca, "default");
  EXPECT_EQ(d.reason,
            "rule \"d\" (#1) matched host \"d.example\" by pattern \"d.example\"; action decrypt "
            "(inspection disabled: decrypt becomes tunnel)");
  EXPECT_EQ(Decide(set, To("b.example")).action, Action::kBlock);
  EXPECT_EQ(Decide(set, To("t.example")).action, Action::kTunnel);
  Decision fallback = Decide(set, To("other.example"));
  EXPECT_EQ(fallback.action, Action::kTunnel);
  EXPECT_EQ(fallback.rule, "default");
}

RuleSetOptions RetiringOptions() {
  RuleSetOptions options;
  options.default_ca = "a";
  Instant t1 = std::chrono::floor<std::chrono::seconds>(sys_days{2022y / 6 / 29} + 15h);
  options.cas = {{"a", t1, "b"}, {"b", t1 + 24h, "c"}, {"c", std::nullopt, ""}};
  return options;
}

TEST(RuleSet, RetiredProfilesAreReplacedBySuccessors) {
  RuleSet set = MustCompile({}, {}, RetiringOptions());
  Instant t1 = *RetiringOptions().cas[0].retire_at;
  EXPECT_EQ(Decide(set, To("x"), t1 - 1s).ca, "a");
  Decision at = Decide(set, To("x"), t1);
  EXPECT_EQ(at.ca, "b");
  EXPECT_EQ(at.configured_ca, "a");
  EXPECT_EQ(at.reason,
            "no rule matched; default rule: decrypt with \"b\" (\"a\" retired at "
            "2022-06-29T15:00:00Z, successor \"b\")");
  EXPECT_EQ(Decide(set, To("x"), t1 + 24h - 1s).ca, "b");
  Decision later = Decide(set, To("x"), t1 + 24h);
  EXPECT_EQ(later.ca, "c");
  EXPECT_EQ(later.reason,
            "no rule matched; default rule: decrypt with \"c\" (\"a\" retired at "
            "2022-06-29T15:00:00Z, successor \"b\"; \"b\" retired at 2022-06-30T15:00:00Z, "
            "successor \"c\")");
  std::string why;
  EXPECT_EQ(set.ResolveCa("b", t1 + 48h, &why), "c");
  EXPECT_EQ(why, "\"b\" retired at 2022-06-30T15:00:00Z, successor \"c\"");
  EXPECT_EQ(set.ResolveCa("nope", t1, nullptr), std::nullopt);
}

TEST(RuleSet, RuleCaIsResolvedToo) {
  Rule rule = MakeRule("r", Action::kDecrypt, {"r.example"});
  rule.ca = "b";
  RuleSet set = MustCompile({rule}, {}, RetiringOptions());
  Instant t1 = *RetiringOptions().cas[0].retire_at;
  EXPECT_EQ(Decide(set, To("r.example"), t1).ca, "b");
  EXPECT_EQ(Decide(set, To("r.example"), t1 + 30h).ca, "c");
  EXPECT_EQ(Decide(set, To("r.example"), t1 + 30h).configured_ca, "b");
}

TEST(RuleSet, FormatInstant) {
  EXPECT_EQ(FormatInstant(kNow), "2024-01-01T00:00:00Z");
  EXPECT_EQ(FormatInstant(kNow - 1s), "2023-12-31T23:59:59Z");
}

TEST(RuleSetErrors, CarryTheLineOfTheirRule) {
  Rule bad = MakeRule("bad", Action::kDecrypt, {"foo*.example"});
  bad.line = 12;
  auto result = RuleSet::Compile({bad}, {{"cat", {"a..b"}}}, Options());
  auto* errors = std::get_if<std::vector<RuleError>>(&result);
  ASSERT_NE(errors, nullptr);
  ASSERT_EQ(errors->size(), 2u);
  EXPECT_EQ((*errors)[0].line, 0);  // a category problem: no rule line
  EXPECT_EQ((*errors)[1].line, 12);
}

// Errors point at the value they concern when the loader recorded where it was written.
TEST(RuleSetErrors, PointAtTheOffendingValue) {
  Rule bad = MakeRule("bad", Action::kDecrypt, {"ok.example", "*.*.example"});
  bad.line = 7;
  bad.source.table = {7, 1};
  bad.source.name = {8, 8};
  bad.source.hosts = {{10, 10}, {10, 24}};
  bad.clients = {"10.0.0.0/8", "10.0.0.1/8"};
  bad.source.clients = {{11, 12}, {11, 26}};
  bad.categories = {"nope"};
  bad.source.categories = {{12, 15}};
  bad.ca = "missing";
  bad.source.ca = {13, 6};
  Rule unplaced = MakeRule("unplaced", Action::kDecrypt, {"a..example"});
  unplaced.line = 20;  // a position the loader did not record: the rule's line
  RuleSetOptions options = Options();
  options.cas.push_back({"old", kNow, "gone"});
  options.ca_sources = {{}, {}, {{30, 1}, {32, 13}, {33, 13}}};
  options.default_ca = "ghost";
  options.default_ca_source = {40, 14};
  options.category_sources = {{{50, 1}, "cats/finance.txt", {{1, 1}, {3, 3}}}};
  auto result = RuleSet::Compile({bad, unplaced}, {{"finance", {"ok.example", "b..example"}}},
                                 std::move(options));
  auto* errors = std::get_if<std::vector<RuleError>>(&result);
  ASSERT_NE(errors, nullptr);
  struct Want {
    int line, column;
    std::string file, text;
  };
  const std::vector<Want> want = {
      {33, 13, "", "names an unknown successor \"gone\""},
      {3, 3, "cats/finance.txt", "pattern \"b..example\""},
      {10, 24, "", "host pattern \"*.*.example\""},
      {11, 26, "", "client \"10.0.0.1/8\""},
      {12, 15, "", "unknown category \"nope\""},
      {13, 6, "", "unknown CA profile \"missing\""},
      {20, 0, "", "rule \"unplaced\" (line 20): host pattern \"a..example\""},
      {40, 14, "", "inspection.default_ca \"ghost\""},
  };
  ASSERT_EQ(errors->size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    const RuleError& e = (*errors)[i];
    EXPECT_NE(e.message.find(want[i].text), std::string::npos) << i << ": " << e.message;
    EXPECT_EQ(e.line, want[i].line) << e.message;
    EXPECT_EQ(e.column, want[i].column) << e.message;
    EXPECT_EQ(e.file, want[i].file) << e.message;
  }
}

TEST(RuleSetErrors, NamesAndDefaultRulesPointAtTheirKeys) {
  Rule first = MakeRule("dup", Action::kBlock);
  first.line = 1;
  first.source.table = {1, 1};
  Rule second = MakeRule("dup", Action::kTunnel);
  second.line = 5;
  second.source.table = {5, 1};
  second.source.name = {6, 8};
  Rule tunnel_ca = MakeRule("tunnel-ca", Action::kTunnel);
  tunnel_ca.ca = "new";
  tunnel_ca.source.table = {9, 1};
  tunnel_ca.source.ca = {12, 6};
  Rule filtered_default = MakeRule("default", Action::kBlock, {"x.example"});
  filtered_default.ports = {443};
  filtered_default.source.table = {15, 1};
  filtered_default.source.hosts = {{19, 10}};
  filtered_default.source.ports = {{18, 10}};
  auto result = RuleSet::Compile({first, second, tunnel_ca, filtered_default}, {}, Options());
  auto* errors = std::get_if<std::vector<RuleError>>(&result);
  ASSERT_NE(errors, nullptr);
  ASSERT_EQ(errors->size(), 3u);
  EXPECT_EQ((*errors)[0].line, 6);  // the second name
  EXPECT_EQ((*errors)[0].column, 8);
  EXPECT_EQ((*errors)[1].line, 12);  // ca on a tunnel rule
  EXPECT_EQ((*errors)[1].column, 6);
  EXPECT_EQ((*errors)[2].line, 18);  // the first match value written
  EXPECT_EQ((*errors)[2].column, 10);
}

TEST(RuleSetErrors, ReportsEveryProblemWithItsRule) {
  Rule bad = MakeRule("bad", Action::kDecrypt, {"*.*.com", "10.0.0.1/8"});
  bad.line = 12;
  bad.clients = {"300.0.0.0/8"};
  bad.categories = {"nope"};
  bad.ca = "missing";
  bad.ports = {0};
  bad.users = {""};
  bad.groups = {""};
  Rule tunnel_ca = MakeRule("tunnel-ca", Action::kTunnel);
  tunnel_ca.ca = "new";
  Rule duplicate = MakeRule("bad", Action::kBlock);
  duplicate.line = 20;
  Rule filtered_default = MakeRule("default", Action::kBlock, {"x.example"});
  auto errors = Errors({MakeRule("default", Action::kTunnel), bad, tunnel_ca,
                        MakeRule("", Action::kBlock), duplicate, filtered_default},
                       {{"cat", {"ok.example", "bad..example"}}, {"cat", {}}});
  std::vector<std::string> expected = {
      "category \"cat\": pattern \"bad..example\": empty label",
      "category \"cat\" is defined more than once",
      "rule \"default\": the default rule must be the last rule (it applies when nothing else "
      "matches)",
      "rule \"bad\" (line 12): host pattern \"*.*.com\": \"*\" is only allowed as a whole first "
      "label (\"*.example.com\")",
      "rule \"bad\" (line 12): host pattern \"10.0.0.1/8\": host bits are set below the /8 prefix "
      "(did you mean \"10.0.0.0/8\"?)",
      "rule \"bad\" (line 12): port 0 is not a valid port",
      "rule \"bad\" (line 12): client \"300.0.0.0/8\": \"300.0.0.0\" is not an IPv4 or IPv6 "
      "address",
      "rule \"bad\" (line 12): empty user name",
      "rule \"bad\" (line 12): empty group name",
      "rule \"bad\" (line 12): unknown category \"nope\"",
      "rule \"bad\" (line 12): unknown CA profile \"missing\"",
      "rule \"tunnel-ca\": ca \"new\" is set, but only decrypt rules sign (action is tunnel)",
      "rule #4: has no name",
      "rule \"bad\" (line 20): the name is already used by rule \"bad\" (line 12)",
      "rule \"default\": the name is already used by rule \"default\"",
      "rule \"default\": the default rule applies when nothing else matches, so it takes no "
      "match fields",
  };
  EXPECT_EQ(errors, expected);
}

TEST(RuleSetErrors, CaProfiles) {
  RuleSetOptions options;
  options.default_ca = "ghost";
  Instant t = kNow;
  options.cas = {{"a", t, ""},          {"b", t, "zzz"},          {"c", t, "d"},
                 {"d", t, "c"},         {"e", std::nullopt, "e"}, {"a", std::nullopt, ""},
                 {"", std::nullopt, ""}};
  auto errors = Errors({}, {}, options);
  std::vector<std::string> expected = {
      "CA profile \"a\" is defined more than once",
      "CA profile with an empty name",
      "CA profile \"a\" has retire_at but no successor to take over after it",
      "CA profile \"b\" names an unknown successor \"zzz\"",
      "CA profile successors form a cycle: \"c\" -> \"d\" -> \"c\"",
      "CA profile successors form a cycle: \"e\" -> \"e\"",
      "inspection.default_ca \"ghost\" is not a configured CA profile",
  };
  EXPECT_EQ(errors, expected);
}

TEST(RuleSetErrors, SuccessorCycles) {
  RuleSetOptions options = Options();
  options.cas.push_back({"c", kNow, "d"});
  options.cas.push_back({"d", kNow, "e"});
  options.cas.push_back({"e", kNow, "c"});
  options.cas.push_back({"self", kNow, "self"});
  options.cas.push_back({"into", kNow, "c"});
  auto errors = Errors({}, {}, options);
  std::vector<std::string> expected = {
      "CA profile successors form a cycle: \"c\" -> \"d\" -> \"e\" -> \"c\"",
      "CA profile successors form a cycle: \"self\" -> \"self\"",
  };
  EXPECT_EQ(errors, expected);
}

TEST(RuleSetErrors, DefaultCaNeededOnlyWhenSomethingDecryptsWithIt) {
  RuleSetOptions options;
  options.cas = {{"new", std::nullopt, ""}};
  Rule rule = MakeRule("r", Action::kDecrypt, {"r.example"});
  rule.ca = "new";
  EXPECT_TRUE(std::holds_alternative<RuleSet>(
      RuleSet::Compile({rule, MakeRule("default", Action::kTunnel)}, {}, options)));
  EXPECT_EQ(
      Errors({rule}, {}, options),
      std::vector<std::string>{"inspection.default_ca \"default\" is not a configured CA profile"});
}

}  // namespace
}  // namespace mintgate::rules

namespace mintgate::rules {
namespace {

// auth.unidentified = "decrypt-to-login": an unidentified user's connection is decrypted with
// the login CA whatever the rule and the inspection switch say; an identified one is not.
TEST(RuleSet, UnidentifiedUsersAreDecryptedToLogInEvenWithInspectionOff) {
  RuleSetOptions options = Options();
  options.inspection_enabled = false;
  options.login_ca = "new";
  Rule tunnel = MakeRule("alice-tunnels", Action::kTunnel, {"bank.example"});
  tunnel.users = {"alice"};
  RuleSet set =
      MustCompile({tunnel, MakeRule("blocked", Action::kBlock, {"bad.example"})}, {}, options);
  Target unknown = To("bank.example");
  unknown.identity_known = false;
  Decision d = Decide(set, unknown);
  EXPECT_EQ(d.action, Action::kDecrypt);
  EXPECT_TRUE(d.login);
  EXPECT_EQ(d.ca, "new");
  EXPECT_NE(d.reason.find("user not identified: decrypted with \"new\""), std::string::npos)
      << d.reason;
  Target blocked = To("bad.example");
  blocked.identity_known = false;
  EXPECT_EQ(Decide(set, blocked).action, Action::kDecrypt);  // the login comes first

  Target alice = To("bank.example");
  alice.user = "alice";
  d = Decide(set, alice);
  EXPECT_EQ(d.action, Action::kTunnel);
  EXPECT_FALSE(d.login);
  Target other = To("elsewhere.example");  // identified, no rule: inspection is off
  other.user = "bob";
  EXPECT_EQ(Decide(set, other).action, Action::kTunnel);
}

TEST(RuleSet, UnknownLoginCaIsAnError) {
  RuleSetOptions options = Options();
  options.login_ca = "nope";
  std::vector<std::string> errors = Errors({}, {}, options);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("auth.login_ca \"nope\""), std::string::npos) << errors[0];
}

TEST(RuleSet, WithoutLoginCaUnidentifiedChangesNothing) {
  RuleSet set = MustCompile({MakeRule("t", Action::kTunnel, {"a.example"})});
  Target unknown = To("a.example");
  unknown.identity_known = false;
  EXPECT_EQ(Decide(set, unknown).action, Action::kTunnel);
}

}  // namespace
}  // namespace mintgate::rules
