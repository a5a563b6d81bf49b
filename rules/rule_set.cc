#include "rules/rule_set.h"

#include <algorithm>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "rules/ca_resolver.h"
#include "rules/host_pattern.h"
#include "rules/rule_index.h"

namespace mintgate::rules {

struct RuleSet::Impl {
  std::vector<Rule> rules;
  std::vector<CompiledRule> compiled;
  std::vector<CompiledCategory> categories;
  bool implicit_default = false;
  RuleSetOptions options;
  CaResolver cas;
  int login_ca = -1;  // options.login_ca's index; -1: no decrypt-to-login
  RuleIndex index;

  bool OtherFieldsMatch(std::size_t id, const Target& target,
                        const std::optional<IpAddress>& client) const;
  bool CategoryMatchesByScan(std::uint32_t category, const HostView& host) const;
  template <typename InCategory>
  Decision MakeDecision(std::size_t id, const HostView& host, const Target& target,
                        const std::optional<IpAddress>& client, Instant at,
                        InCategory&& in_category) const;
};

namespace {

std::string Quote(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string Where(const Rule& rule, std::size_t position) {
  std::string where =
      rule.name.empty() ? "rule #" + std::to_string(position + 1) : "rule " + Quote(rule.name);
  if (rule.line > 0) where += " (line " + std::to_string(rule.line) + ")";
  return where;
}

bool HasMatchFields(const Rule& rule) {
  return !rule.hosts.empty() || !rule.ports.empty() || !rule.clients.empty() ||
         !rule.users.empty() || !rule.groups.empty() || !rule.categories.empty();
}

SourcePos Or(SourcePos pos, SourcePos fallback) { return pos.known() ? pos : fallback; }

// The position of list[i], or `fallback` when it is not known.
SourcePos Element(const std::vector<SourcePos>& list, std::size_t i, SourcePos fallback) {
  return i < list.size() ? Or(list[i], fallback) : fallback;
}

// Where the rule starts: its header, else its line alone.
SourcePos RuleStart(const Rule& rule) { return Or(rule.source.table, SourcePos{rule.line, 0}); }

// The first match value written in the rule (what makes a default rule wrong).
SourcePos FirstMatchField(const Rule& rule) {
  const RuleSource& s = rule.source;
  SourcePos first;
  auto consider = [&](std::size_t size, const std::vector<SourcePos>& list) {
    if (size == 0 || list.empty() || !list.front().known()) return;
    const SourcePos& at = list.front();
    if (!first.known() || std::tie(at.line, at.column) < std::tie(first.line, first.column)) {
      first = at;
    }
  };
  consider(rule.hosts.size(), s.hosts);
  consider(rule.ports.size(), s.ports);
  consider(rule.clients.size(), s.clients);
  consider(rule.users.size(), s.users);
  consider(rule.groups.size(), s.groups);
  consider(rule.categories.size(), s.categories);
  return Or(first, RuleStart(rule));
}

std::optional<IpAddress> ParseClient(std::string_view client) {
  return client.empty() ? std::nullopt : IpAddress::Parse(client);
}

Action EffectiveAction(Action rule_action, bool inspection_enabled) {
  if (rule_action == Action::kDecrypt && !inspection_enabled) return Action::kTunnel;
  return rule_action;
}

}  // namespace

std::variant<RuleSet, std::vector<RuleError>> RuleSet::Compile(std::vector<Rule> rules,
                                                               std::vector<Category> categories,
                                                               RuleSetOptions options) {
  std::vector<RuleError> errors;
  auto add_error = [&errors](SourcePos at, std::string message, std::string file = "") {
    errors.push_back({at.line, at.column, std::move(message), std::move(file)});
  };
  auto impl = std::make_shared<Impl>();
  std::vector<CaScheduleError> ca_errors;
  impl->cas = CaResolver::Build(options.cas, &ca_errors);
  for (CaScheduleError& e : ca_errors) {
    SourcePos at;
    if (e.profile < options.ca_sources.size()) {
      const CaScheduleSource& source = options.ca_sources[e.profile];
      switch (e.key) {
        case CaScheduleError::Key::kProfile:
          at = source.table;
          break;
        case CaScheduleError::Key::kRetireAt:
          at = Or(source.retire_at, source.table);
          break;
        case CaScheduleError::Key::kSuccessor:
          at = Or(source.successor, source.table);
          break;
      }
    }
    add_error(at, std::move(e.message));
  }

  std::unordered_map<std::string, std::uint32_t> category_ids;
  const CategorySource unknown_source;
  for (std::size_t c = 0; c < categories.size(); ++c) {
    const Category& category = categories[c];
    const CategorySource& source =
        c < options.category_sources.size() ? options.category_sources[c] : unknown_source;
    std::string where = "category " + Quote(category.name);
    if (category.name.empty()) {
      add_error(source.table, "category with an empty name");
      continue;
    }
    if (!category_ids.emplace(category.name, std::uint32_t(impl->categories.size())).second) {
      add_error(source.table, where + " is defined more than once");
      continue;
    }
    CompiledCategory& compiled = impl->categories.emplace_back();
    compiled.name = category.name;
    for (std::size_t p = 0; p < category.patterns.size(); ++p) {
      const std::string& text = category.patterns[p];
      std::string why;
      if (auto pattern = HostPattern::Parse(text, &why)) {
        compiled.patterns.push_back(std::move(*pattern));
      } else if (p < source.patterns.size() && source.patterns[p].known()) {
        add_error(source.patterns[p], where + ": pattern " + Quote(text) + ": " + why, source.file);
      } else {
        add_error(source.table, where + ": pattern " + Quote(text) + ": " + why);
      }
    }
  }

  bool uses_default_ca = false;
  std::unordered_map<std::string, std::size_t> rule_positions;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const Rule& rule = rules[i];
    const RuleSource& source = rule.source;
    const SourcePos start = RuleStart(rule);
    std::string where = Where(rule, i);
    auto error = [&](SourcePos at, const std::string& what) { add_error(at, where + ": " + what); };
    if (rule.name.empty()) {
      error(start, "has no name");
    } else if (auto [it, fresh] = rule_positions.emplace(rule.name, i); !fresh) {
      error(Or(source.name, start),
            "the name is already used by " + Where(rules[it->second], it->second));
    }
    if (rule.name == "default") {
      if (i + 1 != rules.size()) {
        error(Or(source.name, start),
              "the default rule must be the last rule (it applies when nothing else matches)");
      } else if (HasMatchFields(rule)) {
        error(FirstMatchField(rule),
              "the default rule applies when nothing else matches, so it takes no match fields");
      }
    }
    CompiledRule& compiled = impl->compiled.emplace_back();
    for (std::size_t k = 0; k < rule.hosts.size(); ++k) {
      std::string why;
      if (auto pattern = HostPattern::Parse(rule.hosts[k], &why)) {
        compiled.hosts.push_back(std::move(*pattern));
      } else {
        error(Element(source.hosts, k, start), "host pattern " + Quote(rule.hosts[k]) + ": " + why);
      }
    }
    for (std::size_t k = 0; k < rule.ports.size(); ++k) {
      if (rule.ports[k] == 0) error(Element(source.ports, k, start), "port 0 is not a valid port");
    }
    for (std::size_t k = 0; k < rule.clients.size(); ++k) {
      std::string why;
      if (auto cidr = Cidr::Parse(rule.clients[k], &why)) {
        compiled.clients.push_back(*cidr);
      } else {
        error(Element(source.clients, k, start), "client " + Quote(rule.clients[k]) + ": " + why);
      }
    }
    for (std::size_t k = 0; k < rule.users.size(); ++k) {
      if (rule.users[k].empty()) error(Element(source.users, k, start), "empty user name");
    }
    for (std::size_t k = 0; k < rule.groups.size(); ++k) {
      if (rule.groups[k].empty()) error(Element(source.groups, k, start), "empty group name");
    }
    for (std::size_t k = 0; k < rule.categories.size(); ++k) {
      const std::string& name = rule.categories[k];
      if (auto it = category_ids.find(name); it != category_ids.end()) {
        compiled.categories.push_back(it->second);
      } else {
        error(Element(source.categories, k, start), name.empty()
                                                        ? std::string("empty category name")
                                                        : "unknown category " + Quote(name));
      }
    }
    if (!rule.ca.empty()) {
      if (rule.action != Action::kDecrypt) {
        error(Or(source.ca, start), "ca " + Quote(rule.ca) +
                                        " is set, but only decrypt rules sign (action is " +
                                        std::string(ToString(rule.action)) + ")");
      } else if ((compiled.ca = impl->cas.Find(rule.ca)) < 0) {
        error(Or(source.ca, start), "unknown CA profile " + Quote(rule.ca));
      }
    } else if (rule.action == Action::kDecrypt) {
      uses_default_ca = true;
    }
  }
  if (rules.empty() || rules.back().name != "default") {
    Rule fallback;
    fallback.name = "default";
    fallback.action = Action::kDecrypt;
    rules.push_back(std::move(fallback));
    impl->compiled.emplace_back();
    impl->implicit_default = true;
    uses_default_ca = true;
  }
  int default_ca = impl->cas.Find(options.default_ca);
  if (default_ca < 0 && uses_default_ca && options.inspection_enabled) {
    add_error(options.default_ca_source, "inspection.default_ca " + Quote(options.default_ca) +
                                             " is not a configured CA profile");
  }
  if (!options.login_ca.empty() && (impl->login_ca = impl->cas.Find(options.login_ca)) < 0) {
    add_error(options.login_ca_source,
              "auth.login_ca " + Quote(options.login_ca) + " is not a configured CA profile");
  }
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (rules[i].action == Action::kDecrypt && rules[i].ca.empty()) {
      impl->compiled[i].ca = default_ca;
    }
  }
  if (!errors.empty()) return errors;

  impl->index = RuleIndex::Build(impl->compiled, impl->categories);
  impl->rules = std::move(rules);
  impl->options = std::move(options);
  return RuleSet(std::move(impl));
}

bool RuleSet::Impl::OtherFieldsMatch(std::size_t id, const Target& target,
                                     const std::optional<IpAddress>& client) const {
  const Rule& rule = rules[id];
  const CompiledRule& fields = this->compiled[id];
  if (!rule.ports.empty() &&
      std::find(rule.ports.begin(), rule.ports.end(), target.port) == rule.ports.end()) {
    return false;
  }
  if (!fields.clients.empty()) {
    if (!client) return false;
    if (std::none_of(fields.clients.begin(), fields.clients.end(),
                     [&](const Cidr& cidr) { return cidr.Contains(*client); })) {
      return false;
    }
  }
  if (!rule.users.empty() && (target.user.empty() || std::find(rule.users.begin(), rule.users.end(),
                                                               target.user) == rule.users.end())) {
    return false;
  }
  if (!rule.groups.empty() &&
      std::none_of(rule.groups.begin(), rule.groups.end(), [&](const std::string& group) {
        return std::find(target.groups.begin(), target.groups.end(), group) != target.groups.end();
      })) {
    return false;
  }
  return true;
}

bool RuleSet::Impl::CategoryMatchesByScan(std::uint32_t category, const HostView& host) const {
  const auto& patterns = categories[category].patterns;
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const HostPattern& pattern) { return pattern.Matches(host); });
}

template <typename InCategory>
Decision RuleSet::Impl::MakeDecision(std::size_t id, const HostView& host, const Target& target,
                                     const std::optional<IpAddress>& client, Instant at,
                                     InCategory&& in_category) const {
  const Rule& rule = rules[id];
  const CompiledRule& fields = this->compiled[id];
  Decision decision;
  decision.rule = rule.name;
  decision.rule_index = int(id);
  decision.rule_action = rule.action;
  decision.action = EffectiveAction(rule.action, options.inspection_enabled);
  // Appends in place: this runs on every decision, and temporaries would dominate its cost.
  std::string& reason = decision.reason;
  reason.reserve(160);
  auto quoted = [&](std::string_view text) {
    reason += '"';
    reason += text;
    reason += '"';
  };
  auto host_text = [&] {
    reason += '"';
    if (host.address) {
      reason += host.address->ToString();
    } else {
      reason += host.name;
    }
    reason += '"';
  };
  if (id + 1 == rules.size()) {
    reason += "no rule matched; default rule";
    if (!implicit_default) (reason += " (#") += std::to_string(id + 1) += ')';
    reason += ": ";
  } else {
    reason += "rule ";
    quoted(rule.name);
    (reason += " (#") += std::to_string(id + 1);
    if (rule.line > 0) (reason += ", line ") += std::to_string(rule.line);
    reason += ") matched";
    for (const HostPattern& pattern : fields.hosts) {
      if (!pattern.Matches(host)) continue;
      reason += " host ";
      host_text();
      reason += " by pattern ";
      quoted(pattern.text);
      break;
    }
    for (std::uint32_t category : fields.categories) {
      if (!in_category(category)) continue;
      reason += fields.hosts.empty() ? " host " : ", ";
      host_text();
      reason += " in category ";
      quoted(categories[category].name);
      break;
    }
    if (fields.hosts.empty() && fields.categories.empty()) reason += " any host";
    if (!rule.ports.empty()) (reason += ", port ") += std::to_string(target.port);
    for (const Cidr& cidr : fields.clients) {
      if (!cidr.Contains(*client)) continue;
      (reason += ", client ") += client->ToString();
      (reason += " in ") += cidr.ToString();
      break;
    }
    if (!rule.users.empty()) {
      reason += ", user ";
      quoted(target.user);
    }
    for (const std::string& group : rule.groups) {
      if (std::find(target.groups.begin(), target.groups.end(), group) == target.groups.end()) {
        continue;
      }
      reason += ", group ";
      quoted(group);
      break;
    }
    reason += "; action ";
  }
  reason += ToString(rule.action);
  if (rule.action == Action::kDecrypt && fields.ca >= 0) {
    decision.configured_ca = cas.Name(fields.ca);
    if (decision.action == Action::kDecrypt) {
      std::string why;
      decision.ca = cas.Name(cas.Resolve(fields.ca, at, &why));
      reason += " with ";
      quoted(decision.ca);
      if (!why.empty()) ((reason += " (") += why) += ')';
    }
  } else if (rule.action == Action::kDecrypt) {
    decision.configured_ca = options.default_ca;  // unknown profile: allowed only when tunneling
  }
  if (decision.action != rule.action) reason += " (inspection disabled: decrypt becomes tunnel)";
  if (!target.identity_known && login_ca >= 0) {
    // The original product's exception: an unidentified user's connection is decrypted, with
    // the login CA, whatever the rule and the inspection switch say, to run the login.
    std::string why;
    decision.action = Action::kDecrypt;
    decision.login = true;
    decision.configured_ca = cas.Name(login_ca);
    decision.ca = cas.Name(cas.Resolve(login_ca, at, &why));
    reason += "; user not identified: decrypted with ";
    quoted(decision.ca);
    if (!why.empty()) ((reason += " (") += why) += ')';
    reason += " to run the portal login (auth.unidentified = \"decrypt-to-login\")";
  }
  return decision;
}

Decision RuleSet::Decide(const Target& target, Instant at) const {
  // Per-thread scratch keeps steady-state decisions free of allocations besides the result.
  thread_local RuleIndex::Scratch scratch;
  thread_local std::string host_buffer;
  const Impl& impl = *impl_;
  HostView host = MakeHostView(target.host, host_buffer);
  std::optional<IpAddress> client = ParseClient(target.client);
  impl.index.Lookup(host, &scratch);
  auto in_category = [&](std::uint32_t category) {
    return std::binary_search(scratch.categories.begin(), scratch.categories.end(), category);
  };
  int winner = RuleIndex::FirstAccepted(&scratch, [&](std::uint32_t id) {
    const auto& wanted = impl.compiled[id].categories;
    if (!wanted.empty() && std::none_of(wanted.begin(), wanted.end(), in_category)) return false;
    return impl.OtherFieldsMatch(id, target, client);
  });
  // The default rule has no match fields, so it is always a candidate and always accepted;
  // the fallback only keeps an index bug from reading out of bounds.
  std::size_t id = winner >= 0 ? std::size_t(winner) : impl.rules.size() - 1;
  return impl.MakeDecision(id, host, target, client, at, in_category);
}

Decision RuleSet::DecideByScan(const Target& target, Instant at) const {
  const Impl& impl = *impl_;
  std::string host_buffer;
  HostView host = MakeHostView(target.host, host_buffer);
  std::optional<IpAddress> client = ParseClient(target.client);
  auto in_category = [&](std::uint32_t category) {
    return impl.CategoryMatchesByScan(category, host);
  };
  std::size_t id = 0;
  for (; id + 1 < impl.rules.size(); ++id) {
    const CompiledRule& compiled = impl.compiled[id];
    if (!compiled.hosts.empty() &&
        std::none_of(compiled.hosts.begin(), compiled.hosts.end(),
                     [&](const HostPattern& pattern) { return pattern.Matches(host); })) {
      continue;
    }
    if (!compiled.categories.empty() &&
        std::none_of(compiled.categories.begin(), compiled.categories.end(), in_category)) {
      continue;
    }
    if (impl.OtherFieldsMatch(id, target, client)) break;
  }
  return impl.MakeDecision(id, host, target, client, at, in_category);
}

const std::vector<Rule>& RuleSet::rules() const { return impl_->rules; }
bool RuleSet::has_implicit_default() const { return impl_->implicit_default; }
const RuleSetOptions& RuleSet::options() const { return impl_->options; }

std::optional<std::string> RuleSet::ResolveCa(std::string_view configured, Instant at,
                                              std::string* why) const {
  int id = impl_->cas.Find(configured);
  if (id < 0) return std::nullopt;
  return impl_->cas.Name(impl_->cas.Resolve(id, at, why));
}

}  // namespace mintgate::rules
