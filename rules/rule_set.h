// A validated, indexed rule list (SPEC §4): first matching rule wins, with a final `default`
// rule that always exists.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "rules/rule.h"

namespace mintgate::rules {

// One problem found by Compile. `line` is the line of the rule it concerns in its
// configuration file (Rule::line), 0 when it concerns no rule or the line is unknown.
struct RuleError {
  int line = 0;
  std::string message;
};

class RuleSet {
 public:
  // Validates everything and reports every problem at once (each error names its rule, with
  // the line when known, or its category / CA profile). The implicit default rule (decrypt
  // with options.default_ca) is appended unless the last rule is named "default".
  static std::variant<RuleSet, std::vector<RuleError>> Compile(std::vector<Rule> rules,
                                                               std::vector<Category> categories,
                                                               RuleSetOptions options);

  // The decision for one connection, via the index.
  Decision Decide(const Target& target, Instant at) const;
  // The same decision by a plain first-match scan over every rule; the reference that the
  // index is tested against.
  Decision DecideByScan(const Target& target, Instant at) const;

  // Rules in evaluation order, the default rule last (also when it is implicit).
  const std::vector<Rule>& rules() const;
  std::size_t size() const { return rules().size(); }
  bool has_implicit_default() const;
  const RuleSetOptions& options() const;

  // The profile that signs in place of `configured` at `at` (retire_at/successor chain);
  // nullopt for an unknown profile. *why (optional) explains each replacement.
  std::optional<std::string> ResolveCa(std::string_view configured, Instant at,
                                       std::string* why) const;

 private:
  struct Impl;
  explicit RuleSet(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

  // Immutable after Compile, so copies share it (and the index's views into it stay valid).
  std::shared_ptr<const Impl> impl_;
};

}  // namespace mintgate::rules
