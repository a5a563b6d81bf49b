#include "rules/ca_resolver.h"

#include <algorithm>
#include <cstdio>

namespace mintgate::rules {

std::string FormatInstant(Instant at) {
  auto day = std::chrono::floor<std::chrono::days>(at);
  std::chrono::year_month_day date{day};
  std::chrono::hh_mm_ss time{at - day};
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02d:%02d:%02dZ", int(date.year()),
                unsigned(date.month()), unsigned(date.day()), int(time.hours().count()),
                int(time.minutes().count()), int(time.seconds().count()));
  return buffer;
}

CaResolver CaResolver::Build(const std::vector<CaSchedule>& cas,
                             std::vector<CaScheduleError>* errors) {
  using Key = CaScheduleError::Key;
  CaResolver resolver;
  std::vector<int> ids;         // per input entry; -1 for an entry already reported as broken
  std::vector<std::size_t> at;  // per profile: its input entry
  for (std::size_t i = 0; i < cas.size(); ++i) {
    const CaSchedule& ca = cas[i];
    ids.push_back(-1);
    if (ca.name.empty()) {
      errors->push_back({i, Key::kProfile, "CA profile with an empty name"});
      continue;
    }
    if (!resolver.by_name_.emplace(ca.name, int(resolver.cas_.size())).second) {
      errors->push_back(
          {i, Key::kProfile, "CA profile \"" + ca.name + "\" is defined more than once"});
      continue;
    }
    at.push_back(i);
    ids.back() = int(resolver.cas_.size());
    resolver.cas_.push_back({ca.name, ca.retire_at, -1});
  }
  for (std::size_t i = 0; i < cas.size(); ++i) {
    const CaSchedule& ca = cas[i];
    if (ids[i] < 0) continue;
    if (ca.retire_at && ca.successor.empty()) {
      errors->push_back(
          {i, Key::kRetireAt,
           "CA profile \"" + ca.name + "\" has retire_at but no successor to take over after it"});
    } else if (!ca.successor.empty()) {
      int successor = resolver.Find(ca.successor);
      if (successor < 0) {
        errors->push_back(
            {i, Key::kSuccessor,
             "CA profile \"" + ca.name + "\" names an unknown successor \"" + ca.successor + "\""});
      }
      resolver.cas_[ids[i]].successor = successor;
    }
  }
  // Each profile has at most one successor, so a walk longer than the profile count loops.
  std::vector<char> reported(resolver.cas_.size(), 0);
  for (std::size_t start = 0; start < resolver.cas_.size(); ++start) {
    int id = int(start);
    for (std::size_t steps = 0; id >= 0 && steps <= resolver.cas_.size(); ++steps) {
      id = resolver.cas_[id].successor;
    }
    if (id < 0 || reported[id]) continue;
    int first = id;  // name the cycle from its first-defined profile, for stable messages
    for (int k = resolver.cas_[id].successor; k != id; k = resolver.cas_[k].successor) {
      first = std::min(first, k);
    }
    std::string cycle = "\"" + resolver.cas_[first].name + "\"";
    reported[first] = 1;
    for (int k = resolver.cas_[first].successor; k != first; k = resolver.cas_[k].successor) {
      cycle += " -> \"" + resolver.cas_[k].name + "\"";
      reported[k] = 1;
    }
    cycle += " -> \"" + resolver.cas_[first].name + "\"";
    errors->push_back(
        {at[std::size_t(first)], Key::kSuccessor, "CA profile successors form a cycle: " + cycle});
  }
  return resolver;
}

int CaResolver::Find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? -1 : it->second;
}

int CaResolver::Resolve(int id, Instant at, std::string* why) const {
  // Build rejected cycles; the bound only guards against a resolver built with errors.
  for (std::size_t steps = 0; id >= 0 && steps < cas_.size(); ++steps) {
    const Entry& entry = cas_[id];
    if (!entry.retire_at || *entry.retire_at > at || entry.successor < 0) break;
    if (why) {
      if (!why->empty()) *why += "; ";
      *why += "\"" + entry.name + "\" retired at " + FormatInstant(*entry.retire_at) +
              ", successor \"" + cas_[entry.successor].name + "\"";
    }
    id = entry.successor;
  }
  return id;
}

}  // namespace mintgate::rules
