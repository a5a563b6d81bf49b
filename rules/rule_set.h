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

// One problem found by Compile, at the value it concerns: the rule's key or list element
// (Rule::source), else the rule's start (Rule::line); a category's pattern in its file, a CA
// profile's key, inspection.default_ca or auth.login_ca (RuleSetOptions' sources). 0 when the
// position is unknown.
struct RuleError {
  int line = 0;
  int column = 0;
  std::string message;
  std::string file;  // "": the configuration file; else the category file `line` is in
};

class RuleSet {
 public:
  // Validates everything and reports every problem at once (each error names its rule, with
  // the line when known, or its category / CA profile, and is placed as RuleError says). The
  // implicit default rule (decrypt with options.default_ca) is appended unless the last rule is
  // named "default".
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
